"""``kill -9`` of the broker under running ``freshet join``, ``freshet train`` and
``freshet serve``: it comes back on the same data directory and ports, the three
reconnect by themselves and carry on, and nothing is lost or done twice.

The broker is Apache Kafka with its log on disk (:mod:`freshet.broker`), so topics,
records, committed offsets and transaction state survive its death. The test runs the
three commands as users do (child processes, a config file), produces a synthetic
stream in three parts (before, during and after the outage; the broker is killed while
the second is being produced, after the joiner and the trainer have committed work and
the server has a model), restarts the broker on the same ``data_dir``, and at the end:

- the examples topic (read committed) holds exactly one example per impression (count
  and the ledger fingerprint of the request IDs);
- the trainer's last report of ``trained_examples`` on the metrics topic is that count
  with that fingerprint, and no report exceeds it: 0 examples lost, 0 trained twice;
- the server answers ``/rank`` with the model, and its ``/status`` shows parameter
  updates applied after the restart.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from freshet import kafka
from freshet.broker import EmbeddedBroker, free_port
from freshet.config import Config, load_config
from freshet.flink import latest_checkpoint
from freshet.produce.sender import send
from freshet.produce.synthetic import SyntheticSpec, events
from freshet.topics import Impression
from server.client import request as http

IMPRESSIONS = 4000


def trained_reports(cfg: Config) -> list[dict]:
    return [m for m in (json.loads(x.value()) for x in
                        kafka.read(cfg, cfg.topics.name("metrics"), idle_s=0.5))
            if m["name"] == "trained_examples"]


def status(port: int) -> dict | None:
    try:
        code, body = http(port, "/status")
    except OSError:
        return None  # not listening yet
    return body if code == 200 else None


def rank(port: int) -> tuple[int, dict]:
    body = {"user_id": 3, "candidates": [{"item_id": i} for i in range(10)]}
    return http(port, "/rank", body)


def test_broker_kill_9_and_restart_jobs_carry_on_with_nothing_lost_or_twice(
    tmp_path: Path, faults: SimpleNamespace, trainer_faults: SimpleNamespace
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "kafka.log", data_dir=tmp_path / "kafka")
    broker.start()
    services = []
    try:
        base = load_config(path=None, environ={})
        port = free_port()
        cfg = dataclasses.replace(
            base, work_dir=str(tmp_path / "work"),
            kafka=dataclasses.replace(base.kafka, bootstrap=broker.bootstrap),
            topics=dataclasses.replace(base.topics, prefix="r."),
            flink=dataclasses.replace(base.flink, parallelism=1),
            joiner=dataclasses.replace(base.joiner, window_s=2.0, out_of_orderness_s=0.5,
                                       checkpoint_interval_ms=1000),
            serving=dataclasses.replace(base.serving, port=port, store_interval_s=1.0,
                                        log_impressions=False),
        )
        cfg = trainer_faults.small_trainer(cfg)  # checkpoints every 1 s, syncs every 0.5 s
        toml = faults.write_toml(cfg, tmp_path / "freshet.toml")
        kafka.create_topics(cfg)
        stream = list(events(SyntheticSpec(impressions=IMPRESSIONS, event_rate=500.0,
                                           action_delay_ms=1000, p_other=0.3, seed=5)))
        ids = [e.request_id for e in stream if isinstance(e, Impression)]
        third = len(stream) // 3
        before, during, after = stream[:third], stream[third:2 * third], stream[2 * third:]
        send(cfg, before, progress=None)

        t0 = time.monotonic()
        services = [faults.cli(n, [n], toml, tmp_path) for n in ("join", "train", "serve")]
        join, train, serve = services

        def working() -> bool:
            return bool(faults.joined(cfg).count and trained_reports(cfg) and status(port)
                        and rank(port)[0] == 200)

        faults.wait_for(working, 240, "examples joined and trained, and the server ranking",
                        services)
        print(f"\nall three up and working in {time.monotonic() - t0:.1f} s")
        paced = threading.Thread(target=send, args=(cfg, during),
                                 kwargs={"rate": 400.0, "progress": None}, daemon=True)
        paced.start()
        time.sleep(2.0)
        assert paced.is_alive(), "the paced part ended before the kill"
        before_kill = status(port)
        assert latest_checkpoint(cfg, "freshet-join") and latest_checkpoint(cfg, "freshet-train")
        broker.kill()
        t_kill = time.monotonic()
        time.sleep(2.0)  # the jobs and the server see it gone
        broker = EmbeddedBroker(log_path=tmp_path / "kafka.log", data_dir=tmp_path / "kafka")
        broker.start()
        assert broker.bootstrap == cfg.kafka.bootstrap  # the same ports
        print(f"broker killed and back in {time.monotonic() - t_kill:.1f} s "
              f"({broker.ready_s:.1f} s to start)")
        paced.join()
        send(cfg, after, progress=None)  # produced after the restart
        markers = faults.end_markers(cfg, stream[-1].ts + 10_000)

        def trained_all() -> list[dict]:
            return [r for r in trained_reports(cfg) if r["value"] >= IMPRESSIONS]

        faults.wait_for(trained_all, 240, f"all {IMPRESSIONS} examples trained", services)
        recovered_s = time.monotonic() - t_kill
        faults.wait_for(lambda: len(faults.dead_letters(cfg)) >= markers, 60,
                        "the end markers dead-lettered", services)

        def served_after_restart() -> dict | None:
            s = status(port)
            return s if s and s["table_version"] > before_kill["table_version"] else None

        after_restart = faults.wait_for(served_after_restart, 60,
                                        "params applied after the restart", services)
        code, ranked = rank(port)
        time.sleep(2.0)  # anything more (a duplicate) would be committed by now
        out = faults.joined(cfg)
        reports = trained_reports(cfg)
        for s in services:
            assert s.running, f"{s.name} exited:\n{s.log_tail(60)}"
    finally:
        for s in services:
            s.stop()
        broker.stop()

    print(f"every example trained {recovered_s:.1f} s after the kill; {out.count} examples "
          f"({out.positives} positives); server table version {before_kill['table_version']} "
          f"before the kill, {after_restart['table_version']} after "
          f"({after_restart['updates_applied']} updates applied)")
    expected = faults.fingerprint(ids)
    assert out.twice() == [], f"joined twice: {out.twice()[:10]}"
    assert out.count == IMPRESSIONS and out.fingerprint() == expected  # none lost
    last = reports[-1]  # the metrics topic has one partition: the newest report
    assert last["value"] == IMPRESSIONS and last["labels"]["fingerprint"] == str(expected)
    assert max(r["value"] for r in reports) == IMPRESSIONS  # none trained twice
    assert code == 200 and len(ranked["items"]) == 10
    assert ranked["table_version"] >= after_restart["table_version"]
    assert after_restart["offset_resets"] == []
