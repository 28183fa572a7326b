"""Live figures of the running demo: what the producer sent, the trainer's progressive
AUC (metrics topic), and the serving process's tables, watermark and latency (HTTP).

Freshness here is end to end and in wall time: the serving watermark says up to
which event time the served embeddings include the training examples; the producer
logged when it sent each event time; now minus that send time is how long an action
took to reach the served model (joiner + trainer + params topic + loader).

Examples
--------
>>> sent = SendLog(every=1)
>>> sent.record(1_000, wall=10.0); sent.record(2_000, wall=11.0); sent.record(3_000, wall=12.5)
>>> sent.sent_at(2_000), sent.sent_at(2_500), sent.sent_at(9_000)
(11.0, 12.5, None)
>>> sparse = SendLog(every=2)
>>> sparse.record(1_000, wall=1.0); sparse.record(2_000, wall=2.0); sparse.record(3_000, wall=3.0)
>>> sparse.sent_at(2_500), sparse.sent_at(3_000)
(3.0, 3.0)
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from freshet.config import Config
from freshet.kafka import consumer
from server.client import request


class SendLog:
    """Event time -> wall time it was produced, for every ``every``-th event."""

    def __init__(self, every: int = 50) -> None:
        self.every = every
        self.count = 0
        self.ts: list[int] = []
        self.wall: list[float] = []
        self.last: tuple[int, float] | None = None  # the newest event, logged or not
        self.lock = threading.Lock()

    def record(self, ts_ms: int, wall: float | None = None) -> None:
        self.count += 1
        wall = time.monotonic() if wall is None else wall
        self.last = (ts_ms, wall)
        if self.count % self.every == 0 and (not self.ts or ts_ms > self.ts[-1]):
            with self.lock:
                self.ts.append(ts_ms)
                self.wall.append(wall)

    def sent_at(self, ts_ms: int) -> float | None:
        """When the first logged event at or after ``ts_ms`` was sent (None: not yet)."""
        with self.lock:
            i = bisect.bisect_left(self.ts, ts_ms)
            if i < len(self.ts):
                return self.wall[i]
        last = self.last
        return last[1] if last is not None and ts_ms <= last[0] else None


class MetricsTail(threading.Thread):
    """Reads the metrics topic from the start, keeping the trainer's window figures."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(daemon=True, name="metrics-tail")
        self.cfg = cfg
        self.stop_event = threading.Event()
        self.windows: list[dict[str, float]] = []  # wall s, examples, auc, cumulative auc
        self.t0 = time.monotonic()

    def run(self) -> None:
        c = consumer(self.cfg, group=f"freshet-demo-{time.time_ns()}")
        c.assign([TopicPartition(self.cfg.topics.name("metrics"), 0, 0)])
        try:
            while not self.stop_event.is_set():
                for m in c.consume(1000, timeout=0.5):
                    if m.error() is None:
                        self.take(json.loads(m.value()))
        finally:
            c.close()

    def take(self, m: dict[str, Any]) -> None:
        """One metric. A window's figures arrive in order (one trainer shard): its
        ``auc`` (labelled with the window), then the cumulative ``trained_examples``,
        ``progressive_auc`` and, once serving has scored impressions, ``served_auc``
        and ``served_examples`` (also reported when the stream pauses, without a
        window's ``auc``: they then update the last window)."""
        labels = m.get("labels", {})
        if m.get("job") != "train" or labels.get("final") == "true":
            return
        if m["name"] == "auc" and "window" in labels:
            self.windows.append({"t": time.monotonic() - self.t0, "auc": m["value"]})
            return
        key = {"trained_examples": "trained", "progressive_auc": "cumulative_auc",
               "served_auc": "served_auc", "served_examples": "served_examples"}.get(m["name"])
        if self.windows and key is not None:
            self.windows[-1][key] = m["value"]
            self.windows[-1]["order"] = labels.get("order", "arrival")

    def latest(self) -> dict[str, float]:
        return dict(self.windows[-1]) if self.windows else {}


def http(port: int, path: str, body: dict | None = None, timeout: float = 5.0
         ) -> tuple[int, Any]:
    """``(status, JSON or text)`` of a request to the local server; (0, None) if down."""
    try:
        return request(port, path, body, timeout)
    except OSError:
        return 0, None


def or_dash(v: Any, fmt: str) -> str:
    """``v`` formatted, or ``-`` when it is None (not measured yet)."""
    return "-" if v is None else format(v, fmt)


@dataclass
class Sample:
    """One poll of the live system (``t``: seconds since the demo started)."""

    t: float
    produced: int
    events_per_s: float
    trained: float | None
    auc: float | None
    serving_rows: int | None
    table_version: int | None
    freshness_s: float | None
    rank_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        f = or_dash
        return (f"[demo {self.t:5.0f}s] produced {self.produced:,} ({self.events_per_s:,.0f}/s)"
                f" | trained {f(self.trained, ',.0f')}"
                f" | served AUC (logged) {f(self.extra.get('logged_served_auc'), '.4f')}"
                f" | progressive AUC ({self.extra.get('order', 'arrival')} order) "
                f"{f(self.auc, '.4f')}"
                f" | served rows {f(self.serving_rows, ',')} v{f(self.table_version, 'd')}"
                f" | freshness {f(self.freshness_s, '.1f')}s | rank {f(self.rank_ms, '.0f')}ms")
