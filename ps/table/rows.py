"""The row store: every embedding row of one table in one contiguous float32 arena.

A row holds ``width`` float32 values (the embedding followed by its optimizer
state), plus three small per-row columns: the owning ID, the last-update time and
a dirty bit for delta tracking. Indexes (cuckoo or hashed) map IDs to row numbers;
rows never move while the index reshuffles, which keeps cuckoo kicks cheap (a key
and a 4-byte row number move, not 100+ bytes of floats).

Memory: arrays are *reserved* with ``np.empty`` and the OS commits a page only
when it is first written. Rows are handed out densely (free list first, then the
high-water mark), so committed memory is ``high_water * row_bytes`` however large
the reservation. Growth doubles the reservation and copies only the used prefix.

Examples
--------
>>> rs = RowStore(width=4)
>>> rows = rs.alloc(3)
>>> rows.tolist(), rs.high_water
([0, 1, 2], 3)
>>> rs.release(np.array([1]))
>>> rs.alloc(2).tolist()   # the freed row is reused first
[1, 3]
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY_ID = np.iinfo(np.int64).min  # reserved: marks free rows and empty index slots


class RowStore:
    """Dense, growable storage for fixed-width float32 rows addressed by row number.

    Parameters
    ----------
    width : int
        float32 values per row.
    capacity : int
        Initial reservation in rows (grows by doubling).
    """

    def __init__(self, width: int, capacity: int = 1024) -> None:
        self.width = int(width)
        capacity = max(int(capacity), 1)
        self.values = np.empty((capacity, self.width), dtype=np.float32)
        self.ids = np.empty(capacity, dtype=np.int64)
        self.stamps = np.empty(capacity, dtype=np.float64)  # last update time (s)
        self.dirty = np.empty(capacity, dtype=np.bool_)
        self._free = np.empty(capacity, dtype=np.int64)  # stack of released rows
        self.n_free = 0
        self._free_high = 0  # most free-list entries ever used (committed pages)
        self.high_water = 0  # rows [0, high_water) have been handed out at least once

    @property
    def capacity(self) -> int:
        return self.values.shape[0]

    @property
    def row_bytes(self) -> int:
        """Committed bytes per row: values, id, last-update stamp, dirty flag."""
        return 4 * self.width + 8 + 8 + 1

    @property
    def nbytes(self) -> int:
        return self.high_water * self.row_bytes + 8 * self._free_high

    def reserve(self, capacity: int) -> None:
        """Make room for ``capacity`` rows (copying only the used prefix)."""
        if capacity <= self.capacity:
            return
        hw = self.high_water
        for name in ("values", "ids", "stamps", "dirty", "_free"):
            old = getattr(self, name)
            new = np.empty((capacity,) + old.shape[1:], dtype=old.dtype)
            n = self.n_free if name == "_free" else hw
            new[:n] = old[:n]
            setattr(self, name, new)

    def alloc(self, n: int) -> np.ndarray:
        """Hand out ``n`` rows: released rows first, then fresh ones."""
        reuse = min(n, self.n_free)
        rows = np.empty(n, dtype=np.int64)
        rows[:reuse] = self._free[self.n_free - reuse : self.n_free]
        self.n_free -= reuse
        fresh = n - reuse
        if self.high_water + fresh > self.capacity:
            self.reserve(max(2 * self.capacity, self.high_water + fresh))
        rows[reuse:] = np.arange(self.high_water, self.high_water + fresh)
        self.high_water += fresh
        self.ids[rows] = EMPTY_ID
        self.dirty[rows] = False
        return rows

    def release(self, rows: np.ndarray) -> None:
        """Return rows to the free list (their values become garbage)."""
        rows = np.asarray(rows, dtype=np.int64)
        self.ids[rows] = EMPTY_ID
        self.dirty[rows] = False
        self._free[self.n_free : self.n_free + len(rows)] = rows
        self.n_free += len(rows)
        self._free_high = max(self._free_high, self.n_free)

    def live_rows(self) -> np.ndarray:
        """Row numbers currently owned by an ID."""
        return np.flatnonzero(self.ids[: self.high_water] != EMPTY_ID)

    def compacted(self, rows: np.ndarray) -> RowStore:
        """A new store holding only ``rows`` (renumbered 0..n-1 in the given order)."""
        out = RowStore(self.width, capacity=max(len(rows), 1))
        n = len(rows)
        out.values[:n] = self.values[rows]
        out.ids[:n] = self.ids[rows]
        out.stamps[:n] = self.stamps[rows]
        out.dirty[:n] = self.dirty[rows]
        out.high_water = n
        return out

    def gather(self, rows: np.ndarray, dim: int) -> np.ndarray:
        """The first ``dim`` values of each row; row -1 reads zeros."""
        out = np.empty((len(rows), dim), dtype=np.float32)
        _gather(self.values, np.ascontiguousarray(rows, dtype=np.int64), dim, out)
        return out


@njit(cache=True, nogil=True)
def _gather(values: np.ndarray, rows: np.ndarray, dim: int, out: np.ndarray) -> None:
    for i in range(rows.shape[0]):
        r = rows[i]
        if r < 0:
            for j in range(dim):
                out[i, j] = 0.0
        else:
            for j in range(dim):
                out[i, j] = values[r, j]
