"""The MovieLens-100K replay through the joiner: exactly the expected examples.

Every rating is an impression; a rating >= 4 also has a click 5 s later (and a 5 a
like). With sampling off, the joiner must emit each of the 100,000 impressions once:
55,375 positives and 44,625 negatives, and dead-letter the malformed records.
"""

from __future__ import annotations

import dataclasses
import json

from freshet import kafka
from freshet.config import Config
from freshet.produce import movielens
from freshet.produce.sender import send
from jobs.join import Bounds, run

BAD = 30  # malformed records per topic
BAD_RECORDS = (b"not json", b'{"request_id": "x", "item_id": "7"}', b"[1, 2]")


def produce(cfg: Config, bad: int) -> tuple[int, int, int]:
    """The replay and ``bad`` malformed records per input topic; returns (events,
    expected positives, expected negatives). Sampling is off and every positive has one
    click, so the positives are the clicks and the negatives the other impressions."""
    stats = send(cfg, movielens.events(), progress=None)
    p = kafka.producer(cfg)
    for topic in ("features", "actions"):
        for i in range(bad):
            p.produce(cfg.topics.name(topic), BAD_RECORDS[i % len(BAD_RECORDS)])
    assert p.flush(30) == 0
    positives = stats.by_action["click"]
    return stats.events + 2 * bad, positives, stats.impressions - positives


def test_movielens_replay_gives_exact_positives_and_negatives(cfg: Config) -> None:
    cfg = dataclasses.replace(
        cfg, joiner=dataclasses.replace(cfg.joiner, window_s=10.0, negative_sample_rate=1.0)
    )
    events, expected_pos, expected_neg = produce(cfg, BAD)
    assert (expected_pos, expected_neg) == (55_375, 44_625)
    stop = {t: kafka.end_offsets(cfg, cfg.topics.name(t)) for t in ("features", "actions")}
    assert sum(sum(s.values()) for s in stop.values()) == events

    run(cfg, Bounds(stop=stop))

    labels: dict[str, int] = {}
    decided: dict[int, int] = {}  # partition -> the highest message timestamp so far
    behind = 0
    for m in kafka.read(cfg, cfg.topics.name("examples"), idle_s=2.0):
        rows = json.loads(m.value())["examples"]
        for r in rows:
            assert r["request_id"] not in labels, f"{r['request_id']} emitted twice"
            labels[r["request_id"]] = r["label"]
        # A message's timestamp says the joiner had emitted every example up to it, so
        # no later message of the partition may hold one at or before it (udfs/hold.py).
        p, stamp = m.partition(), m.timestamp()[1]
        behind += sum(r["ts"] <= decided.get(p, -1) for r in rows)
        decided[p] = max(decided.get(p, -1), stamp)
    assert behind == 0, f"{behind} examples came after their event time was stamped decided"
    assert max(decided.values()) > 0
    positives = {e.request_id for e in movielens.events() if e.topic == "actions"}
    assert sum(labels.values()) == expected_pos
    assert len(labels) - sum(labels.values()) == expected_neg
    assert {rid for rid, label in labels.items() if label} == positives

    dead = [json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("dead_letters"), 1.0)]
    assert len(dead) == 2 * BAD
    assert sorted(d["payload"].encode() for d in dead) == sorted(
        BAD_RECORDS[i % len(BAD_RECORDS)] for _ in range(2) for i in range(BAD)
    )
