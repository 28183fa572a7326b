"""Scoring with the served tables: sum-pool each slot per example, then the dense forward.

The pooled input is what the trainer feeds its dense part: shape
``(examples, slots, dim)`` in the model config's slot order, each slot's embedding
summed over the example's IDs by the trainer's own kernel (:func:`ps.pooling.pool_sum`),
so serving pools exactly as training did. The dense forward is a plain
function ``forward(weights, pooled, kind) -> logits`` (the trainer's NumPy forward of
the ``kind`` model, see ``jobs/serve.py``), so serving never imports TensorFlow.

A slot's IDs are given as CSR: ``ids`` and ``offsets`` (example ``b`` owns
``ids[offsets[b]:offsets[b + 1]]``), so each slot is one vectorized lookup.

Examples
--------
>>> rows = np.array([[1.0, 2.0], [10.0, 20.0], [100.0, 200.0]], np.float32)
>>> pool_csr(rows, np.array([0, 2, 2, 3])).tolist()   # example 1 has no ID
[[11.0, 22.0], [0.0, 0.0], [100.0, 200.0]]
>>> csr([[5], [], [6, 7]])
(array([5, 6, 7]), array([0, 1, 1, 3]))
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ps.pooling import pool_sum

# forward(weights, pooled (n, slots, dim), model kind) -> logits (n,)
Forward = Callable[[Mapping[str, np.ndarray], np.ndarray, str], np.ndarray]


def csr(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Lists of IDs as ``(ids int64, offsets int64 of length n + 1)``."""
    # map/chain iterate in C: no Python frame per list or per ID (a request's slots
    # times candidates of them, on every ranking)
    lengths = np.fromiter(map(len, lists), np.int64, len(lists))
    offsets = np.zeros(len(lists) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter(itertools.chain.from_iterable(lists), np.int64, int(offsets[-1]))
    return ids, offsets


def pool_csr(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per example, the sum of its rows: ``(len(offsets) - 1, dim)`` float32.

    ``rows`` holds one row per ID occurrence, in CSR order; the sum is the trainer's
    (:func:`ps.pooling.pool_sum`, same order of additions), and an example without IDs
    gets zeros.
    """
    n = len(offsets) - 1
    if len(rows) == n and np.array_equal(offsets, np.arange(n + 1)):
        return rows  # one ID per example (the usual case): nothing to add up
    return pool_sum(rows, np.arange(len(rows)), offsets)


def pool_slots(
    embeddings: Mapping[str, np.ndarray],
    offsets: Mapping[str, np.ndarray],
    slot_order: Sequence[str],
    n: int,
    dim: int,
) -> np.ndarray:
    """``(n, slots, dim)`` pooled input; a slot absent from ``offsets`` pools to zeros."""
    pooled = np.zeros((n, len(slot_order), dim), np.float32)
    for s, name in enumerate(slot_order):
        if name in offsets:
            pooled[:, s] = pool_csr(embeddings[name], offsets[name])
    return pooled


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return (0.5 * (np.tanh(0.5 * logits.astype(np.float64)) + 1.0)).astype(np.float32)


def candidate_inputs(
    user_slots: Mapping[str, Sequence[int]],
    item_slots: Sequence[Mapping[str, Sequence[int]]],
    slot_order: Sequence[str],
    item_csr: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, np.ndarray]]:
    """IDs to look up per slot for one user and ``n`` candidate items.

    ``item_csr`` gives some slots' item IDs already as CSR ``(ids, offsets)`` (the
    fresh signals); they take the place of those slots in ``item_slots``.
    Returns ``(ids, n_user, offsets)``: per slot, the user's IDs first (``n_user`` of
    them, shared by every candidate) then the items' IDs as CSR ``offsets``.

    >>> ids, n_user, offsets = candidate_inputs(
    ...     {"u": [1]}, [{"i": [5]}, {"i": [6]}], ["u", "i", "s"],
    ...     {"s": (np.array([7, 8, 9]), np.array([0, 1, 3]))})
    >>> ids["i"].tolist(), ids["s"].tolist(), offsets["s"].tolist(), n_user["s"]
    ([5, 6], [7, 8, 9], [0, 1, 3], 0)
    """
    item_csr = item_csr or {}
    ids, n_user, offsets = {}, {}, {}
    for name in slot_order:
        user = user_slots.get(name, ())
        if name in item_csr:
            item_ids, offs = item_csr[name]
        else:
            lists = [s.get(name, ()) for s in item_slots]
            if not user and not any(lists):
                continue
            item_ids, offs = csr(lists)
        ids[name] = np.concatenate([np.asarray(user, np.int64), item_ids])
        n_user[name] = len(user)
        offsets[name] = offs
    return ids, n_user, offsets


def pool_candidates(
    embeddings: Mapping[str, np.ndarray],
    n_user: Mapping[str, int],
    offsets: Mapping[str, np.ndarray],
    slot_order: Sequence[str],
    n: int,
    dim: int,
) -> np.ndarray:
    """``(n, slots, dim)``: each candidate's item IDs pooled, plus the user's, per slot.

    >>> emb = {"u": np.array([[1.0], [2.0], [3.0]], np.float32)}   # 1 user ID, 2 items
    >>> pool_candidates(emb, {"u": 1}, {"u": np.array([0, 1, 2])}, ["u", "x"], 2, 1)[:, :, 0]
    array([[3., 0.],
           [4., 0.]], dtype=float32)
    """
    pooled = np.zeros((n, len(slot_order), dim), np.float32)
    for s, name in enumerate(slot_order):
        if name not in offsets:
            continue
        rows, k = embeddings[name], n_user[name]
        pooled[:, s] = pool_csr(rows[k:], offsets[name])
        if k:
            pooled[:, s] += rows[:k].sum(axis=0)
    return pooled
