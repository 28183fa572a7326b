"""Sum-pooling of a slot's embeddings per example, and its gradient scattered to IDs.

A batch holds a slot as CSR: ``ids`` and ``offsets`` (example ``b`` owns
``ids[offsets[b]:offsets[b+1]]``). The trainer pulls each distinct ID once
(:func:`unique_inverse`), pools rows per example by sum, and after
the backward pass gives every distinct ID the SUM of the gradients of the examples
that hold it (anchors.md: a batch mean dilutes sparse rows' signal).

Examples
--------
>>> rows = np.array([[1.0, 1.0], [10.0, 10.0]], np.float32)  # two distinct IDs
>>> inverse = np.array([0, 1, 1]); offsets = np.array([0, 2, 2, 3])
>>> pool_sum(rows, inverse, offsets).tolist()  # example 1 has no ID: zeros
[[11.0, 11.0], [0.0, 0.0], [10.0, 10.0]]
>>> g = np.array([[1.0, 2.0], [5.0, 5.0], [3.0, 4.0]], np.float32)
>>> scatter_sum(g, inverse, offsets, 2).tolist()
[[1.0, 2.0], [4.0, 6.0]]
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _pool(rows: np.ndarray, inverse: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    n = len(offsets) - 1
    out = np.zeros((n, rows.shape[1]), np.float32)
    for b in range(n):
        for j in range(offsets[b], offsets[b + 1]):
            out[b] += rows[inverse[j]]
    return out


@numba.njit(cache=True, nogil=True)
def _scatter(
    grads: np.ndarray, inverse: np.ndarray, offsets: np.ndarray, n_rows: int
) -> np.ndarray:
    out = np.zeros((n_rows, grads.shape[1]), np.float32)
    for b in range(len(offsets) - 1):
        for j in range(offsets[b], offsets[b + 1]):
            out[inverse[j]] += grads[b]
    return out


@numba.njit(cache=True, nogil=True)
def _unique_inverse(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ids, kind="mergesort")
    uniq = np.empty(len(ids), np.int64)
    inverse = np.empty(len(ids), np.int64)
    k = -1
    for j in range(len(ids)):
        i = order[j]
        if k < 0 or ids[i] != uniq[k]:
            k += 1
            uniq[k] = ids[i]
        inverse[i] = k
    return uniq[: k + 1], inverse


def unique_inverse(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)`` for int64 IDs, 5x faster on the small
    arrays of one step (1.2 against 6.2 us for 32 IDs; it runs once per slot per step).

    >>> [a.tolist() for a in unique_inverse(np.array([7, 3, 7, 5]))]
    [[3, 5, 7], [2, 0, 2, 1]]
    """
    return _unique_inverse(ids.astype(np.int64, copy=False))


def pool_sum(rows: np.ndarray, inverse: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``(n_examples, dim)``: per example, the sum of ``rows[inverse[j]]`` over its IDs."""
    return _pool(np.ascontiguousarray(rows, np.float32), inverse.astype(np.int64, copy=False),
                 offsets.astype(np.int64, copy=False))


def scatter_sum(grads: np.ndarray, inverse: np.ndarray, offsets: np.ndarray,
                n_rows: int) -> np.ndarray:
    """``(n_rows, dim)``: per distinct ID, the sum of the pooled gradients of its examples."""
    return _scatter(np.ascontiguousarray(grads, np.float32), inverse.astype(np.int64, copy=False),
                    offsets.astype(np.int64, copy=False), n_rows)
