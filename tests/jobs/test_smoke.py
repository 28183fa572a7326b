"""Kafka -> Python map (in a Python worker process) -> Kafka on the mini-cluster."""

from __future__ import annotations

import json
import time

from freshet import kafka
from freshet.config import Config
from freshet.topics import Impression
from jobs.smoke import build


def test_smoke_job_checks_every_event_and_dead_letters_bad_ones(cfg: Config) -> None:
    p = kafka.producer(cfg)
    topic = cfg.topics.name("features")
    for i in range(500):
        imp = Impression(f"r{i}", i, i % 5, 1000 + i, {"user_id": [i % 5], "item_id": [i]})
        p.produce(topic, imp.to_json(), key=imp.key())
    p.produce(topic, b'{"request_id": 5}', key=b"bad")
    p.produce(topic, b"\x00\x01", key=b"bad")
    assert p.flush(10) == 0
    stop = kafka.end_offsets(cfg, topic)
    assert sum(stop.values()) == 502

    t = time.monotonic()
    build(cfg, stop=stop).execute("smoke-test")
    print(f"smoke job (start, run, finish) took {time.monotonic() - t:.1f}s")

    metrics = [json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("metrics"), 1.0)]
    dead = [json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("dead_letters"), 1.0)]
    assert sorted(m["labels"]["request_id"] for m in metrics) == sorted(f"r{i}" for i in range(500))
    assert all(m["value"] == 2.0 for m in metrics)
    assert len(dead) == 2
    assert {d["reason"].split(":")[0] for d in dead} == {"request_id", "not JSON"}
