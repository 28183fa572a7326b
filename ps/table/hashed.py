"""Hashed baseline: a fixed number of rows, ``row = mix64(id) mod n_rows``.

Distinct IDs may share a row (a collision): they then read and train the same
embedding. This is the classic "hashing trick" that Monolith's collisionless table
replaces; it sits behind the same :class:`~ps.table.base.Table` interface so the
two can be compared on the same data. The ID is mixed before the modulo so that
structured IDs (sequential user IDs) collide like random ones.

Examples
--------
>>> t = HashedTable(width=2, n_rows=4)
>>> rows, new = t.insert(np.arange(10))
>>> len(t) <= 4, bool((t.find(np.arange(10)) == rows).all())
(True, True)
>>> t.collisionless
False
"""

from __future__ import annotations

import numpy as np

from ps.hashing import mix64_array
from ps.table.base import Table, check_ids
from ps.table.rows import EMPTY_ID, RowStore


class HashedTable(Table):
    """``n_rows`` rows; an ID's row is fixed by its hash. ``rows.ids[r]`` records the
    first ID that claimed row ``r`` (for deltas and snapshots)."""

    collisionless = False

    def __init__(self, width: int, n_rows: int, seed: int = 0) -> None:
        if n_rows < 1:
            raise ValueError("n_rows must be >= 1")
        self.n_rows = int(n_rows)
        self.seed = seed
        self.rows = RowStore(width, capacity=self.n_rows)
        self.rows.alloc(self.n_rows)  # all rows exist up front, unclaimed
        self.rows.ids[:] = EMPTY_ID
        self._count = 0

    def _home(self, ids: np.ndarray) -> np.ndarray:
        return (mix64_array(ids, self.seed) % np.uint64(self.n_rows)).astype(np.int64)

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes

    def find(self, ids: np.ndarray) -> np.ndarray:
        rows = self._home(check_ids(ids))
        rows[self.rows.ids[rows] == EMPTY_ID] = -1
        return rows

    def insert(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = check_ids(ids)
        rows = self._home(ids)
        unclaimed = self.rows.ids[rows] == EMPTY_ID
        # First claimant of each unclaimed row wins (np.unique keeps first occurrences).
        new_rows, first = np.unique(rows[unclaimed], return_index=True)
        self.rows.ids[new_rows] = ids[unclaimed][first]
        self._count += len(new_rows)
        return rows, new_rows

    def delete(self, ids: np.ndarray) -> np.ndarray:
        """Unclaim the rows of ``ids`` (colliding IDs lose their row too)."""
        ids = check_ids(ids)
        rows = self._home(ids)
        owned = self.rows.ids[rows] != EMPTY_ID
        rows = np.unique(rows[owned])
        self.rows.ids[rows] = EMPTY_ID
        self.rows.dirty[rows] = False
        self._count -= len(rows)
        return np.unique(ids[owned])

    def stats(self) -> dict:
        return {"rows": len(self), "nbytes": self.nbytes, "n_rows": self.n_rows}
