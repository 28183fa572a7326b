from __future__ import annotations

import numpy as np

from ps.hashing import mix64, mix64_array


def test_mix64_array_matches_scalar_and_spreads_sequential_ids() -> None:
    ids = np.arange(-1000, 1000, dtype=np.int64)
    h = mix64_array(ids, seed=5)
    assert len(set(h.tolist())) == len(ids)  # a bijection: no collisions
    assert int(h[3]) == int(mix64(np.uint64(ids[3]) ^ np.uint64(5)))
    low = (h & np.uint64(15)).astype(np.int64)
    assert np.bincount(low, minlength=16).min() > len(ids) / 16 / 2  # low bits look random
    assert (mix64_array(ids, seed=6) != h).all()
