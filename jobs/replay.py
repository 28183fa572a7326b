"""Batch training by replay: the training job over a bounded time range of examples.

``freshet replay --from T1 --to T2`` trains on the examples-topic messages whose Kafka
timestamp ``t`` satisfies ``T1 <= t < T2`` (producers stamp a batch with its last
event time), with the same graph and code as online training (:mod:`jobs.train`).
At the end of the range every shard writes its model under ``<snapshot>/shard-<i>``
and this module writes ``manifest.json`` with the stop offsets, so
``freshet train --from-snapshot <snapshot>`` continues online from exactly the next
message: no gap, no overlap.

Offsets for a time: the broker's ``offsets_for_times`` when its answer checks out,
else a client-side scan. The embedded broker (tansu) answers 0 for every time and its
high watermark counts record batches (stack.md), so there the scan is what runs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import TopicPartition

from freshet import kafka
from freshet.config import Config

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Range:
    start: dict[int, int]  # partition -> first offset to train
    stop: dict[int, int]  # partition -> first offset not to train
    how: str  # "broker" or "scan"

    def messages(self) -> int:
        return sum(self.stop[p] - self.start[p] for p in self.stop)


def _timestamp_at(consumer: object, topic: str, partition: int, offset: int) -> int | None:
    consumer.assign([TopicPartition(topic, partition, offset)])
    m = consumer.consume(1, timeout=5.0)
    if not m or m[0].error() is not None or m[0].offset() != offset:
        return None
    return m[0].timestamp()[1]


def _broker_offsets(cfg: Config, topic: str, ts_ms: int) -> dict[int, int] | None:
    """``offsets_for_times``, kept only if every answer is the true first offset >= ts."""
    c = kafka.consumer(cfg, group=f"freshet-replay-{time.time_ns()}")
    try:
        parts = kafka.partitions(cfg, topic)
        found = c.offsets_for_times([TopicPartition(topic, p, ts_ms) for p in parts], timeout=10)
        out = {}
        for tp in found:
            if tp.error is not None or tp.offset < 0:
                return None  # -1: past the end; the scan handles that case
            at = _timestamp_at(c, topic, tp.partition, tp.offset)
            before = _timestamp_at(c, topic, tp.partition, tp.offset - 1) if tp.offset else None
            if at is None or at < ts_ms or (before is not None and before >= ts_ms):
                return None
            out[tp.partition] = tp.offset
        return out
    finally:
        c.close()


def scan_offsets(cfg: Config, topic: str, times_ms: list[int]) -> list[dict[int, int]]:
    """Per time: partition -> first offset whose timestamp is >= it (else the end),
    by reading the partitions (message timestamps must not decrease in a partition)."""
    parts = kafka.partitions(cfg, topic)
    out = [{p: -1 for p in parts} for _ in times_ms]
    ends = {p: 0 for p in parts}
    for m in kafka.read(cfg, topic, idle_s=1.0):
        p, o, ts = m.partition(), m.offset(), m.timestamp()[1]
        ends[p] = max(ends[p], o + 1)
        for i, t in enumerate(times_ms):
            if ts >= t and out[i][p] < 0:
                out[i][p] = o
    return [{p: (o if o >= 0 else ends[p]) for p, o in d.items()} for d in out]


def time_range(cfg: Config, from_ms: int | None, to_ms: int | None) -> Range:
    """Offsets of the examples topic for ``from_ms <= timestamp < to_ms`` (None: open)."""
    topic = cfg.topics.name("examples")
    if to_ms is not None:
        start = {p: 0 for p in kafka.partitions(cfg, topic)} if from_ms is None else (
            _broker_offsets(cfg, topic, from_ms))
        stop = _broker_offsets(cfg, topic, to_ms)
        if start is not None and stop is not None:
            return Range(start, stop, "broker")
    times = [from_ms or 0, to_ms if to_ms is not None else (1 << 62)]
    start, stop = scan_offsets(cfg, topic, times)
    return Range(start, stop, "scan")


def replay(cfg: Config, from_ms: int | None, to_ms: int | None, snapshot_dir: str | Path,
           start_snapshot: str | None = None) -> dict:
    """Train over the range; write the model and ``manifest.json``; return the manifest."""
    from jobs.train import build

    # Batch training has no freshness to lose: train and score in event-time order.
    cfg = cfg.replace(train=dataclasses.replace(cfg.train, order="event_time", max_hold_s=0.0))
    r = time_range(cfg, from_ms, to_ms)
    snapshot_dir = Path(snapshot_dir).resolve()
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    build(cfg, start=r.start, stop=r.stop, start_snapshot=start_snapshot,
          write_snapshot=str(snapshot_dir), job_name="freshet-replay").execute("freshet-replay")
    manifest = {
        "model_id": cfg.model.model_id, "shards": cfg.train.parallelism,
        "from_ms": from_ms, "to_ms": to_ms, "start": r.start, "stop": r.stop,
        "offsets_from": r.how, "messages": r.messages(), "seconds": time.monotonic() - t,
    }
    (snapshot_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def parse_time(text: str | None) -> int | None:
    """Epoch milliseconds from ``"1700000000000"`` or an ISO time (UTC unless it says).

    Examples
    --------
    >>> parse_time("1000"), parse_time("1970-01-01T00:00:01"), parse_time(None)
    (1000, 1000, None)
    """
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def online_start(snapshot_dir: str | Path) -> dict[int, int]:
    """Where online training continues after a replay: its stop offsets."""
    manifest = json.loads((Path(snapshot_dir) / MANIFEST).read_text())
    return {int(p): int(o) for p, o in manifest["stop"].items()}
