"""kill -9 the online training job mid-stream, restart it from its last checkpoint.

Run alone with ``.venv/bin/python -m pytest -q tests/jobs/test_train_recovery.py -s``
(~1-2 min: two job starts). The job runs as a separate process (``python -m
jobs.train``, unbounded as online training is) so the whole process group (JVM +
Python workers) can be SIGKILLed; the test stops the restarted job once it has
reported every example.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from freshet import kafka
from freshet.config import Config
from freshet.flink import latest_checkpoint


def metrics(cfg: Config) -> list[dict]:
    return [json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("metrics"), 0.5)]


def start_job(cfg_file: Path, log: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jobs.train", "--config-json", str(cfg_file),
           "--start", "0:0,1:0,2:0,3:0", *extra]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=Path(__file__).resolve().parents[2])


def test_kill_9_then_restart_from_checkpoint_trains_every_example_once(
    cfg: Config, tmp_path: Path, trainer_faults: SimpleNamespace
) -> None:
    cfg = trainer_faults.small_trainer(cfg)
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(cfg.to_json())
    feed = trainer_faults.ExampleFeed(cfg, prefix="k", seed=1)
    produce = feed.produce

    def reported() -> int:
        return max([m["value"] for m in metrics(cfg) if m["name"] == "trained_examples"],
                   default=0)

    log = tmp_path / "job.log"
    produce(0, 10, 0.0)
    job = start_job(cfg_file, log)
    try:
        deadline = time.monotonic() + 180
        while reported() < 1000:  # the job is up and training
            assert job.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        # From here the stream is paced, so the kill lands mid-stream, after a checkpoint.
        paced = threading.Thread(target=produce, args=(10, len(feed.batches), 0.25), daemon=True)
        paced.start()
        while reported() < 6000 or latest_checkpoint(cfg, "freshet-train") is None:
            assert job.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        assert paced.is_alive(), "the stream ended before the kill"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    killed_at = reported()
    checkpoint = latest_checkpoint(cfg, "freshet-train")
    assert checkpoint is not None

    started_wall = time.time()
    job = start_job(cfg_file, log, "--from-checkpoint", checkpoint)
    total = feed.total
    try:
        reports: list[dict] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            reports = [m for m in metrics(cfg) if m["name"] == "trained_examples"
                       and m["ts"] >= started_wall * 1000]
            if any(m["value"] >= total for m in reports):
                break
            assert job.poll() is None, log.read_text()[-3000:]
            time.sleep(1.0)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    paced.join()

    restores = [m for m in metrics(cfg) if m["name"] == "restored_examples"]
    assert restores, "the restarted job did not restore any trained state"
    restored = int(restores[0]["value"])
    print(f"\nkilled after {killed_at} examples reported; restored {restored} from {checkpoint}; "
          f"state rebuild {restores[0]['labels']['restore_s']} s; restart to first batch "
          f"trained {(restores[0]['ts'] / 1000 - started_wall):.1f} s")
    assert 0 < restored < total
    assert max(m["value"] for m in reports) == total  # none trained twice
    done = [m for m in reports if m["value"] == total]
    assert done, "no report of every example trained"
    assert done[0]["labels"]["fingerprint"] == str(feed.expected_fingerprint())  # none lost
