"""64-bit integer hashing shared by the tables and the filters.

Feature IDs are often sequential or structured (user 1, 2, 3, ...), so every index
first scrambles them with the splitmix64 finalizer, a cheap bijection whose output
bits all depend on every input bit.

Examples
--------
>>> import numpy as np
>>> h = mix64_array(np.array([1, 2, 3], dtype=np.int64))
>>> h.dtype, len(set(h.tolist()))
(dtype('uint64'), 3)
>>> int(mix64_array(np.array([7]))[0]) == int(mix64(np.uint64(7)))
True
"""

from __future__ import annotations

import numpy as np
from numba import njit

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


@njit(cache=True, nogil=True, inline="always")
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64 finalizer of one uint64 (wrapping arithmetic)."""
    x = (x ^ (x >> _S30)) * _C1
    x = (x ^ (x >> _S27)) * _C2
    return x ^ (x >> _S31)


@njit(cache=True, nogil=True)
def _mix64_loop(ids: np.ndarray, seed: np.uint64, out: np.ndarray) -> None:
    for i in range(ids.shape[0]):
        out[i] = mix64(np.uint64(ids[i]) ^ seed)


def mix64_array(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """Hash a batch of int64 IDs to uint64 (``mix64(id ^ seed)`` elementwise)."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = np.empty(ids.shape[0], dtype=np.uint64)
    _mix64_loop(ids, np.uint64(seed), out)
    return out
