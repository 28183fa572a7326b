"""Fuzz the joiner's inputs: 10,000 malformed impressions and actions through the real
Flink SQL job (bounded run, ``jobs.join`` public entry points), zero crashes, and every
record accounted for as a dead letter with a reason.

Records are valid ones broken in one way each (seeded): invalid or truncated JSON,
non-objects, missing fields, wrong types, integers out of the 64-bit range, bad slot
lists, unknown actions or schema versions, absurd timestamps, deep nesting, binary.

Part of ``make test`` (~1-2 min here).
"""

from __future__ import annotations

import json
import random
from collections import Counter

from freshet import kafka
from freshet.config import Config
from jobs.join import current_bounds, run

TOTAL = 10_000
T = 1_700_000_000_000


def valid(kind: str, i: int) -> dict:
    base = {"request_id": f"fz{i}", "item_id": i, "user_id": i % 97, "ts": T + i}
    if kind == "features":
        return {**base, "slots": {"genre": [1, 2]}}
    return {**base, "action": "click"}


def broken(rng: random.Random, kind: str, i: int) -> bytes:
    """One malformed record (never a valid one)."""
    doc = valid(kind, i)
    how = rng.randrange(12)
    field = rng.choice(sorted(doc))
    if how == 0:
        return json.dumps(doc).encode()[: rng.randrange(1, 40)]  # truncated JSON
    if how == 1:
        return json.dumps(rng.choice([[doc], "x", 7, None, True])).encode()  # not an object
    if how == 2:
        doc.pop(field)
    elif how == 3:
        doc[field] = rng.choice([None, [], "7.5x", 1.5, True, {"a": 1}]
                                + ([] if field == "slots" else [{}]))  # {} is valid slots
        if field == "request_id" and isinstance(doc[field], str):
            doc[field] = 7
    elif how == 4:
        doc[rng.choice(["item_id", "user_id", "ts"])] = rng.choice([2**63, -(2**63) - 1, 10**30])
    elif how == 5 and kind == "features":
        doc["slots"] = rng.choice([[1], {"a": ["1"]}, {"a": [1.5]}, {"a": [2**64]}, "x"])
    elif how == 5:
        doc["action"] = rng.choice(["wink", "", "CLICK", None])
    elif how == 6:
        doc["v"] = rng.choice([2, 0, "1"])
    elif how == 7:
        doc["ts"] = 32503680000000 + i  # year 3000: beyond joiner.max_clock_skew_s
    elif how == 8:
        nest: object = 1
        for _ in range(rng.randrange(50, 400)):
            nest = [nest]
        doc[field] = nest
    elif how == 9:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) + b"\xff"
    elif how == 10:
        doc["request_id"] = 123  # a number where a string belongs
    else:
        doc["item_id"] = str(doc["item_id"])  # the right value as a string
    return json.dumps(doc).encode()


def test_fuzz_joiner_inputs_every_record_dead_lettered(cfg: Config) -> None:
    rng = random.Random(8)
    sent: Counter[str] = Counter()
    p = kafka.producer(cfg)
    for i in range(TOTAL):
        kind = "features" if i % 2 else "actions"
        value = broken(rng, kind, i)
        sent[kind] += 1
        p.produce(cfg.topics.name(kind), value, key=str(i).encode(), timestamp=T + i)
    assert p.flush(30) == 0
    run(cfg, current_bounds(cfg))  # raises if the job fails

    dead = [json.loads(m.value()) for m in
            kafka.read(cfg, cfg.topics.name("dead_letters"), idle_s=2.0)]
    examples = list(kafka.read(cfg, cfg.topics.name("examples"), idle_s=1.0))
    by_source = Counter(d["source"] for d in dead)
    reasons = Counter(d["reason"].split(":")[0] for d in dead)
    print(f"\nsent {dict(sent)}; dead letters {dict(by_source)}; reasons {dict(reasons)}")
    leaked = [r["request_id"] for m in examples for r in json.loads(m.value())["examples"]]
    assert leaked == [], f"malformed records became examples: {leaked[:5]}"
    assert by_source == sent  # every record accounted for, once
    assert all(d["reason"] and isinstance(d["payload"], str) for d in dead)
