"""Say when a configured slot is one the examples never carry, or carry raw.

A slot the events do not carry trains as empty (its pooled embedding is zero): no error
anywhere, only a worse model. The usual cause is a name that differs between the config
and the events (``genres`` configured, ``genre`` sent). :class:`SlotCheck` watches the
first examples a trainer shard sees and, once, names each configured slot none of them
carried, beside the slot names they did carry. A numeric slot (``boundaries``) whose
examples carry IDs past its buckets was sent raw values (a price of 25 as ID 25) by a
producer that did not bucketise them; that is named too.

Examples
--------
>>> check = SlotCheck(["user_id", "genres"], rows=2)
>>> check.add([{"slots": {"user_id": [1], "genre": [3]}}])
[]
>>> print(*check.add([{"slots": {"user_id": [2]}}]))
slot genres is configured but none of the first 2 examples carried it; they carry: genre, user_id
>>> check.add([{"slots": {}}])
[]
>>> price = SlotCheck(["price"], rows=1, buckets={"price": 4})
>>> print(*price.add([{"slots": {"price": [2, 25]}}]))  # doctest: +ELLIPSIS
slot price is numeric (IDs 0-3, from 3 boundaries) but the first 1 examples carried ID 25: ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class SlotCheck:
    """Watches the first ``rows`` examples' slot names; reports the missing ones once."""

    def __init__(self, configured: Sequence[str], rows: int = 1000,
                 buckets: Mapping[str, int] | None = None) -> None:
        self.configured = list(configured)
        self.buckets = dict(buckets or {})  # numeric slot -> number of IDs it has
        self.outside: dict[str, int] = {}  # numeric slot -> an ID past its buckets
        self.rows = rows
        self.seen_rows = 0
        self.carried: set[str] = set()
        self.done = False

    def add(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Account for ``rows`` (examples as dicts); the warnings due now, if any."""
        if self.done:
            return []
        for r in rows:
            slots = r.get("slots") or {}
            self.carried.update(slots)
            for name, n in self.buckets.items():
                bad = [i for i in slots.get(name, ()) if not 0 <= i < n]
                if bad and name not in self.outside:
                    self.outside[name] = bad[0]
            self.seen_rows += 1
        if self.seen_rows < self.rows:
            return []
        self.done = True
        carried = ", ".join(sorted(self.carried)) or "no slots at all"
        missing = [f"slot {s} is configured but none of the first {self.seen_rows:,} "
                   f"examples carried it; they carry: {carried}"
                   for s in self.configured if s not in self.carried]
        raw = [f"slot {s} is numeric (IDs 0-{self.buckets[s] - 1}, from "
               f"{self.buckets[s] - 1} boundaries) but the first {self.seen_rows:,} examples "
               f"carried ID {i}: a producer sent raw values; bucketise them with "
               "SlotConfig.bucket (the ranking API and freshet produce file do)"
               for s, i in self.outside.items()]
        return missing + raw
