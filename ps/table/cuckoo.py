"""Collisionless embedding table: bucketized cuckoo hashing (2 tables x 5-slot buckets).

Index layout: ``2 * n_buckets`` buckets, each one 64-byte cache line holding 5 int64
keys and the 5 int32 row numbers that go with them::

    bucket b:  [ key0 .. key4 (5 x int64) | row0 .. row4 (5 x int32) | pad ]   (64 B)
    buckets:   [ T0: 0 .. n_buckets-1 | T1: n_buckets .. 2*n_buckets-1 ]

(The kernels see one line as 8 int64 words for the keys and, through an int32 view of
the same memory, 16 int32 words, the rows at 10..14.) 12.8 index bytes per slot
instead of 16 with int64 rows: right after the index doubles (load ~0.48) that is
what keeps the table within 1.3x its raw bytes (docs/ps.md).

An ID lives in one of two buckets: ``h0 = low 32 bits of mix64(id ^ seed)`` in T0
or ``h1 = high 32 bits`` in T1 (both masked to ``n_buckets - 1``). A lookup reads at
most two cache lines, then the ID's row in the :class:`RowStore`. An insert takes
any empty slot in either bucket; if both are full it evicts a pseudo-randomly
chosen occupant to its bucket in the other table, and so on (a random walk of at
most ``max_kicks`` moves). A walk that fails (a cycle, or the table is simply
full) doubles ``n_buckets`` and rehashes. With 5-slot buckets walks rarely fail
below ~95% load, so the table grows late and stays dense. Full keys are stored,
so two distinct IDs never share a slot, hence never share a row.

Examples
--------
>>> t = CuckooTable(width=2, initial_buckets=1)   # 10 slots: forces growth below
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
from ps.table.prefetch import prefetch
from ps.table.rows import EMPTY_ID, RowStore

BUCKET = 5  # slots per bucket (one cache line)
_LINE = 8  # int64 words per bucket
ROW_WORD = 10  # int32 word of row 0 in a bucket (after the 5 keys' 10 int32 words)
MAX_ROWS = 2**31 - 1  # row numbers are int32
_AHEAD = 8  # pipeline distance: keys whose cache lines are in flight
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(cache=True, nogil=True, inline="always")
def _homes(key: np.int64, seed: np.uint64, n_buckets: np.int64) -> tuple[np.int64, np.int64]:
    """The ID's bucket in T0 and in T1 (indexes into the bucket array)."""
    h = mix64(np.uint64(key) ^ seed)
    mask = np.uint64(n_buckets - 1)
    return np.int64(h & _MASK32 & mask), n_buckets + np.int64((h >> _S32) & mask)


@njit(cache=True, nogil=True, inline="always")
def _probe(buckets, rows32, b0, b1, key):  # noqa: ANN001, ANN202 - numba helper
    """Row of ``key`` in buckets b0/b1, or -1 (reads both lines: no branch to mispredict)."""
    r = np.int64(-1)
    for j in range(BUCKET):
        if buckets[b0, j] == key:
            r = np.int64(rows32[b0, ROW_WORD + j])
    for j in range(BUCKET):
        if buckets[b1, j] == key:
            r = np.int64(rows32[b1, ROW_WORD + j])
    return r


@njit(cache=True, nogil=True)
def _find(buckets, rows32, n_buckets, seed, ids, out):  # noqa: ANN001 - numba kernel
    """out[i] = row of ids[i] or -1. Pipelined: hash and prefetch _AHEAD keys early."""
    n = ids.shape[0]
    homes = np.empty((n, 2), np.int64)
    for t in range(n + _AHEAD):
        if t < n:
            b0, b1 = _homes(ids[t], seed, n_buckets)
            homes[t, 0], homes[t, 1] = b0, b1
            prefetch(buckets, b0)
            prefetch(buckets, b1)
        i = t - _AHEAD
        if i >= 0:
            out[i] = _probe(buckets, rows32, homes[i, 0], homes[i, 1], ids[i])


@njit(cache=True, nogil=True)
def _lookup(buckets, rows32, n_buckets, seed, ids, values, dim, out):  # noqa: ANN001
    """out[i] = values[row of ids[i], :dim] or zeros; a 3-stage pipeline of _AHEAD keys:
    hash + prefetch buckets, probe + prefetch row, copy row."""
    n = ids.shape[0]
    homes = np.empty((n, 2), np.int64)
    rows = np.empty(n, np.int64)
    for t in range(n + 2 * _AHEAD):
        if t < n:
            b0, b1 = _homes(ids[t], seed, n_buckets)
            homes[t, 0], homes[t, 1] = b0, b1
            prefetch(buckets, b0)
            prefetch(buckets, b1)
        i = t - _AHEAD
        if 0 <= i < n:
            r = _probe(buckets, rows32, homes[i, 0], homes[i, 1], ids[i])
            rows[i] = r
            if r >= 0:
                prefetch(values, r)
        i = t - 2 * _AHEAD
        if i >= 0:
            r = rows[i]
            if r < 0:
                for j in range(dim):
                    out[i, j] = 0.0
            else:
                for j in range(dim):
                    out[i, j] = values[r, j]


@njit(cache=True, nogil=True)
def _place(buckets, rows32, n_buckets, seed, ids, rows, start, max_kicks):  # noqa: ANN001
    """Insert absent, distinct ``ids[start:]`` with their ``rows``.

    Returns ``(-1, 0, 0)`` when all settled, else ``(i, key, row)``: the walk for
    ``ids[i]`` failed and left ``(key, row)`` homeless (the caller grows the table,
    re-inserts it and resumes at ``i + 1``).
    """
    for i in range(start, ids.shape[0]):
        k = ids[i]
        r = rows[i]
        side = 0
        settled = False
        for kick in range(max_kicks):
            b0, b1 = _homes(k, seed, n_buckets)
            for b in (b0, b1):
                for j in range(BUCKET):
                    if buckets[b, j] == EMPTY_ID:
                        buckets[b, j] = k
                        rows32[b, ROW_WORD + j] = r
                        settled = True
                        break
                if settled:
                    break
            if settled:
                break
            # Both buckets full: evict a pseudo-random occupant of this side's bucket;
            # it moves to its bucket in the other table on the next step.
            b = b0 if side == 0 else b1
            j = np.int64(mix64(np.uint64(k) + np.uint64(kick)) % np.uint64(BUCKET))
            k, buckets[b, j] = buckets[b, j], k
            r, rows32[b, ROW_WORD + j] = np.int64(rows32[b, ROW_WORD + j]), r
            side = 1 - side
        if not settled:
            return i, k, r
    return -1, 0, 0


@njit(cache=True, nogil=True)
def _delete(buckets, rows32, n_buckets, seed, ids, out):  # noqa: ANN001
    for i in range(ids.shape[0]):
        k = ids[i]
        b0, b1 = _homes(k, seed, n_buckets)
        out[i] = -1
        for b in (b0, b1):
            for j in range(BUCKET):
                if buckets[b, j] == k:
                    out[i] = rows32[b, ROW_WORD + j]
                    buckets[b, j] = EMPTY_ID
                    rows32[b, ROW_WORD + j] = -1


def _line_aligned_buckets(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` empty buckets starting on a 64-byte boundary (one cache line each), as
    ``(keys, rows32)``: (n, 8) int64 and an (n, 16) int32 view of the same memory."""
    raw = np.empty(n * _LINE + _LINE, dtype=np.int64)
    skip = (-raw.ctypes.data % 64) // 8
    keys = raw[skip : skip + n * _LINE].reshape(n, _LINE)
    rows32 = keys.view(np.int32)
    rows32[:, 2 * BUCKET :] = -1
    keys[:, :BUCKET] = EMPTY_ID
    return keys, rows32


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

    def _alloc_index(self, n_buckets: int) -> None:
        self.n_buckets = n_buckets
        self._buckets, self._rows32 = _line_aligned_buckets(2 * n_buckets)

    def _index_rows(self) -> np.ndarray:
        """Every slot's row number (-1 if empty), in the order of ``_buckets[:, :BUCKET]``."""
        return self._rows32[:, ROW_WORD : ROW_WORD + BUCKET].astype(np.int64).ravel()

    @property
    def slots(self) -> int:
        return 2 * BUCKET * self.n_buckets

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._buckets.nbytes + self.rows.nbytes

    # -- operations ----------------------------------------------------------------
    def find(self, ids: np.ndarray) -> np.ndarray:
        ids = check_ids(ids)
        out = np.empty(len(ids), dtype=np.int64)
        _find(self._buckets, self._rows32, self.n_buckets, self.seed, ids, out)
        return out

    def lookup(self, ids: np.ndarray, dim: int) -> np.ndarray:
        ids = check_ids(ids)
        out = np.empty((len(ids), dim), dtype=np.float32)
        _lookup(self._buckets, self._rows32, self.n_buckets, self.seed, ids,
                self.rows.values, dim, out)
        return out

    def insert(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = check_ids(ids)
        rows = self.find(ids)
        missing = rows < 0
        if not missing.any():
            return rows, np.empty(0, dtype=np.int64)
        new_ids, inverse = np.unique(ids[missing], return_inverse=True)
        if self.rows.high_water + len(new_ids) > MAX_ROWS:
            raise OverflowError(f"a cuckoo table holds at most {MAX_ROWS} rows")
        new_rows = self.rows.alloc(len(new_ids))
        self.rows.ids[new_rows] = new_ids
        self._place_all(new_ids, new_rows)
        rows[missing] = new_rows[inverse]
        return rows, new_rows

    def delete(self, ids: np.ndarray) -> np.ndarray:
        ids = check_ids(ids)
        out = np.empty(len(ids), dtype=np.int64)
        _delete(self._buckets, self._rows32, self.n_buckets, self.seed, ids, out)
        hit = out >= 0
        self._count -= int(hit.sum())
        self.rows.release(out[hit])
        return ids[hit]

    # -- growth --------------------------------------------------------------------
    def _place_all(self, ids: np.ndarray, rows: np.ndarray) -> None:
        start = 0
        while True:
            i, key, row = _place(self._buckets, self._rows32, self.n_buckets, self.seed,
                                 ids, rows, start, self.max_kicks)
            if i < 0:
                self._count += len(ids) - start
                return
            self._count += i - start  # ids[start..i] placed, one key left homeless
            self._grow(homeless=(key, row))
            start = i + 1

    def _grow(self, homeless: tuple[int, int]) -> None:
        self.grow_loads.append(self._count / self.slots)
        keys = self._buckets[:, :BUCKET].ravel()
        occupied = keys != EMPTY_ID
        ids = np.append(keys[occupied], np.int64(homeless[0]))
        rows = np.append(self._index_rows()[occupied], np.int64(homeless[1]))
        self._rehash(2 * self.n_buckets, ids, rows)

    def _rehash(self, n_buckets: int, ids: np.ndarray, rows: np.ndarray) -> None:
        """Rebuild the index with ``n_buckets`` per side, doubling again on failure."""
        while True:
            self._alloc_index(n_buckets)
            i, _, _ = _place(self._buckets, self._rows32, n_buckets, self.seed, ids, rows, 0,
                             self.max_kicks)
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
