"""First-order weights stepped after every example inside a micro-batch.

A micro-batch step scores all its examples with the weights from before the step, so
on MovieLens (a user rates many films in one sitting) the examples of a session learn
nothing from each other: at micro-batch 32 DeepFM lost ~0.02 progressive AUC against
one example per step (docs/training.md). The linear part is where that matters and it
is cheap to fix: each example's logit is a sum of per-ID first-order weights (column 0
of each row, times ``first_order_scale``). So after the dense step has scored the
micro-batch, :func:`step_first_order` walks its examples in order: it adds to each
logit what earlier examples of the micro-batch changed in its first-order weights,
then steps those weights by that example's own gradient with the slot's optimizer
(:func:`ps.optimizers.step`). The factor columns and the dense weights still step
once per micro-batch; the trainer zeroes column 0 of their gradient.

Examples
--------
Two examples of the same user (one ID, SGD with lr 1, scale 1), both labelled 1, both
scored 0 by the dense step: the second sees the first's update.

>>> from ps.slot import Cells
>>> cells = Cells(np.array([0]), np.zeros((1, 3), np.float32), 0, 0,
...               np.array([1.0, 0, 0, 0], np.float32))
>>> slot = (cells, np.array([0, 0]), np.array([0, 1, 2]))
>>> logits, loss = step_first_order(np.zeros(2, np.float32), np.ones(2, np.float32),
...                                 [slot], scale=1.0)
>>> logits.tolist(), round(cells.values[0, 0].item(), 4)  # w: 0 -> 0.5 -> 0.5 + (1 - 0.62)
([0.0, 0.5], 0.8775)
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ps.optimizers import step
from ps.slot import Cells


@numba.njit(cache=True, nogil=True)
def _walk(logits, labels, inverse, starts, offsets, base, cells, rows, codes, hyper, scale):  # noqa: ANN001, ANN202
    n, n_slots = logits.shape[0], offsets.shape[0]
    before = cells[:, 0].copy()
    out = np.empty(n, np.float32)
    loss = 0.0
    for k in range(n):
        z = np.float64(logits[k])
        for s in range(n_slots):
            for q in range(offsets[s, k], offsets[s, k + 1]):
                r = base[s] + inverse[starts[s] + q]
                z += scale * (cells[r, 0] - before[r])
        out[k] = z
        y = labels[k]
        loss += max(z, 0.0) - z * y + math.log1p(math.exp(-abs(z)))
        g = np.float32(scale * (1.0 / (1.0 + math.exp(-z)) - y))
        for s in range(n_slots):
            for q in range(offsets[s, k], offsets[s, k + 1]):
                r = base[s] + inverse[starts[s] + q]
                if rows[r] >= 0:
                    w, s1, s2 = step(codes[s], hyper[s], cells[r, 0], cells[r, 1], cells[r, 2], g)
                    cells[r, 0], cells[r, 1], cells[r, 2] = w, s1, s2
    return out, loss


def step_first_order(
    logits: np.ndarray,
    labels: np.ndarray,
    slots: list[tuple[Cells, np.ndarray, np.ndarray]],
    scale: float,
) -> tuple[np.ndarray, float]:
    """Walk a micro-batch's examples in order, stepping first-order weights per example.

    Parameters
    ----------
    logits : float32 (n,)
        The dense step's logits (weights from before the micro-batch, offset included).
    labels : float32 (n,)
    slots : list of (cells, inverse, offsets)
        Per slot: column 0 of its distinct IDs' rows (:meth:`EmbeddingCollection.cells`,
        updated in place), and the batch's CSR over those IDs (``inverse[j]`` is the
        distinct ID of occurrence ``j``; example ``k`` owns ``offsets[k]:offsets[k+1]``).
        An ID twice in one example steps twice.
    scale : float
        ``first_order_scale``: d logit / d weight.

    Returns
    -------
    logits, loss
        Each example's logit with the earlier examples' first-order steps (the
        progressive evaluation's score), and the summed log loss of those logits.
    """
    if not slots:
        return np.asarray(logits, np.float32), 0.0
    base = np.cumsum([0] + [len(c.rows) for c, _, _ in slots])
    starts = np.cumsum([0] + [len(inv) for _, inv, _ in slots])
    cells = np.concatenate([c.values for c, _, _ in slots])
    out, loss = _walk(
        np.asarray(logits, np.float32), np.asarray(labels, np.float64),
        np.concatenate([inv for _, inv, _ in slots]).astype(np.int64, copy=False), starts,
        np.stack([off for _, _, off in slots]).astype(np.int64, copy=False), base, cells,
        np.concatenate([c.rows for c, _, _ in slots]),
        np.array([c.code for c, _, _ in slots], np.int64), np.stack([c.hyper for c, _, _ in slots]),
        float(scale),
    )
    for (c, _, _), a, b in zip(slots, base[:-1], base[1:], strict=True):
        c.values[:] = cells[a:b]
    return out, float(loss)
