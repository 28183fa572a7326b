"""In-table optimizers: SGD, Adagrad and FTRL-proximal.

Each optimizer keeps its per-ID state in the same row as the embedding, right after
it: ``row = [embedding (dim) | state (state_width(dim))]``. An update touches one
contiguous row, and snapshots and deltas slice columns instead of joining tables.

Kernels take the unique rows and their summed gradients (the caller aggregates
duplicates) and update the row store in place.

Examples
--------
>>> import numpy as np
>>> opt = Adagrad(learning_rate=0.1, initial_accumulator=0.0)
>>> values = np.zeros((1, 2 + opt.state_width(2)), dtype=np.float32)
>>> opt.apply(values, np.array([0]), np.array([[1.0, -2.0]], dtype=np.float32), dim=2)
>>> values.astype(float).round(3).tolist()   # step of lr * g / sqrt(g^2) = 0.1 * sign(g)
[[-0.1, 0.1, 1.0, 4.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

_EPS = np.float32(1e-10)  # keeps Adagrad finite when the accumulator starts at 0


class _InTable:
    """What the three share: one kernel, :func:`step`, told apart by ``code``."""

    code: ClassVar[int]
    learning_rate: float

    def hyper(self) -> np.ndarray:
        """The parameters :func:`step` reads: ``[lr, beta, l1, l2]``."""
        return np.array([self.learning_rate, 0.0, 0.0, 0.0], np.float32)

    def apply(self, values: np.ndarray, rows: np.ndarray, grads: np.ndarray, dim: int) -> None:
        """Update ``values[rows]`` in place by ``grads`` (one row each, no repeats)."""
        _apply(values, rows, grads, dim, self.code, self.hyper())


@dataclass(frozen=True)
class SGD(_InTable):
    """``w -= lr * g``; no state."""

    learning_rate: float = 0.05
    code: ClassVar[int] = 0

    def state_width(self, dim: int) -> int:
        return 0

    def init_state(self, n: int, dim: int) -> np.ndarray:
        return np.empty((n, 0), dtype=np.float32)


@dataclass(frozen=True)
class Adagrad(_InTable):
    """``acc += g^2; w -= lr * g / sqrt(acc)``; state: ``acc`` (dim floats)."""

    learning_rate: float = 0.05
    initial_accumulator: float = 0.1
    code: ClassVar[int] = 1

    def state_width(self, dim: int) -> int:
        return dim

    def init_state(self, n: int, dim: int) -> np.ndarray:
        return np.full((n, dim), self.initial_accumulator, dtype=np.float32)


@dataclass(frozen=True)
class FTRL(_InTable):
    """FTRL-proximal (McMahan et al. 2013, as TensorFlow's ``Ftrl``); state: ``z, n``.

    ``w = -(z - sign(z) * l1) / ((beta + sqrt(n)) / alpha + l2)`` if ``|z| > l1`` else 0,
    so ``l1 > 0`` drives rarely-useful weights to exactly zero.
    """

    learning_rate: float = 0.05  # alpha
    beta: float = 1.0
    l1: float = 0.0
    l2: float = 0.0
    code: ClassVar[int] = 2

    def state_width(self, dim: int) -> int:
        return 2 * dim

    def init_state(self, n: int, dim: int) -> np.ndarray:
        return np.zeros((n, 2 * dim), dtype=np.float32)

    def hyper(self) -> np.ndarray:
        return np.array([self.learning_rate, self.beta, self.l1, self.l2], np.float32)


Optimizer = SGD | Adagrad | FTRL


def make_optimizer(
    name: str,
    learning_rate: float,
    *,
    initial_accumulator: float = 0.1,
    ftrl_beta: float = 1.0,
    ftrl_l1: float = 0.0,
    ftrl_l2: float = 0.0,
) -> Optimizer:
    """The optimizer named ``name`` ('sgd' | 'adagrad' | 'ftrl').

    >>> make_optimizer("ftrl", 0.1, ftrl_l1=1.0)
    FTRL(learning_rate=0.1, beta=1.0, l1=1.0, l2=0.0)
    """
    if name == "sgd":
        return SGD(learning_rate)
    if name == "adagrad":
        return Adagrad(learning_rate, initial_accumulator)
    if name == "ftrl":
        return FTRL(learning_rate, ftrl_beta, ftrl_l1, ftrl_l2)
    raise ValueError(f"unknown optimizer {name!r}; expected sgd, adagrad or ftrl")


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
