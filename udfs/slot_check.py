"""Say when a configured slot is one the examples never carry.

A slot the events do not carry trains as empty (its pooled embedding is zero): no error
anywhere, only a worse model. The usual cause is a name that differs between the config
and the events (``genres`` configured, ``genre`` sent). :class:`SlotCheck` watches the
first examples a trainer shard sees and, once, names each configured slot none of them
carried, beside the slot names they did carry.

Examples
--------
>>> check = SlotCheck(["user_id", "genres"], rows=2)
>>> check.add([{"slots": {"user_id": [1], "genre": [3]}}])
[]
>>> print(*check.add([{"slots": {"user_id": [2]}}]))
slot genres is configured but none of the first 2 examples carried it; they carry: genre, user_id
>>> check.add([{"slots": {}}])
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class SlotCheck:
    """Watches the first ``rows`` examples' slot names; reports the missing ones once."""

    def __init__(self, configured: Sequence[str], rows: int = 1000) -> None:
        self.configured = list(configured)
        self.rows = rows
        self.seen_rows = 0
        self.carried: set[str] = set()
        self.done = False

    def add(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Account for ``rows`` (examples as dicts); the warnings due now, if any."""
        if self.done:
            return []
        for r in rows:
            self.carried.update(r.get("slots") or {})
            self.seen_rows += 1
        if self.seen_rows < self.rows:
            return []
        self.done = True
        carried = ", ".join(sorted(self.carried)) or "no slots at all"
        return [f"slot {s} is configured but none of the first {self.seen_rows:,} examples "
                f"carried it; they carry: {carried}"
                for s in self.configured if s not in self.carried]
