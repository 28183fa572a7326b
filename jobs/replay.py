"""Batch training by replay: the training job over a bounded time range of examples.

``freshet replay --from T1 --to T2`` trains on the examples-topic messages whose Kafka
timestamp ``t`` satisfies ``T1 <= t < T2`` (producers stamp a batch with its last
event time), with the same graph and code as online training (:mod:`jobs.train`).
At the end of the range every shard writes its model under ``<snapshot>/shard-<i>``
and this module writes ``manifest.json`` with the stop offsets, so
``freshet train --from-snapshot <snapshot>`` continues online from exactly the next
message: no gap, no overlap.

Offsets for a time come from the broker (``offsets_for_times``); the end of the topic
is its last stable offset (what a read-committed consumer reads up to).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import TopicPartition

from freshet import kafka
from freshet.config import Config
from jobs.manifest import ReplayModel


@dataclass(frozen=True)
class Range:
    start: dict[int, int]  # partition -> first offset to train
    stop: dict[int, int]  # partition -> first offset not to train

    def messages(self) -> int:
        """Offsets in the range (transaction markers occupy offsets too)."""
        return sum(self.stop[p] - self.start[p] for p in self.stop)


def offsets_at(cfg: Config, topic: str, ts_ms: int | None, begin: bool = False
               ) -> dict[int, int]:
    """Per partition, the first offset whose timestamp is at or after ``ts_ms`` (the end
    when there is none). ``ts_ms=None``: the end, or with ``begin`` the first record kept."""
    marks = kafka.watermarks(cfg, topic)
    ends = {p: high for p, (_, high) in marks.items()}
    if ts_ms is None:
        return {p: low for p, (low, _) in marks.items()} if begin else ends
    c = kafka.consumer(cfg, group=f"freshet-replay-{time.time_ns()}")
    try:
        found = c.offsets_for_times([TopicPartition(topic, p, ts_ms) for p in ends], timeout=10)
    finally:
        c.close()
    return {tp.partition: ends[tp.partition] if tp.offset < 0 else tp.offset for tp in found}


def time_range(cfg: Config, from_ms: int | None, to_ms: int | None) -> Range:
    """Offsets of the examples topic for ``from_ms <= timestamp < to_ms`` (None: open)."""
    topic = cfg.topics.name("examples")
    stop = offsets_at(cfg, topic, to_ms)
    start = offsets_at(cfg, topic, from_ms, begin=True)
    return Range({p: min(start[p], stop[p]) for p in stop}, stop)


def replay_config(cfg: Config) -> Config:
    """Batch training has no freshness to lose: it trains and scores in event-time order."""
    return cfg.replace(train=dataclasses.replace(cfg.train, order="event_time", max_hold_s=0.0))


def replay(cfg: Config, from_ms: int | None, to_ms: int | None, snapshot_dir: str | Path,
           start_snapshot: str | None = None) -> ReplayModel:
    """Train over the range; write the model and ``manifest.json``; return the manifest."""
    from jobs.train import build

    cfg = replay_config(cfg)
    r = time_range(cfg, from_ms, to_ms)
    snapshot_dir = Path(snapshot_dir).resolve()
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    build(cfg, start=r.start, stop=r.stop, start_snapshot=start_snapshot,
          write_snapshot=str(snapshot_dir), job_name="freshet-replay").execute("freshet-replay")
    model = ReplayModel(cfg.model.model_id, cfg.train.parallelism, from_ms, to_ms, r.start,
                        r.stop, r.messages(), time.monotonic() - t)
    model.write(snapshot_dir)
    return model


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
