"""Holding examples until the negatives of their event time arrive.

The joiner emits a positive when its action arrives, a negative only when the
watermark passes the end of its window. Trained in arrival order, a user's positives
therefore reach the model before that user's negatives of the same moment. On a real
stream that gap is the join window; on a replay compressed in time (the demo plays
seven months in ~90 s) it is hundreds of ratings, and it biases the model towards
whatever was labelled positive most recently (``freshet experiment join_order
--delay-ratings``).

A :class:`HoldBuffer` keeps arriving examples and releases them in event-time order
once the joiner has decided everything up to their time. The frontier is the latest
*earliest negative* of a message: the joiner batches what its watermark closed in one
interval, so a message's earliest negative is later than every negative of earlier
intervals (its latest one can run far ahead of other partitions'). Releases come in
whole micro-batches: the trainer's optimizer takes a step per micro-batch whatever its
size, and a step on a handful of one-label examples moves the model as far as a full
one. An example held longer than ``max_hold_s`` goes regardless (a stream with few
negatives, e.g. heavy negative sampling, must not stall positives). ``max_hold_s = 0``
trains in arrival order, the default (``train.hold_for_negatives_s``): holding costs
positives the join window in freshness.

Examples
--------
>>> import numpy as np
>>> h = HoldBuffer(max_hold_s=5.0, multiple=2)
>>> rows = [{"ts": 10, "label": 1}, {"ts": 30, "label": 1}, {"ts": 12, "label": 1}]
>>> h.add(rows, np.array([10, 30, 12]), np.array([1, 1, 1]), now=0.0)
>>> h.release(now=1.0)  # no negative yet: nothing is decided
[]
>>> h.add([{"ts": 20, "label": 0}], np.array([20]), np.array([0]), now=1.0)
>>> [r["ts"] for r in h.release(now=1.0)]  # 10, 12, 20 are due: a whole micro-batch
[10, 12]
>>> [r["ts"] for r in h.release(now=6.5)]  # held for more than 5 s
[20, 30]
>>> h.add(rows[:1], np.array([10]), np.array([1]), now=7.0)
>>> again = HoldBuffer(max_hold_s=5.0, multiple=2)
>>> again.load(h.state(), now=0.0)
>>> [r["ts"] for r in again.release(now=0.0, everything=True)], again.frontier
([10], 20)
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

_EVENT_TIME = operator.itemgetter(0, 1)  # (ts, arrival seq) of a held item


class HoldBuffer:
    """Examples (as decoded JSON rows) waiting for the negatives of their time."""

    def __init__(self, max_hold_s: float, multiple: int = 1) -> None:
        self.max_hold_s = max_hold_s
        self.multiple = max(multiple, 1)  # release this many rows at a time
        self.frontier: int | None = None  # event time (ms) decided by the joiner
        self._held: list[tuple[int, int, float, Any]] = []  # (ts, seq, arrived, row)
        self._seq = 0

    def __len__(self) -> int:
        return len(self._held)

    def add(self, rows: list[Any], ts: np.ndarray, label: np.ndarray, now: float) -> None:
        """Hold one message's ``rows`` (their event times ``ts`` and labels, as checked
        by the caller), arrived at monotonic time ``now``."""
        negatives = ts[label == 0]
        if len(negatives):
            earliest = int(negatives.min())
            self.frontier = earliest if self.frontier is None else max(self.frontier, earliest)
        for row, t in zip(rows, ts.tolist(), strict=True):
            self._held.append((t, self._seq, now, row))
            self._seq += 1

    def release(self, now: float, everything: bool = False) -> list[Any]:
        """The rows due, in event-time order (arrival order among equal times)."""
        if everything or self.max_hold_s <= 0:
            due, self._held = self._held, []
            if self.max_hold_s > 0:
                due.sort(key=_EVENT_TIME)
        else:
            cut, frontier = now - self.max_hold_s, self.frontier
            due, keep = [], []
            for item in self._held:
                ready = item[2] <= cut or (frontier is not None and item[0] <= frontier)
                (due if ready else keep).append(item)
            due.sort(key=_EVENT_TIME)
            extra = len(due) % self.multiple
            if extra and not any(item[2] <= cut for item in due[-extra:]):
                keep = due[-extra:] + keep  # wait to fill the micro-batch
                due = due[:-extra]
            self._held = keep
        return [item[3] for item in due]

    def state(self) -> dict[str, Any]:
        """JSON-able: the frontier and the held rows (their hold time restarts on load)."""
        return {"frontier": self.frontier, "ts": [item[0] for item in self._held],
                "rows": [item[3] for item in self._held]}

    def load(self, state: dict[str, Any], now: float) -> None:
        """Take back what :meth:`state` gave, in the same order."""
        self.frontier = state["frontier"]
        self._held = [(t, i, now, row)
                      for i, (t, row) in enumerate(zip(state["ts"], state["rows"], strict=True))]
        self._seq = len(self._held)
