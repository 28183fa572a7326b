"""``freshet submit`` against a standalone Flink cluster started from the pip install,
and ``kill -9`` of a TaskManager mid-stream.

The training job is submitted to a real session cluster (:mod:`freshet.cluster`: one
JobManager, TaskManagers as separate JVMs, checkpoints on a local dir they share).
Once the job has trained part of a paced stream and completed a checkpoint, the
TaskManager JVM is SIGKILLed and a fresh one started; Flink notices the lost
TaskManager, restores the job from its last checkpoint on the new one, and the
trainer's ledger must end at exactly the input: every example once (count and
order-free fingerprint of request IDs), none twice.

A second test submits a bounded replay the same way and checks the model it writes; a
third runs ``freshet join --cluster --bounded`` and counts the examples exactly.
Part of ``make test`` (~3-5 min here).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from freshet import kafka
from freshet.app.submit import submit
from freshet.cluster import StandaloneCluster
from freshet.config import Config


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


def test_submit_replay_trains_the_range_once_and_writes_the_model(
    cfg: Config, tmp_path: Path, trainer_faults: SimpleNamespace
) -> None:
    from freshet.app.submit import submit_replay
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
    assert manifest.messages == len(data)
    final = [r for r in trained_reports(cfg)
             if r["name"] == "trained_examples" and r["labels"]["final"] == "true"]
    assert [r["value"] for r in final] == [feed.total]  # every example, once
    assert final[0]["labels"]["fingerprint"] == str(feed.expected_fingerprint())
    tables = EmbeddingCollection.restore(snapshot / "shard-0" / "tables", cfg.model.slots)
    users = {e.slots["user_id"][0] for b in data for e in b}
    assert len(tables.slots["user_id"]) == len(users)  # the model the replay built
    assert json.loads((snapshot / "manifest.json").read_text())["job_id"] == done.job_id


def test_freshet_join_cluster_bounded_writes_exactly_the_expected_examples(
    cfg: Config, tmp_path: Path, faults: SimpleNamespace
) -> None:
    """``freshet join --cluster --bounded`` as a user runs it: the CLI submits
    ``jobs/join.py`` unchanged (detached) to a standalone cluster, the job ends at the
    topics' current offsets, and the examples topic holds one example per impression:
    positives exactly the impressions with an action in the window."""
    import dataclasses

    from freshet.produce.sender import send
    from freshet.produce.synthetic import SyntheticSpec, events
    from freshet.topics import Action, Impression

    with StandaloneCluster(tmp_path / "cluster", slots=2).start(taskmanagers=1) as cluster:
        cfg = dataclasses.replace(
            cfg,
            flink=dataclasses.replace(cfg.flink, parallelism=2,
                                      checkpoint_dir=str(cluster.checkpoints)),
            joiner=dataclasses.replace(cfg.joiner, window_s=2.0, out_of_orderness_s=0.5,
                                       negative_sample_rate=1.0),
        )
        toml = faults.write_toml(cfg, tmp_path / "freshet.toml")
        stream = list(events(SyntheticSpec(impressions=3000, event_rate=500.0,
                                           action_delay_ms=1000, p_other=0.3, seed=11)))
        send(cfg, stream, progress=None)
        impressions = [e for e in stream if isinstance(e, Impression)]
        positives = {e.request_id for e in stream if isinstance(e, Action)}
        client = faults.cli("join-cluster", ["join", "--cluster", cluster.rest, "--bounded"],
                            toml, tmp_path)
        assert client.wait(300) == 0, client.log_tail(40)
        found = re.search(r"job ([0-9a-f]{32})", client.log_path.read_text())
        assert found, client.log_tail(20)
        job = found.group(1)

        def finished() -> str | None:
            state = cluster.job(job)["state"]
            assert state not in ("FAILED", "CANCELED"), f"join job {state}"
            return state if state == "FINISHED" else None

        wait_until(finished, 300, "the bounded join to finish", cluster)
        out = faults.joined(cfg)
    print(f"\ncluster join: {out.count} examples ({out.positives} positives)")
    assert out.twice() == []
    assert out.count == len(impressions)
    assert out.fingerprint() == faults.fingerprint(e.request_id for e in impressions)
    assert {r["request_id"] for r in out.rows if r["label"] == 1} == positives
    assert out.negatives == len(impressions) - len(positives)
