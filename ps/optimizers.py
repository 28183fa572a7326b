"""In-table optimizers: SGD, Adagrad and FTRL-proximal, their kernels (configs: :mod:`ps.config`).

Each optimizer keeps its per-ID state in the same row as the embedding, right after
it: ``row = [embedding (dim) | state (state_width(dim))]``. An update touches one
contiguous row, and snapshots and deltas slice columns instead of joining tables.

Kernels take the unique rows and their summed gradients (the caller aggregates
duplicates) and update the row store in place.

Examples
--------
>>> import numpy as np
>>> opt = Optimizer("adagrad", code=1, hyper=(0.1, 0, 0, 0), initial_state=(0.0,))
>>> values = np.zeros((1, 2 + opt.state_width(2)), dtype=np.float32)
>>> opt.apply(values, np.array([0]), np.array([[1.0, -2.0]], dtype=np.float32), dim=2)
>>> values.astype(float).round(3).tolist()   # step of lr * g / sqrt(g^2) = 0.1 * sign(g)
[[-0.1, 0.1, 1.0, 4.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

_EPS = np.float32(1e-10)  # keeps Adagrad finite when the accumulator starts at 0
CODES = (0, 1, 2)  # step()'s branches: SGD, Adagrad, FTRL


class Optimizer:
    """The kernel side of an optimizer config: branch ``code`` of :func:`step` with its
    ``hyper`` parameters, over rows ``[embedding (dim) | state]``.

    Made by ``config.build()`` (:class:`ps.config.OptimizerConfig`), which says what
    the kernel needs: each kind is one config class plus its branch of :func:`step`.

    Parameters
    ----------
    kind : str
        The config's kind (for messages and stats).
    code : int
        Its branch of :func:`step`.
    hyper : (learning rate, beta, l1, l2)
        What that branch reads (unused ones 0).
    initial_state : tuple of float
        Each weight's state floats (at most two) when its row is created.
    """

    def __init__(self, kind: str, code: int, hyper: Sequence[float],
                 initial_state: Sequence[float]) -> None:
        if code not in CODES:
            raise ValueError(f"{kind}: code {code} is not a branch of step(): {CODES}")
        if len(initial_state) > 2:
            raise ValueError(f"{kind}: step() keeps at most 2 state floats per weight, "
                             f"got {len(initial_state)}")
        self.kind = kind
        self.code = int(code)
        self._hyper = np.array(hyper, np.float32)
        self._initial = np.array(initial_state, np.float32)

    def __repr__(self) -> str:
        return (f"Optimizer({self.kind!r}, code={self.code}, hyper={self._hyper.tolist()}, "
                f"initial_state={self._initial.tolist()})")

    def hyper(self) -> np.ndarray:
        """The parameters :func:`step` reads: ``[lr, beta, l1, l2]``."""
        return self._hyper.copy()

    def state_width(self, dim: int) -> int:
        """Optimizer-state floats per row, after the ``dim`` embedding values."""
        return len(self._initial) * dim

    def init_state(self, n: int, dim: int) -> np.ndarray:
        """The state of ``n`` new rows: float32 ``(n, state_width(dim))``; weight ``j``'s
        ``k``-th state float is column ``k * dim + j`` (:class:`ps.slot.Cells`)."""
        return np.tile(np.repeat(self._initial, dim), (n, 1))

    def apply(self, values: np.ndarray, rows: np.ndarray, grads: np.ndarray, dim: int) -> None:
        """Update ``values[rows]`` in place by ``grads`` (one row each, no repeats)."""
        _apply(values, rows, grads, dim, self.code, self._hyper)


@njit(cache=True, nogil=True)
def step(code, h, w, s1, s2, g):  # noqa: ANN001, ANN201 - numba kernel
    """One weight's update by gradient ``g``: returns the new ``(w, s1, s2)``.

    ``code`` is the optimizer's ``code``, ``h`` its ``hyper()``; ``s1, s2`` are the
    weight's state (Adagrad: ``acc, -``; FTRL: ``z, n``; SGD: unused). ``g = 0``
    leaves all three unchanged for every optimizer (the trainer relies on it).
    """
    if code == 0:
        return w - h[0] * g, s1, s2
    if code == 1:
        acc = s1 + g * g
        return w - h[0] * g / (np.sqrt(acc) + _EPS), acc, s2
    alpha, beta, l1, l2 = h[0], h[1], h[2], h[3]
    n_new = s2 + g * g
    z = s1 + g - (np.sqrt(n_new) - np.sqrt(s2)) / alpha * w
    if abs(z) <= l1:
        return w * 0, z, n_new
    return -(z - np.sign(z) * l1) / ((beta + np.sqrt(n_new)) / alpha + l2), z, n_new


@njit(cache=True, nogil=True)
def _apply(values, rows, grads, dim, code, h):  # noqa: ANN001
    # One loop per optimizer, each calling step with a constant code: once inlined,
    # its branches fold away (a shared loop ran Adagrad ~1.5x slower).
    if code == 0:
        for i in range(rows.shape[0]):
            r = rows[i]
            for j in range(dim):
                values[r, j] = step(0, h, values[r, j], 0.0, 0.0, grads[i, j])[0]
    elif code == 1:
        for i in range(rows.shape[0]):
            r = rows[i]
            for j in range(dim):
                w, acc, _ = step(1, h, values[r, j], values[r, dim + j], 0.0, grads[i, j])
                values[r, j] = w
                values[r, dim + j] = acc
    else:
        for i in range(rows.shape[0]):
            r = rows[i]
            for j in range(dim):
                w, z, n = step(2, h, values[r, j], values[r, dim + j], values[r, 2 * dim + j],
                               grads[i, j])
                values[r, j] = w
                values[r, dim + j] = z
                values[r, 2 * dim + j] = n


@njit(cache=True, nogil=True)
def sum_by_row(rows, grads):  # noqa: ANN001
    """``(distinct rows >= 0 ascending, their summed grads)``; rows < 0 are skipped.

    Repeated rows' gradients add up in their order in ``rows`` (a stable sort), as a
    loop over ``rows`` would; one pass instead of ``np.unique`` plus masking.
    """
    order = np.argsort(rows, kind="mergesort")
    uniq = np.empty(rows.shape[0], np.int64)
    summed = np.zeros((rows.shape[0], grads.shape[1]), np.float32)
    k = -1
    for i in order:
        r = rows[i]
        if r < 0:
            continue
        if k < 0 or uniq[k] != r:
            k += 1
            uniq[k] = r
        for j in range(grads.shape[1]):
            summed[k, j] += grads[i, j]
    return uniq[: k + 1], summed[: k + 1]
