"""The joiner on a generated stream whose every outcome is known in advance.

One bounded Flink job (window 10 s, out-of-orderness 2 s, negatives sampled at 0.5)
over impressions and actions that cover: matches, several actions on one impression,
duplicate impressions and actions, out-of-order and late events, actions outside the
window, orphan actions, odd but valid JSON, and malformed records of every kind.
Each emitted example's label, action columns and sample rate are checked, and the
exact counts of examples and of dead letters (by reason).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field

from freshet import kafka
from freshet.config import Config
from freshet.topics import SERVED_FIELDS, ExampleBatch
from jobs.join import Bounds, keeps_negative, run

T = 1_700_000_000_000  # event-time origin, ms
W = 10_000  # join window, ms
RATE = 0.5
UNMATCHED = "unmatched action"


@dataclass
class Stream:
    """Records in produce order, and the outcome each valid impression must have."""

    features: list[tuple[bytes | None, int]] = field(default_factory=list)  # (value, kafka ts)
    actions: list[tuple[bytes | None, int]] = field(default_factory=list)
    # (request_id, item_id) -> (label, first matching action or None)
    expected: dict[tuple[str, int], tuple[int, str | None]] = field(default_factory=dict)
    slots: dict[tuple[str, int], dict[str, list[int]]] = field(default_factory=dict)
    served: dict[tuple[str, int], dict[str, float | int]] = field(default_factory=dict)
    dead: Counter[str] = field(default_factory=Counter)  # reason prefix -> count
    # Late beyond the watermark: a positive or an unmatched action, depending on how
    # far the impressions' source had read when the action arrived (checked apart).
    racy: tuple[str, int] | None = None

    def impression(self, rid: str, item: int, ts: int, slots: dict[str, list[int]] | None = None,
                   label: int = 0, action: str | None = None, raw: bytes | None = None,
                   served: dict[str, float | int] | None = None) -> None:
        slots = {"user_id": [item % 7], "item_id": [item]} if slots is None else slots
        body = {"v": 1, "request_id": rid, "item_id": item, "user_id": item % 7, "ts": ts,
                "slots": slots, **(served or {})}
        self.features.append((raw or json.dumps(body).encode(), ts))
        self.expected[(rid, item)] = (label, action)
        self.slots[(rid, item)] = slots
        self.served[(rid, item)] = {k: v for k, v in (served or {}).items() if v is not None}

    def action(self, rid: str, item: int, ts: int, kind: str = "click") -> None:
        body = {"v": 1, "request_id": rid, "item_id": item, "user_id": item % 7, "ts": ts,
                "action": kind}
        self.actions.append((json.dumps(body).encode(), ts))


def generate() -> Stream:
    s = Stream()
    t = T
    # Plain negatives and positives, interleaved (request ids spread over partitions).
    # Every third was scored by serving, which logged its score and model versions.
    for k in range(40):
        rid, ts = f"r{k}", t + k * 500
        served = ({"served_score": k / 64, "model_seq": k, "table_version": 3 * k} if k % 3
                  else {"served_score": None} if k % 2 else None)
        if k % 2:
            s.impression(rid, k, ts, label=1, action="click", served=served)
            s.action(rid, k, ts + 3_000)
        else:
            s.impression(rid, k, ts, served=served)
    t += 40 * 500
    # Several actions on one impression: one example, labelled by the first match.
    s.impression("multi", 1, t, label=1, action="click")
    s.action("multi", 1, t + 2_000, "click")
    s.action("multi", 1, t + 4_000, "like")
    # A duplicate impression (at-least-once redelivery) and duplicate actions.
    s.impression("dup-imp", 2, t + 100)
    s.features.append(s.features[-1])
    s.impression("dup-act", 3, t + 200, label=1, action="like")
    s.action("dup-act", 3, t + 1_000, "like")
    s.action("dup-act", 3, t + 1_000, "like")
    # An action after the window, and one before its impression: unmatched.
    s.impression("too-late", 4, t + 300)
    s.action("too-late", 4, t + 300 + W + 5_000)
    s.dead[UNMATCHED] += 1
    s.impression("too-early", 5, t + 400)
    s.action("too-early", 5, t + 400 - 1_000)
    s.dead[UNMATCHED] += 1
    # Orphan actions: their impression never arrives (a redelivered copy counts once;
    # a different action on the same missing impression counts on its own).
    s.action("orphan", 6, t + 500)
    s.action("orphan", 6, t + 500)
    s.action("orphan", 6, t + 600, "finish")
    s.dead[UNMATCHED] += 2
    # The window's edge is inclusive.
    s.impression("edge", 7, t + 700, label=1, action="finish")
    s.action("edge", 7, t + 700 + W, "finish")
    # Out of order within the bounded out-of-orderness: still joined.
    s.impression("ooo", 8, t + 5_000, label=1, action="like")
    s.impression("ooo-early", 9, t + 3_500, label=1, action="click")
    s.action("ooo-early", 9, t + 6_500)
    s.action("ooo", 8, t + 5_100, "like")  # earlier event time, later arrival
    # Valid but unusual JSON: spaces, another key order, extra fields, escapes,
    # unicode, a long ID list, int64 extremes.
    odd = {"ts": t + 800, "slots": {"genre": [-(2**63), 2**63 - 1], "e": []},
           "user_id": 10 % 7, "extra": {"x": [1]}, "item_id": 10, "request_id": 'q"uo\\te ü'}
    s.impression('q"uo\\te ü', 10, t + 800, slots=odd["slots"],  # type: ignore[arg-type]
                 raw=json.dumps(odd, indent=2, ensure_ascii=False).encode())
    s.impression("long", 11, t + 900, slots={"ids": list(range(50_000))})
    # Malformed records: dead letters with a reason, never dropped.
    bad_features = {
        b"not json": "not a JSON object",
        b"[1, 2]": "not a JSON object",
        b'{"v":1,"item_id":1,"user_id":1,"ts":1,"slots":{}}': "request_id",
        b'{"request_id":"b","item_id":"7","user_id":1,"ts":1,"slots":{}}': "item_id",
        b'{"request_id":"b","item_id":7.5,"user_id":1,"ts":1,"slots":{}}': "item_id",
        b'{"request_id":"b","item_id":9223372036854775808,"user_id":1,"ts":1,"slots":{}}':
            "item_id",
        b'{"request_id":"b","item_id":7,"ts":1,"slots":{}}': "user_id",
        b'{"request_id":"b","item_id":7,"user_id":1,"ts":"1","slots":{}}': "ts",
        b'{"request_id":"b","item_id":7,"user_id":1,"ts":1,"slots":[1]}': "slots",
        b'{"request_id":"b","item_id":7,"user_id":1,"ts":1,"slots":{"a":["1"]}}': "slots",
        b'{"v":2,"request_id":"b","item_id":7,"user_id":1,"ts":1,"slots":{}}': "v",
        b'{"request_id":"b","item_id":7,"user_id":1,"ts":1,"slots":{},"served_score":1.5}':
            "served_score",
        b'{"request_id":"b","item_id":7,"user_id":1,"ts":1,"slots":{},"model_seq":"3"}':
            "model_seq",
    }
    for raw, reason in bad_features.items():
        body = raw.replace(b'"ts":1', f'"ts":{t}'.encode())
        s.features.append((body, t))
        s.dead[reason] += 1
    absurd = {"v": 1, "request_id": "b", "item_id": 7, "user_id": 1, "ts": 32503680000000,
              "slots": {}}
    s.features.append((json.dumps(absurd).encode(), t))  # year 3000
    s.dead["ts"] += 1
    for raw, reason in {
        b'{"request_id":"b","item_id":7,"user_id":1,"ts":1,"action":"wink"}': "action",
        b'{"request_id":"b","item_id":7,"user_id":1,"ts":1}': "action",
        b"{": "not a JSON object",
    }.items():
        s.actions.append((raw.replace(b'"ts":1', f'"ts":{t}'.encode()), t))
        s.dead[reason] += 1
    # Much later traffic moves the watermark on; then an action arrives for an
    # impression whose window has (most likely) closed by then.
    t += 60_000
    s.impression("late", 12, t)
    for k in range(20):
        s.impression(f"later{k}", 100 + k, t + 60_000 + k * 100)
        s.action(f"later{k}", 100 + k, t + 60_000 + k * 100 + 1_000)
        s.expected[(f"later{k}", 100 + k)] = (1, "click")
    s.action("late", 12, t + 2_000)
    s.racy = ("late", 12)
    return s


def produce(cfg: Config, s: Stream) -> Bounds:
    p = kafka.producer(cfg)
    for topic, records in (("features", s.features), ("actions", s.actions)):
        for value, ts in records:
            key = json.loads(value).get("request_id", "x") if _is_object(value) else "x"
            p.produce(cfg.topics.name(topic), value, key=str(key).encode(), timestamp=ts)
    assert p.flush(30) == 0
    return Bounds(stop={t: kafka.end_offsets(cfg, cfg.topics.name(t))
                        for t in ("features", "actions")})


def _is_object(value: bytes | None) -> bool:
    try:
        return isinstance(json.loads(value or b""), dict)
    except ValueError:
        return False


def test_join_emits_every_known_outcome(cfg: Config) -> None:
    cfg = dataclasses.replace(cfg, joiner=dataclasses.replace(
        cfg.joiner, window_s=W / 1000, out_of_orderness_s=2.0, negative_sample_rate=RATE))
    s = generate()
    bounds = produce(cfg, s)
    run(cfg, bounds)

    rows = []
    for m in kafka.read(cfg, cfg.topics.name("examples"), idle_s=1.0):
        rows.extend(json.loads(m.value())["examples"])
        ExampleBatch.from_json(m.value())  # the trainer's reader accepts every message
    dead = [json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("dead_letters"), 1.0)]

    got = {(r["request_id"], r["item_id"]): r for r in rows}
    assert len(got) == len(rows), "an impression was emitted twice"
    racy_positive = got.get(s.racy, {}).get("label") == 1 if s.racy else False
    for key, (label, action) in s.expected.items():
        if key == s.racy and racy_positive:
            label, action = 1, "click"
        kept = label == 1 or keeps_negative(key[0], key[1], RATE)
        if not kept:
            assert key not in got, f"{key}: negative should have been sampled out"
            continue
        assert key in got, (key, label, sorted(got)[:80])
        r = got.pop(key)
        assert r["label"] == label, key
        assert [a for a in ("click", "like", "finish") if r[a]] == ([action] if action else [])
        assert r["sample_rate"] == (1.0 if label else RATE), key
        assert r["slots"] == s.slots[key], key
        assert {k: r[k] for k in SERVED_FIELDS if k in r} == s.served[key], key
        assert r["ts"] >= T and r["user_id"] == key[1] % 7
    assert got == {}, f"unexpected examples: {sorted(got)[:5]}"

    reasons = Counter(d["reason"].split(":")[0] for d in dead)
    expected_dead = s.dead + Counter({} if racy_positive else {UNMATCHED: 1})
    assert reasons == expected_dead
    assert all(isinstance(d["payload"], str) and d["payload"] for d in dead)
    assert {d["source"] for d in dead} == {"features", "actions"}
    # The raw payload is carried verbatim.
    assert any(d["payload"] == "not json" for d in dead)
