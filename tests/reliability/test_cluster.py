"""``freshet submit`` against a standalone Flink cluster started from the pip install,
and ``kill -9`` of a TaskManager mid-stream.

The training job is submitted to a real session cluster (:mod:`freshet.cluster`: one
JobManager, TaskManagers as separate JVMs, checkpoints on a local dir they share).
Once the job has trained part of a paced stream and completed a checkpoint, the
TaskManager JVM is SIGKILLed and a fresh one started; Flink notices the lost
TaskManager, restores the job from its last checkpoint on the new one, and the
trainer's ledger must end at exactly the input: every example once (count and
order-free fingerprint of request IDs), none twice.

A second test submits a bounded replay the same way and checks the model it writes.

Slow (~3-5 min): ``.venv/bin/python -m pytest -q -s -m slow tests/reliability/test_cluster.py``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from freshet import kafka
from freshet.cluster import StandaloneCluster
from freshet.config import Config
from freshet.submit import submit


def trained_reports(cfg: Config) -> list[dict]:
    msgs = kafka.read(cfg, cfg.topics.name("metrics"), idle_s=0.5)
    return [m for m in (json.loads(x.value()) for x in msgs)
            if m["name"] in ("trained_examples", "restored_examples")]


def wait_until(what, timeout_s: float, why: str, cluster: StandaloneCluster):
    deadline = time.monotonic() + timeout_s
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out: {why}; logs in {cluster.log_dir}"
        time.sleep(1.0)


@pytest.mark.slow
def test_submit_train_then_kill_9_taskmanager_trains_every_example_once(
    cfg: Config, tmp_path: Path, trainer_faults: SimpleNamespace
) -> None:
    with StandaloneCluster(tmp_path / "cluster", slots=2).start(taskmanagers=1) as cluster:
        cfg = trainer_faults.small_trainer(cfg, checkpoint_dir=str(cluster.checkpoints))
        feed = trainer_faults.ExampleFeed(cfg, prefix="c", seed=7)
        produce, total = feed.produce, feed.total

        def trained() -> int:
            return max([r["value"] for r in trained_reports(cfg)
                        if r["name"] == "trained_examples"], default=0)

        produce(0, 10, 0.0)
        t0 = time.monotonic()
        job = submit(cfg, "train", cluster.rest, ["--start", "0:0,1:0,2:0,3:0"]).job_id
        print(f"\nsubmitted {job} in {time.monotonic() - t0:.1f}s")
        wait_until(lambda: trained() >= 1000, 240, "first examples trained", cluster)
        paced = threading.Thread(target=produce, args=(10, len(feed.batches), 0.25), daemon=True)
        paced.start()

        def checkpointed() -> bool:
            counts = cluster.get(f"/jobs/{job}/checkpoints")["counts"]
            return counts["completed"] >= 2 and trained() >= 5000

        wait_until(checkpointed, 180, "a checkpoint after 5000 examples", cluster)
        assert paced.is_alive(), "the stream ended before the kill"
        killed_at = trained()
        pid = cluster.kill_taskmanager(0)
        t_kill = time.monotonic()
        cluster.add_taskmanager()
        print(f"killed TaskManager pid {pid} after {killed_at} examples reported")

        def finished() -> list[dict]:
            return [r for r in trained_reports(cfg)
                    if r["name"] == "trained_examples" and r["value"] >= total]

        done = wait_until(finished, 300, "all examples trained after the restart", cluster)
        recovered_s = time.monotonic() - t_kill
        paced.join()
        reports = trained_reports(cfg)
        restores = [r for r in reports if r["name"] == "restored_examples"]
        info = cluster.job(job)
        cluster.cancel(job)

    print(f"job {info['state']}; restored {[r['value'] for r in restores]} examples from the "
          f"checkpoint; all {total} trained {recovered_s:.1f}s after the kill")
    assert restores, "the job was not restored from a checkpoint"
    assert all(0 < r["value"] < total for r in restores)
    # None trained twice: the ledger restarts from the checkpoint's count, never above.
    assert max(r["value"] for r in reports if r["name"] == "trained_examples") == total
    assert done[0]["labels"]["fingerprint"] == str(feed.expected_fingerprint())  # none lost


@pytest.mark.slow
def test_submit_replay_trains_the_range_once_and_writes_the_model(
    cfg: Config, tmp_path: Path, trainer_faults: SimpleNamespace
) -> None:
    from freshet.submit import submit_replay
    from ps import EmbeddingCollection

    cfg = trainer_faults.small_trainer(cfg)
    feed = trainer_faults.ExampleFeed(cfg, prefix="c", seed=7, messages=20)
    feed.produce(0, len(feed.batches))
    data = feed.batches
    snapshot = tmp_path / "model"
    with StandaloneCluster(tmp_path / "cluster", slots=2).start(taskmanagers=1) as cluster:
        done, manifest = submit_replay(cfg, cluster.rest, None, None, str(snapshot))
        state = cluster.job(done.job_id)["state"]
    assert state == "FINISHED"
    assert manifest["messages"] == len(data)
    final = [r for r in trained_reports(cfg)
             if r["name"] == "trained_examples" and r["labels"]["final"] == "true"]
    assert [r["value"] for r in final] == [feed.total]  # every example, once
    assert final[0]["labels"]["fingerprint"] == str(feed.expected_fingerprint())
    tables = EmbeddingCollection.restore(snapshot / "shard-0" / "tables", cfg.model.slots)
    users = {e.slots["user_id"][0] for b in data for e in b}
    assert len(tables.slots["user_id"]) == len(users)  # the model the replay built
    assert json.loads((snapshot / "manifest.json").read_text())["job_id"] == done.job_id
