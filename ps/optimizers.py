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

import numpy as np
from numba import njit

_EPS = np.float32(1e-10)  # keeps Adagrad finite when the accumulator starts at 0


@dataclass(frozen=True)
class SGD:
    learning_rate: float = 0.05

    def state_width(self, dim: int) -> int:
        return 0

    def init_state(self, n: int, dim: int) -> np.ndarray:
        return np.empty((n, 0), dtype=np.float32)

    def apply(self, values: np.ndarray, rows: np.ndarray, grads: np.ndarray, dim: int) -> None:
        _sgd(values, rows, grads, dim, np.float32(self.learning_rate))


@dataclass(frozen=True)
class Adagrad:
    """``acc += g^2; w -= lr * g / sqrt(acc)``; state: ``acc`` (dim floats)."""

    learning_rate: float = 0.05
    initial_accumulator: float = 0.1

    def state_width(self, dim: int) -> int:
        return dim

    def init_state(self, n: int, dim: int) -> np.ndarray:
        return np.full((n, dim), self.initial_accumulator, dtype=np.float32)

    def apply(self, values: np.ndarray, rows: np.ndarray, grads: np.ndarray, dim: int) -> None:
        _adagrad(values, rows, grads, dim, np.float32(self.learning_rate))


@dataclass(frozen=True)
class FTRL:
    """FTRL-proximal (McMahan et al. 2013, as TensorFlow's ``Ftrl``); state: ``z, n``.

    ``w = -(z - sign(z) * l1) / ((beta + sqrt(n)) / alpha + l2)`` if ``|z| > l1`` else 0,
    so ``l1 > 0`` drives rarely-useful weights to exactly zero.
    """

    learning_rate: float = 0.05  # alpha
    beta: float = 1.0
    l1: float = 0.0
    l2: float = 0.0

    def state_width(self, dim: int) -> int:
        return 2 * dim

    def init_state(self, n: int, dim: int) -> np.ndarray:
        return np.zeros((n, 2 * dim), dtype=np.float32)

    def apply(self, values: np.ndarray, rows: np.ndarray, grads: np.ndarray, dim: int) -> None:
        _ftrl(
            values, rows, grads, dim, np.float32(self.learning_rate), np.float32(self.beta),
            np.float32(self.l1), np.float32(self.l2),
        )


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
def _sgd(values, rows, grads, dim, lr):  # noqa: ANN001 - numba kernel
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(dim):
            values[r, j] -= lr * grads[i, j]


@njit(cache=True, nogil=True)
def _adagrad(values, rows, grads, dim, lr):  # noqa: ANN001
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(dim):
            g = grads[i, j]
            acc = values[r, dim + j] + g * g
            values[r, dim + j] = acc
            values[r, j] -= lr * g / (np.sqrt(acc) + _EPS)


@njit(cache=True, nogil=True)
def _ftrl(values, rows, grads, dim, alpha, beta, l1, l2):  # noqa: ANN001
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(dim):
            g = grads[i, j]
            w = values[r, j]
            z = values[r, dim + j]
            n = values[r, 2 * dim + j]
            n_new = n + g * g
            sigma = (np.sqrt(n_new) - np.sqrt(n)) / alpha
            z += g - sigma * w
            values[r, dim + j] = z
            values[r, 2 * dim + j] = n_new
            if abs(z) <= l1:
                values[r, j] = 0.0
            else:
                values[r, j] = -(z - np.sign(z) * l1) / ((beta + np.sqrt(n_new)) / alpha + l2)


@njit(cache=True, nogil=True)
def sum_duplicates(inverse, grads, out):  # noqa: ANN001
    """``out[inverse[i]] += grads[i]``: sums gradients of repeated IDs."""
    out[:] = 0.0
    for i in range(inverse.shape[0]):
        k = inverse[i]
        for j in range(grads.shape[1]):
            out[k, j] += grads[i, j]
