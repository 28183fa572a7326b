"""Impression logging: the features of every item a ranking request returned, to Kafka.

These are the impressions the joiner joins with actions, which closes the loop.
Requests never wait for Kafka: :meth:`ImpressionLogger.log` only puts the request
on a bounded queue; a thread serialises one :class:`freshet.topics.Impression` per
(request, item) and hands it to the asynchronous producer. If the queue is full
(Kafka down or far behind) the request's impressions are dropped and counted,
rather than slowing down or failing ranking.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from freshet.config import Config
from freshet.kafka import producer
from freshet.topics import ORIGIN_HEADER, SCHEMA_VERSION, Impression
from ps.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShownRequest:
    """One ranking request's shown items, their features and what they were scored."""

    request_id: str
    user_id: int
    ts: int  # milliseconds since the epoch
    user_slots: Mapping[str, Sequence[int]]
    items: Sequence[tuple[int, Mapping[str, Sequence[int]]]]  # (item_id, item slots)
    scores: Sequence[float] = ()  # per item: the probability returned (before demotion)
    model_seq: int | None = None  # the dense model's sequence number (trainer's, global)
    table_version: int | None = None  # sparse updates applied to the serving tables


def impression_dicts(req: ShownRequest) -> list[dict]:
    """The :class:`Impression` JSON objects of a request: user and item slots merged,
    and the served score and versions the joiner carries into each example.

    >>> r = ShownRequest("r1", 3, 100, {"user_id": [3]}, [(7, {"item_id": [7]})], [0.25], 4, 9)
    >>> imp = Impression.from_json(orjson.dumps(impression_dicts(r)[0]))
    >>> imp.slots, imp.served_score, imp.model_seq, imp.table_version
    ({'user_id': [3], 'item_id': [7]}, 0.25, 4, 9)
    """
    out = []
    for k, (item_id, slots) in enumerate(req.items):
        merged = {n: list(v) for n, v in req.user_slots.items()}
        for n, v in slots.items():
            merged[n] = merged.get(n, []) + list(v)
        imp = {"v": SCHEMA_VERSION, "request_id": req.request_id, "item_id": item_id,
               "user_id": req.user_id, "ts": req.ts, "slots": merged}
        if req.scores:
            imp.update(served_score=float(req.scores[k]), model_seq=req.model_seq,
                       table_version=req.table_version)
        out.append(imp)
    return out


class ImpressionLogger(threading.Thread):
    """Writes :class:`ShownRequest` s to the ``features`` topic from a background thread.

    Parameters
    ----------
    cfg : Config
        Where the topic is.
    metrics : ServingMetrics
        Counts logged, dropped and failed impressions.
    max_queue : int
        Requests waiting to be logged before new ones are dropped.
    origin : bytes or None
        Put on every record as the ``ORIGIN_HEADER`` header (None: no header).
    on_logged : callable or None
        Called in this thread with each request's impression objects (as encoded) once
        they are handed to the producer: the server's signal feed folds its own
        impressions there rather than parsing them back from the topic.
    """

    def __init__(self, cfg: Config, metrics: ServingMetrics, max_queue: int = 10_000,
                 origin: bytes | None = None,
                 on_logged: Callable[[list[dict]], None] | None = None) -> None:
        super().__init__(name="impression-logger", daemon=True)
        self.topic = cfg.topics.name(Impression.topic)
        self.metrics = metrics
        self.headers = None if origin is None else [(ORIGIN_HEADER, origin)]
        self.on_logged = on_logged
        self.queue: queue.Queue[ShownRequest | None] = queue.Queue(max_queue)
        # Delivery reports for failures only: a Python callback per impression costs CPU
        # that ranking needs.
        self.producer = producer(cfg, **{"linger.ms": 50, "delivery.report.only.error": True})
        self.failed = 0

    def log(self, req: ShownRequest) -> None:
        """Queue a request's impressions; never blocks."""
        try:
            self.queue.put_nowait(req)
        except queue.Full:
            self.metrics.impressions.labels("dropped").inc(len(req.items))

    def run(self) -> None:
        logged = self.metrics.impressions.labels("logged")  # labels() locks and looks up
        while True:
            req = self.queue.get()
            if req is None:
                break
            key = req.request_id.encode()
            imps = impression_dicts(req)
            for imp in imps:
                self._produce(key, orjson.dumps(imp))
            logged.inc(len(req.items))
            if self.on_logged is not None:
                self.on_logged(imps)
            self.producer.poll(0)
        self.producer.flush(10)
        # Drop the client now: the server object may live on (the app holds it) and its
        # client would retry a stopped broker until the process exits.
        self.producer = None

    def _produce(self, key: bytes, value: bytes) -> None:
        try:
            self.producer.produce(self.topic, value, key, on_delivery=self._delivered,
                                  headers=self.headers)
        except BufferError:  # librdkafka's queue is full: wait for room once
            self.producer.poll(0.5)
            self.producer.produce(self.topic, value, key, on_delivery=self._delivered,
                                  headers=self.headers)

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1
            self.metrics.impressions.labels("failed").inc()
            log.warning("impression not delivered: %s", err)

    def stop(self, timeout_s: float = 10.0) -> None:
        self.queue.put(None)
        self.join(timeout_s)
