"""Collisionless embedding table: bucketized cuckoo hashing (2 tables x 4-slot buckets).

Layout (one flat array per column, ``2 * n_buckets * BUCKET`` slots)::

    keys  int64  [ T0: bucket 0 | bucket 1 | ... | T1: bucket 0 | bucket 1 | ... ]
    rows  int32  [ row number in the RowStore for each occupied slot, -1 if empty ]

An ID lives in one of two buckets: ``h0 = low 32 bits of mix64(id ^ seed)`` in T0
or ``h1 = high 32 bits`` in T1 (both masked to ``n_buckets - 1``). A lookup reads at
most two buckets of 4 keys (32 bytes each). An insert takes any empty slot in
either bucket; if both are full it evicts a pseudo-randomly chosen occupant to its
bucket in the other table, and so on (a random walk of at most ``max_kicks``
moves). A walk that fails (a cycle, or the table is simply full) doubles
``n_buckets`` and rehashes. With 4-slot buckets the walk rarely fails below ~95%
load, so the table grows late and stays dense. Full keys are stored, so two
distinct IDs never share a slot, hence never share a row.

Examples
--------
>>> t = CuckooTable(width=2, initial_buckets=1)   # 8 slots: forces growth below
>>> rows, new = t.insert(np.arange(100))
>>> len(t), len(new), t.stats()["grows"] > 0
(100, 100, True)
>>> bool((t.find(np.arange(100)) == rows).all()), t.find(np.array([1000])).tolist()
(True, [-1])
>>> t.delete(np.array([5, 5, 1000])).tolist(), len(t)
([5], 99)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ps.hashing import mix64
from ps.table.base import Table, check_ids
from ps.table.rows import EMPTY_ID, RowStore

BUCKET = 4  # slots per bucket, as libcuckoo: 4 int64 keys = 32 bytes
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(cache=True, nogil=True, inline="always")
def _bases(key: np.int64, seed: np.uint64, n_buckets: np.int64) -> tuple[np.int64, np.int64]:
    """First slot of the ID's bucket in T0 and in T1."""
    h = mix64(np.uint64(key) ^ seed)
    mask = np.uint64(n_buckets - 1)
    b0 = np.int64(h & _MASK32 & mask)
    b1 = np.int64((h >> _S32) & mask)
    return b0 * BUCKET, (n_buckets + b1) * BUCKET


@njit(cache=True, nogil=True)
def _find(keys, slot_rows, n_buckets, seed, ids, out):  # noqa: ANN001 - numba kernel
    for i in range(ids.shape[0]):
        k = ids[i]
        base0, base1 = _bases(k, seed, n_buckets)
        r = -1
        for j in range(BUCKET):
            if keys[base0 + j] == k:
                r = slot_rows[base0 + j]
        for j in range(BUCKET):
            if keys[base1 + j] == k:
                r = slot_rows[base1 + j]
        out[i] = r


@njit(cache=True, nogil=True)
def _place(keys, slot_rows, n_buckets, seed, ids, rows, start, max_kicks):  # noqa: ANN001
    """Insert absent, distinct ``ids[start:]`` with their ``rows``.

    Returns ``(-1, 0, 0)`` when all settled, else ``(i, key, row)``: the walk for
    ``ids[i]`` failed and left ``(key, row)`` homeless (the caller grows the table,
    re-inserts it and resumes at ``i + 1``).
    """
    for i in range(start, ids.shape[0]):
        k = ids[i]
        r = np.int32(rows[i])
        side = 0
        settled = False
        for kick in range(max_kicks):
            base0, base1 = _bases(k, seed, n_buckets)
            for base in (base0, base1):
                for j in range(BUCKET):
                    if keys[base + j] == EMPTY_ID:
                        keys[base + j] = k
                        slot_rows[base + j] = r
                        settled = True
                        break
                if settled:
                    break
            if settled:
                break
            # Both buckets full: evict a pseudo-random occupant of this side's bucket;
            # it moves to its bucket in the other table on the next step.
            base = base0 if side == 0 else base1
            s = base + np.int64(mix64(np.uint64(k) + np.uint64(kick)) & np.uint64(BUCKET - 1))
            k, keys[s] = keys[s], k
            r, slot_rows[s] = slot_rows[s], r
            side = 1 - side
        if not settled:
            return i, k, np.int64(r)
    return -1, 0, 0


@njit(cache=True, nogil=True)
def _delete(keys, slot_rows, n_buckets, seed, ids, out):  # noqa: ANN001
    for i in range(ids.shape[0]):
        k = ids[i]
        base0, base1 = _bases(k, seed, n_buckets)
        out[i] = -1
        for base in (base0, base1):
            for j in range(BUCKET):
                if keys[base + j] == k:
                    out[i] = slot_rows[base + j]
                    keys[base + j] = EMPTY_ID
                    slot_rows[base + j] = -1


class CuckooTable(Table):
    """Bucketized cuckoo index over a dense :class:`RowStore`.

    Parameters
    ----------
    width : int
        float32 values per row (embedding + optimizer state).
    initial_buckets : int
        Buckets per side to start with (rounded up to a power of two).
    seed : int
        Hash seed.
    max_kicks : int
        Longest eviction walk before the table grows.
    """

    collisionless = True

    def __init__(
        self, width: int, initial_buckets: int = 256, seed: int = 0, max_kicks: int = 500
    ) -> None:
        self.initial_buckets = _pow2(initial_buckets)
        self.seed = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
        self.max_kicks = int(max_kicks)
        self.rows = RowStore(width, capacity=2 * BUCKET * self.initial_buckets)
        self.grow_loads: list[float] = []  # load factor each time the table had to grow
        self._alloc_index(self.initial_buckets)
        self._count = 0

    # -- index storage -------------------------------------------------------------
    def _alloc_index(self, n_buckets: int) -> None:
        self.n_buckets = n_buckets
        self._keys = np.full(2 * BUCKET * n_buckets, EMPTY_ID, dtype=np.int64)
        self._slot_rows = np.full(2 * BUCKET * n_buckets, -1, dtype=np.int32)

    @property
    def slots(self) -> int:
        return self._keys.shape[0]

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._slot_rows.nbytes + self.rows.nbytes

    # -- operations ----------------------------------------------------------------
    def find(self, ids: np.ndarray) -> np.ndarray:
        ids = check_ids(ids)
        out = np.empty(len(ids), dtype=np.int64)
        _find(self._keys, self._slot_rows, self.n_buckets, self.seed, ids, out)
        return out

    def insert(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = check_ids(ids)
        rows = self.find(ids)
        missing = rows < 0
        if not missing.any():
            return rows, np.empty(0, dtype=np.int64)
        new_ids, inverse = np.unique(ids[missing], return_inverse=True)
        new_rows = self.rows.alloc(len(new_ids))
        self.rows.ids[new_rows] = new_ids
        self._place_all(new_ids, new_rows)
        rows[missing] = new_rows[inverse]
        return rows, new_rows

    def delete(self, ids: np.ndarray) -> np.ndarray:
        ids = check_ids(ids)
        out = np.empty(len(ids), dtype=np.int64)
        _delete(self._keys, self._slot_rows, self.n_buckets, self.seed, ids, out)
        hit = out >= 0
        self._count -= int(hit.sum())
        self.rows.release(out[hit])
        return ids[hit]

    def _place_all(self, ids: np.ndarray, rows: np.ndarray) -> None:
        start = 0
        while True:
            i, key, row = _place(
                self._keys, self._slot_rows, self.n_buckets, self.seed, ids, rows, start,
                self.max_kicks,
            )
            if i < 0:
                self._count += len(ids) - start
                return
            self._count += i - start  # ids[start..i] placed, one key left homeless
            self._grow(homeless=(key, row))
            start = i + 1

    def _grow(self, homeless: tuple[int, int]) -> None:
        self.grow_loads.append(self._count / self.slots)
        occupied = self._keys != EMPTY_ID
        ids = np.append(self._keys[occupied], np.int64(homeless[0]))
        rows = np.append(self._slot_rows[occupied].astype(np.int64), np.int64(homeless[1]))
        self._rehash(2 * self.n_buckets, ids, rows)

    def _rehash(self, n_buckets: int, ids: np.ndarray, rows: np.ndarray) -> None:
        """Rebuild the index with ``n_buckets`` per side, doubling again on failure."""
        while True:
            self._alloc_index(n_buckets)
            i, _, _ = _place(
                self._keys, self._slot_rows, n_buckets, self.seed, ids, rows, 0, self.max_kicks
            )
            if i < 0:
                break
            n_buckets *= 2
        self._count = len(ids)

    def compact(self) -> None:
        """Renumber live rows densely and shrink the index to fit them at <= 50% load."""
        ids, rows = self.items()
        self.rows = self.rows.compacted(rows)
        n_buckets = max(self.initial_buckets, _pow2(-(-len(ids) // BUCKET)))
        self._rehash(n_buckets, ids, np.arange(len(ids), dtype=np.int64))

    def stats(self) -> dict:
        return {
            "rows": len(self),
            "nbytes": self.nbytes,
            "buckets_per_side": self.n_buckets,
            "slots": self.slots,
            "load_factor": len(self) / self.slots,
            "grows": len(self.grow_loads),
            "load_factor_at_grow": self.grow_loads[-1] if self.grow_loads else None,
        }


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()
