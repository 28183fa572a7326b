"""Admission filters: the occurrence threshold keeps one-off IDs out."""

from __future__ import annotations

import numpy as np
import pytest

from ps import AdmissionFilter, CountMinSketch, EmbeddingCollection
from ps.config import AdmissionConfig, SlotConfig


def test_sketch_never_undercounts() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5000, 20_000)
    sketch = CountMinSketch(width=1 << 12, depth=4, reset_every=10**9)
    est = sketch.add(ids)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    best = np.zeros(len(counts), np.int64)
    np.maximum.at(best, inverse, est)
    assert (best >= np.minimum(counts, 255)).all()


def test_sketch_halves_counters_periodically() -> None:
    sketch = CountMinSketch(width=1 << 8, depth=2, reset_every=4)
    sketch.add(np.array([1, 1, 1]))
    assert sketch.table.max() == 3
    sketch.add(np.array([2]))  # 4th addition: everything halves
    assert sketch.table.max() == 1 and sketch.additions == 0


def test_occurrence_filter_keeps_one_off_ids_out() -> None:
    coll = EmbeddingCollection([SlotConfig("item", dim=4, admission=AdmissionConfig(min_count=2))])
    batch, n_batches = 65_536, 16
    for i in range(n_batches):  # 1M distinct IDs, each seen once
        coll.pull("item", np.arange(i * batch, (i + 1) * batch) + 2**40, now=float(i))
    one_offs_admitted = len(coll)
    assert one_offs_admitted < 0.02 * batch * n_batches
    # IDs seen twice are all admitted, and only at the second sighting.
    regulars = np.arange(10_000)
    assert not coll.pull("item", regulars, now=20.0).any()
    assert len(coll) == one_offs_admitted
    coll.pull("item", regulars, now=21.0)
    assert len(coll) == one_offs_admitted + len(regulars)
    assert coll.nbytes() < 16 << 20  # the sketch is a fixed 4 MiB, not a set of seen IDs


def test_repeats_in_one_batch_count_as_sightings() -> None:
    f = AdmissionFilter(min_count=3)
    assert f.admit(np.array([1, 2, 1, 1])).tolist() == [True, False, True, True]


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_probabilistic_filter_admits_fraction(p: float) -> None:
    coll = EmbeddingCollection([SlotConfig("u", dim=2, admission=AdmissionConfig(admit_prob=p))],
                               seed=3)
    n = 20_000
    out = coll.pull("u", np.arange(n), now=0.0)
    assert out.shape == (n, 2)
    assert abs(len(coll) / n - p) < 0.02
    # a refused ID reads zeros and gets no row from a push
    refused = np.setdiff1d(np.arange(n), coll.slots["u"].table.items()[0])[:10]
    coll.push("u", refused, np.ones((len(refused), 2), np.float32), now=1.0)
    assert not coll.lookup("u", refused).any()


def test_filter_rejects_bad_probability() -> None:
    with pytest.raises(ValueError):
        AdmissionFilter(admit_prob=1.5)
