"""Train/serve parity of pooling: serving sums a slot's rows with the trainer's kernel,
so the pooled input it scores is bit for bit the one the trainer computed."""

import numpy as np

from ps.pooling import pool_sum, unique_inverse
from ps.serving.scoring import csr, pool_csr


def test_serving_pools_exactly_as_the_trainer() -> None:
    rng = np.random.default_rng(3)
    lists = [rng.integers(0, 50, size=rng.integers(0, 6)).tolist() for _ in range(500)]
    ids, offsets = csr(lists)
    table = rng.normal(size=(50, 16)).astype(np.float32) * 1e3
    uniq, inverse = unique_inverse(ids)
    trainer = pool_sum(table[uniq], inverse, offsets)  # what udfs.trainer pools
    serving = pool_csr(table[ids], offsets)  # what serving pools: one row per ID
    assert serving.dtype == np.float32
    assert np.array_equal(trainer, serving)
