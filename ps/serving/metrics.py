"""The serving process's Prometheus metrics, in one registry per server.

A registry per :class:`ServingMetrics` (not the global one) lets tests and
benchmarks run several servers in one process.

==========================================  =============================================
metric                                      meaning
==========================================  =============================================
``freshet_serving_delta_lag_seconds``       apply time minus the update's wall time
``freshet_serving_freshness_seconds``       apply time minus the update's event-time
                                            watermark: how old the newest action it
                                            includes is when it becomes servable
``freshet_serving_request_seconds``         ``/rank`` latency, by outcome
``freshet_serving_updates_total``           complete updates applied, by kind
``freshet_serving_duplicates_total``        parts dropped as re-deliveries
``freshet_serving_dense_gate_total``        dense updates by outcome (accepted/rejected)
``freshet_serving_table_version``           sparse updates applied (monotonic)
``freshet_serving_model_version``           dense models swapped in; ``..._model_seq``
``freshet_serving_table_rows``              rows per slot; ``..._table_bytes`` total
``freshet_serving_offset_resets_total``     params topic found shorter than the snapshot
``freshet_serving_impressions_total``       impressions logged / dropped
``freshet_serving_gc_pause_seconds``        garbage-collector pauses, by generation
``freshet_serving_signal_events_total``     fresh-signal feed events: folded, late (folded
                                            at the state's time), malformed
``freshet_serving_signal_pending``          events the feed holds back for its lateness
==========================================  =============================================
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sized
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class FeedCounters(Protocol):
    """What :meth:`ServingMetrics.watch_signals` reads (``server.signals.SignalFeed``)."""

    folded: int
    late: int
    malformed: int
    pending: Sized


class _FeedCollector:
    """The feed's own counters, read at each scrape (the feed keeps plain ints)."""

    def __init__(self, feed: FeedCounters) -> None:
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily("freshet_serving_signal_events",
                                     "Fresh-signal feed events by outcome", labels=["outcome"])
        for outcome in ("folded", "late", "malformed"):
            events.add_metric([outcome], getattr(self.feed, outcome))
        yield events
        yield GaugeMetricFamily("freshet_serving_signal_pending",
                                "Events held back for the feed's lateness",
                                value=len(self.feed.pending))


class ServingMetrics:
    """Every metric of one serving process."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "freshet_serving_"
        self.delta_lag = Histogram(p + "delta_lag_seconds", "Apply time minus delta wall time",
                                   ["kind"], buckets=_LAG_BUCKETS, registry=r)
        self.freshness = Histogram(p + "freshness_seconds",
                                   "Apply time minus the update's event-time watermark",
                                   buckets=_LAG_BUCKETS, registry=r)
        self.request = Histogram(p + "request_seconds", "Ranking request latency",
                                 ["outcome"], buckets=_LATENCY_BUCKETS, registry=r)
        self.updates = Counter(p + "updates", "Complete updates applied", ["kind"], registry=r)
        self.duplicates = Counter(p + "duplicates", "Re-delivered parts dropped", registry=r)
        self.malformed = Counter(p + "malformed_deltas", "Undecodable params records",
                                 registry=r)
        self.gate = Counter(p + "dense_gate", "Dense updates by gate outcome", ["outcome"],
                            registry=r)
        self.table_version = Gauge(p + "table_version", "Sparse updates applied", registry=r)
        self.model_version = Gauge(p + "model_version", "Dense models swapped in", registry=r)
        self.model_seq = Gauge(p + "model_seq", "Seq of the serving dense model", registry=r)
        self.table_rows = Gauge(p + "table_rows", "Rows per slot", ["slot"], registry=r)
        self.table_bytes = Gauge(p + "table_bytes", "Bytes of all serving tables", registry=r)
        self.offset_resets = Counter(p + "offset_resets",
                                     "Params topic shorter than the snapshot's offsets",
                                     registry=r)
        self.snapshots = Counter(p + "snapshots", "Snapshots written", registry=r)
        self.impressions = Counter(p + "impressions", "Impressions logged or dropped",
                                   ["outcome"], registry=r)
        self.gc_pause = Histogram(p + "gc_pause_seconds", "Garbage-collector pauses",
                                  ["generation"], buckets=_LATENCY_BUCKETS, registry=r)

    def watch_signals(self, feed: FeedCounters) -> None:
        """Export a fresh-signal feed's counters (``freshet_serving_signal_*``).

        >>> from types import SimpleNamespace
        >>> from prometheus_client import generate_latest
        >>> m = ServingMetrics()
        >>> m.watch_signals(SimpleNamespace(folded=5, late=2, malformed=0, pending=[1]))
        >>> [ln for ln in generate_latest(m.registry).decode().splitlines()
        ...  if ln.startswith("freshet_serving_signal") and "late" in ln]
        ['freshet_serving_signal_events_total{outcome="late"} 2.0']
        """
        self.registry.register(_FeedCollector(feed))

    def watch_gc(self) -> None:
        """Time every garbage collection (a full one can stall requests)."""
        started = [0.0]

        def callback(phase: str, info: dict) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                self.gc_pause.labels(str(info["generation"])).observe(
                    time.perf_counter() - started[0])

        gc.callbacks.append(callback)
