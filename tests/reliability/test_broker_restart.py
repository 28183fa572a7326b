"""Restart the embedded broker under running jobs: they must notice, and say so.

tansu keeps everything in memory, so after its restart the topics are recreated empty
and every position the jobs hold points past their end. The test runs ``freshet train``
and ``freshet join`` (mini-cluster, as users run them), restarts the broker on the
same port mid-stream, recreates the topics and sends new data. Both jobs must stop
with exit code 3 and an error naming the lost topics (``freshet.guard``), and a
``freshet train --from-checkpoint`` against the new topics must refuse to start.

Slow (~2-3 min):
``.venv/bin/python -m pytest -q -s -m slow tests/reliability/test_broker_restart.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from freshet import kafka
from freshet.broker import EmbeddedBroker, free_port
from freshet.config import load_config
from freshet.produce.sender import send
from freshet.produce.synthetic import SyntheticSpec, events
from freshet.topics import Example, encode_examples

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
work_dir = "{work}"
[kafka]
bootstrap = "{bootstrap}"
[topics]
prefix = "r."
[flink]
parallelism = 1
checkpoint_interval_ms = 1000
[joiner]
window_s = 2.0
out_of_orderness_s = 1.0
[train]
micro_batch = 64
eval_window = 500
[model]
hidden = [16]
slots = [{{name = "user_id", dim = 8}}, {{name = "item_id", dim = 8}}]
"""


def example_messages(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode_examples([Example(f"b{seed}-{m}-{i}", int(rng.integers(50)),
                                     int(rng.integers(30)), m * 1000 + i, int(rng.random() < .4),
                                     slots={"user_id": [int(rng.integers(30))],
                                            "item_id": [int(rng.integers(50))]})
                             for i in range(200)]) for m in range(n)]


def produce_examples(cfg, msgs: list[bytes]) -> None:
    p = kafka.producer(cfg)
    for i, m in enumerate(msgs):
        p.produce(cfg.topics.name("examples"), m, partition=i % 4)
    p.flush(10)


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "freshet.cli", *cmd], env=env, cwd=ROOT,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def group_alive(p: subprocess.Popen) -> bool:
    try:
        os.killpg(p.pid, 0)
        return True
    except ProcessLookupError:
        return False


def stop(p: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)  # the JVM and Python workers it left, if any
    p.wait()


@pytest.mark.slow
def test_jobs_stop_with_a_clear_error_when_the_broker_loses_their_topics(tmp_path: Path) -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log").start()
    toml = tmp_path / "freshet.toml"
    toml.write_text(CONFIG.format(work=tmp_path / "work", bootstrap=broker.bootstrap))
    env = {**os.environ, "FRESHET_CONFIG": str(toml)}
    cfg = load_config(toml, environ={})
    kafka.create_topics(cfg)
    produce_examples(cfg, example_messages(10, seed=1))
    send(cfg, events(SyntheticSpec(impressions=3000, event_rate=500.0)))
    train_log, join_log = tmp_path / "train.log", tmp_path / "join.log"
    train = start(["train"], env, train_log)
    join = start(["join"], env, join_log)
    try:
        deadline = time.monotonic() + 240

        def trained() -> bool:
            return any(json.loads(m.value())["name"] == "trained_examples"
                       for m in kafka.read(cfg, cfg.topics.name("metrics"), idle_s=0.5))

        def joined() -> bool:
            return any(True for _ in kafka.read(cfg, cfg.topics.name("examples"), idle_s=0.5,
                                                start={p: 3 for p in range(4)}))

        while not (trained() and joined()):  # both jobs are up and producing
            for p, log in ((train, train_log), (join, join_log)):
                assert p.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "jobs did not start in time"
            time.sleep(2.0)

        broker.stop()  # memory storage: everything is gone
        t_restart = time.monotonic()
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log").start()
        kafka.create_topics(cfg)  # what `freshet topics` (or the demo) would do
        produce_examples(cfg, example_messages(3, seed=2))
        codes = {}
        while len(codes) < 2 and time.monotonic() - t_restart < 90:
            for name, p in (("train", train), ("join", join)):
                if name not in codes and p.poll() is not None:
                    codes[name] = (p.returncode, round(time.monotonic() - t_restart, 1))
            time.sleep(0.5)
        time.sleep(5.0)
        lingering = [n for n, p in (("train", train), ("join", join)) if group_alive(p)]
    finally:
        stop(train)
        stop(join)
    print(f"\nexit codes and seconds after the restart: {codes}")
    assert lingering == [], f"processes of {lingering} still run after it exited"
    assert codes.get("train", (None,))[0] == 3, train_log.read_text()[-3000:]
    assert codes.get("join", (None,))[0] == 3, join_log.read_text()[-3000:]
    for log, topic in ((train_log, "r.examples"), (join_log, "r.features")):
        text = log.read_text()
        assert "the broker lost topic" in text and topic in text
        assert "deleted" in text or "recreated" in text

    # A restart from the old checkpoint against the recreated topics refuses to run.
    again = subprocess.run([sys.executable, "-m", "freshet.cli", "train", "--from-checkpoint",
                            "latest"], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    broker.stop()
    assert again.returncode == 3, again.stdout + again.stderr
    assert "the broker lost topic r.examples" in again.stderr
    print(again.stderr.strip().splitlines()[-1][:300])
