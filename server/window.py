"""The recent labelled examples the validation gate evaluates on.

:class:`ExampleWindow` keeps the newest ``size`` examples (whole batches, oldest
dropped first); :class:`ExampleTail` is a thread that follows the ``examples``
topic from its end and feeds the window.

Examples
--------
>>> from freshet.topics import Example, encode_examples
>>> w = ExampleWindow(size=3)
>>> for i in range(4):
...     w.add(ExampleBatch.from_json(encode_examples([Example(f"r{i}", i, 1, i, i % 2)])))
>>> b = w.batch(); len(b), b.item_id.tolist()
(3, [1, 2, 3])
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np
from confluent_kafka import OFFSET_END, TopicPartition

from freshet.config import Config
from freshet.kafka import consumer, partitions
from freshet.topics import ExampleBatch, SchemaError

log = logging.getLogger(__name__)


class ExampleWindow:
    """The newest ``size`` examples, as batches; thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._batches: deque[ExampleBatch] = deque()
        self._count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def add(self, batch: ExampleBatch) -> None:
        if len(batch) == 0:
            return
        with self._lock:
            self._batches.append(batch)
            self._count += len(batch)
            while self._batches and self._count - len(self._batches[0]) >= self.size:
                self._count -= len(self._batches.popleft())

    def batch(self) -> ExampleBatch | None:
        """The window's newest ``size`` examples as one batch (None if empty)."""
        with self._lock:
            batches = list(self._batches)
        if not batches:
            return None
        merged = concat(batches)
        skip = max(0, len(merged) - self.size)
        return take(merged, np.arange(skip, len(merged)))


def concat(batches: list[ExampleBatch]) -> ExampleBatch:
    """One batch holding all rows of ``batches`` in order."""
    names = sorted({s for b in batches for s in b.slots})
    slots = {}
    for s in names:
        ids, offs, base = [], [np.zeros(1, np.int64)], 0
        for b in batches:
            i, o = b.slots.get(s, (np.zeros(0, np.int64), np.zeros(len(b) + 1, np.int64)))
            ids.append(i)
            offs.append(o[1:] + base)
            base += len(i)
        slots[s] = (np.concatenate(ids), np.concatenate(offs))
    return ExampleBatch(
        request_id=[r for b in batches for r in b.request_id],
        item_id=np.concatenate([b.item_id for b in batches]),
        user_id=np.concatenate([b.user_id for b in batches]),
        ts=np.concatenate([b.ts for b in batches]),
        label=np.concatenate([b.label for b in batches]),
        sample_rate=np.concatenate([b.sample_rate for b in batches]),
        actions={a: np.concatenate([b.actions[a] for b in batches]) for a in batches[0].actions},
        slots=slots,
    )


def take(batch: ExampleBatch, rows: np.ndarray) -> ExampleBatch:
    """The consecutive ``rows`` (an arange) of ``batch``."""
    lo, hi = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
    slots = {s: (ids[o[lo]:o[hi]], o[lo:hi + 1] - o[lo]) for s, (ids, o) in batch.slots.items()}
    return ExampleBatch(
        request_id=batch.request_id[lo:hi], item_id=batch.item_id[lo:hi],
        user_id=batch.user_id[lo:hi], ts=batch.ts[lo:hi], label=batch.label[lo:hi],
        sample_rate=batch.sample_rate[lo:hi],
        actions={a: c[lo:hi] for a, c in batch.actions.items()}, slots=slots,
    )


class ExampleTail(threading.Thread):
    """Follows the ``examples`` topic from its end into an :class:`ExampleWindow`."""

    def __init__(self, cfg: Config, window: ExampleWindow, from_beginning: bool = False) -> None:
        super().__init__(name="example-tail", daemon=True)
        self.cfg = cfg
        self.window = window
        self.from_beginning = from_beginning
        self._halt = threading.Event()
        self.malformed = 0

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        topic = self.cfg.topics.name("examples")
        c = consumer(self.cfg, group="freshet-serve-examples", **{"fetch.wait.max.ms": 100})
        try:
            start = 0 if self.from_beginning else OFFSET_END
            c.assign([TopicPartition(topic, p, start) for p in partitions(self.cfg, topic)])
            while not self._halt.is_set():
                for m in c.consume(200, timeout=0.2):
                    if m.error() is not None:
                        continue
                    try:
                        self.window.add(ExampleBatch.from_json(m.value()))
                    except SchemaError:
                        self.malformed += 1
        except Exception:  # the gate then sees an empty window; serving carries on
            log.exception("example tail stopped")
        finally:
            c.close()
