"""``kill -9`` of a serving process: the restarted one answers again quickly and has
every delta, including those published while it was down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from freshet.broker import free_port
from freshet.config import Config
from freshet.kafka import producer
from ps.serving.synthetic import dense_messages, lr_weights, publish, sparse_messages, sparse_rows
from server.client import request as http


def serve(cfg: Config, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "FRESHET__KAFKA__BOOTSTRAP": cfg.kafka.bootstrap,
           "FRESHET__TOPICS__PREFIX": cfg.topics.prefix, "FRESHET__WORK_DIR": cfg.work_dir,
           "FRESHET__SERVING__PORT": str(port), "FRESHET__SERVING__STORE_INTERVAL_S": "0.5",
           "FRESHET__SERVING__LOG_IMPRESSIONS": "false"}
    return subprocess.Popen([sys.executable, "-m", "freshet.app.cli", "serve"], env=env,
                            stdout=log.open("a"), stderr=subprocess.STDOUT)


def wait(what, timeout_s: float = 60.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = what()
            if got:
                return got
        except OSError:
            pass  # not listening yet
        assert proc is None or proc.poll() is None, "server exited"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def delta(seq: int, model: str) -> list:
    ids = np.arange(100 * seq, 100 * seq + 100)  # update k owns items 100k..100k+99
    vals = np.zeros((100, 16), np.float32)
    vals[:, 0] = seq
    return sparse_messages(sparse_rows({"item_id": (ids, vals)}), model, seq)


def test_kill_9_restart_resumes_with_no_delta_lost(cfg: Config, tmp_path: Path) -> None:
    topic, p, model = cfg.topics.name("params"), producer(cfg), cfg.model.model_id
    publish(p, topic, dense_messages(lr_weights(0.0), model, seq=1, model_kind="lr"))
    for seq in range(1, 6):
        publish(p, topic, delta(seq, model))
    port, log = free_port(), tmp_path / "serve.log"
    first = serve(cfg, port, log)
    try:
        wait(lambda: http(port, "/status")[1]["saved_table_version"] == 5, proc=first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    for seq in range(6, 9):  # published while no server runs
        publish(p, topic, delta(seq, model))

    t0 = time.monotonic()
    second = serve(cfg, port, log)
    try:
        items = [100 * k + 42 for k in range(1, 9)]
        body = {"user_id": 1, "candidates": [{"item_id": i} for i in items]}
        wait(lambda: http(port, "/rank", body)[0] == 200, proc=second)
        answering_s = time.monotonic() - t0
        wait(lambda: http(port, "/status")[1]["table_version"] == 8, proc=second)
        status = http(port, "/status")[1]
        assert status["updates_applied"] == 3  # resumed at the snapshot, no replay
        assert status["offset_resets"] == []
        ranked = http(port, "/rank", body)[1]["items"]
        assert [r["item_id"] for r in ranked] == items[::-1]
        expected = {i: 1 / (1 + np.exp(-(i // 100))) for i in items}
        for r in ranked:
            assert abs(r["score"] - expected[r["item_id"]]) < 1e-6
        print(f"answering {answering_s:.2f}s after restart (restore {status['restore_s']:.3f}s)")
    finally:
        second.terminate()
        second.wait(30)
