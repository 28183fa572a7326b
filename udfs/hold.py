"""Training in event-time order: examples wait until the joiner has decided their time.

The joiner emits a positive when its action arrives and a negative only when its
window closes, so examples reach the trainer far out of event-time order: in a
bounded replay a positive arrives a median ~2,000 examples before its place. Scored in
that order, the progressive AUC rewards the order (positives arrive when the model
has just learnt positives) instead of the model: 0.87 reported where 0.76 is true.

With ``train.order = "event_time"`` the trainer holds examples until the watermark of
the examples topic passes their event time, then trains them sorted by
:func:`event_key`, in whole micro-batches. Each examples message carries, as its
Kafka timestamp, the joiner's watermark after the join when it was written (every
impression up to that event time has had its example emitted: ``sql/insert.sql``),
and the trainer's source turns those into a Flink watermark, the minimum over
partitions (``jobs/train.py``). So every example is scored by the model as it stood
at its event time, and a bounded replay trains exactly the sequence of micro-batches
an in-process run over the sorted examples does.

The hold keeps one invariant, which makes its state cheap: after every call, the
held examples are exactly those seen whose key is above the last one trained. An
example that arrives below it is *late* (the watermark passed its time without it):
it is trained at once, out of order, and counted. So a restore needs only the
arrived messages and the last trained key to rebuild what is held.

Examples
--------
>>> import numpy as np
>>> def row(ts, rid):
...     return {"ts": ts, "request_id": rid, "item_id": 1}
>>> h = EventTimeHold(multiple=2)
>>> h.add([row(30, "c"), row(10, "a"), row(20, "b")], now=0.0)
[]
>>> [r["ts"] for r in h.release(frontier_ms=25, now=0.0)]  # 10 and 20 are decided
[10, 20]
>>> [r["ts"] for r in h.add([row(15, "x"), row(40, "d")], now=0.0)]  # 15 is late
[15]
>>> [r["ts"] for r in h.release(frontier_ms=None, now=0.0, everything=True)]
[30, 40]
>>> h.late, len(h)
(1, 0)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Key = tuple[int, str, int]


def event_key(row: Any) -> Key:
    """The order examples are trained in: event time, then request and item id.

    The ids break ties (many ratings share a second) the same way in the trainer and
    in an in-process run over sorted examples.
    """
    return int(row["ts"]), str(row["request_id"]), int(row.get("item_id", 0))


class EventTimeHold:
    """Examples (decoded JSON rows) waiting for the watermark to pass their time.

    Parameters
    ----------
    multiple
        Releases come in multiples of this many rows (the trainer's micro-batch), so
        that micro-batch boundaries do not depend on when watermarks arrive.
    max_hold_s
        A row held this long (wall clock) is released regardless, with every held row
        below it. 0: no limit.
    min_release, max_wait_s
        Rows the watermark has passed go out together once at least ``min_release`` are
        due, or once the oldest due one has waited ``max_wait_s`` (the trainer's cost is
        per call: ``train.batch_examples``, ``train.batch_wait_ms``).
    """

    def __init__(self, multiple: int = 1, max_hold_s: float = 0.0, min_release: int = 1,
                 max_wait_s: float = 0.0) -> None:
        self.multiple = max(multiple, 1)
        self.max_hold_s = max_hold_s
        self.min_release, self.max_wait_s = min_release, max_wait_s
        self.last_key: Key | None = None  # the last trained key
        self.late = 0  # rows that arrived below last_key
        self._held: list[tuple[Key, float, Any]] = []  # (key, arrived, row)

    def __len__(self) -> int:
        return len(self._held)

    def add(self, rows: Iterable[Any], now: float) -> list[Any]:
        """Hold ``rows`` arrived at monotonic time ``now``; returns the late ones, to be
        trained at once."""
        late = []
        for r in rows:
            k = event_key(r)
            if self.last_key is not None and k <= self.last_key:
                late.append(r)
            else:
                self._held.append((k, now, r))
        self.late += len(late)
        return late

    def release(self, frontier_ms: int | None, now: float, everything: bool = False
                ) -> list[Any]:
        """Rows due, in key order: those at or below the watermark ``frontier_ms`` (in
        whole multiples), below any row held longer than ``max_hold_s``, or all."""
        if not self._held:
            return []
        self._held.sort(key=lambda x: x[0])
        if everything:
            n = len(self._held)
        else:
            n = 0
            if frontier_ms is not None:
                while n < len(self._held) and self._held[n][0][0] <= frontier_ms:
                    n += 1
                waited = n and now - min(x[1] for x in self._held[:n]) >= self.max_wait_s
                n = n - n % self.multiple if n >= self.min_release or waited else 0
            if self.max_hold_s > 0:
                cut = now - self.max_hold_s
                overdue = [i for i, x in enumerate(self._held) if x[1] <= cut]
                if overdue:
                    n = max(n, overdue[-1] + 1)
        due, self._held = self._held[:n], self._held[n:]
        if due:
            self.last_key = due[-1][0]
        return [x[2] for x in due]

    def next_due_ms(self) -> int | None:
        """Event time at which the watermark makes a whole multiple due (None: empty)."""
        if not self._held:
            return None
        keys = sorted(x[0][0] for x in self._held)
        return keys[min(self.multiple, len(keys)) - 1]

    def oldest_arrival(self) -> float | None:
        return min((x[1] for x in self._held), default=None)

    def clears_on_release(self) -> bool:
        """Whether a release trains everything held (so the held list can be emptied)."""
        return False

    def rows(self) -> list[Any]:
        return [x[2] for x in self._held]

    def state(self) -> dict[str, Any]:
        """JSON-able bookkeeping (the rows themselves are in the state's held list)."""
        return {"last_key": None if self.last_key is None else list(self.last_key),
                "late": self.late}

    def load(self, state: dict[str, Any], arrived: Iterable[Any], now: float) -> None:
        """Rebuild from :meth:`state` and every row that arrived since the held list was
        last rewritten: those above the last trained key are held."""
        key = state.get("last_key")
        self.last_key = tuple(key) if key is not None else None
        self._held = []
        self.add(arrived, now)
        self.late = state.get("late", 0)  # the rows below were trained before: not late


class ArrivalHold:
    """Arrival order: examples wait only to be trained together, at least
    ``min_release`` at a time or once the oldest has waited ``max_wait_s``.

    The trainer's cost is per call (decoding, one state write, a sync check), so
    training several small messages at once is what keeps its rate whatever size the
    joiner's messages are. The same interface as :class:`EventTimeHold`; nothing is
    ever late.

    Examples
    --------
    >>> h = ArrivalHold(min_release=3, max_wait_s=1.0)
    >>> h.add([{"ts": 5}, {"ts": 1}], now=0.0), h.release(None, now=0.5)
    ([], [])
    >>> [r["ts"] for r in h.release(None, now=1.0)]  # waited long enough, in arrival order
    [5, 1]
    """

    late = 0
    last_key = None

    def __init__(self, min_release: int = 1, max_wait_s: float = 0.0) -> None:
        self.min_release, self.max_wait_s = min_release, max_wait_s
        self._held: list[tuple[float, Any]] = []  # (arrived, row)

    def __len__(self) -> int:
        return len(self._held)

    def add(self, rows: Iterable[Any], now: float) -> list[Any]:
        self._held += [(now, r) for r in rows]
        return []

    def release(self, frontier_ms: int | None, now: float, everything: bool = False
                ) -> list[Any]:
        if not self._held or not (everything or len(self._held) >= self.min_release
                                  or now - self._held[0][0] >= self.max_wait_s):
            return []
        due, self._held = self._held, []
        return [r for _, r in due]

    def next_due_ms(self) -> int | None:
        return None  # no event-time deadline

    def oldest_arrival(self) -> float | None:
        return self._held[0][0] if self._held else None

    def clears_on_release(self) -> bool:
        return True

    def rows(self) -> list[Any]:
        return [r for _, r in self._held]

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any], arrived: Iterable[Any], now: float) -> None:
        """Everything in the held list is still to be trained (it is emptied on release)."""
        self._held = [(now, r) for r in arrived]
