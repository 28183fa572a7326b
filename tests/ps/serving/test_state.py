"""Per-update atomic visibility of the serving state under concurrent readers and a writer."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ps.config import AdmissionConfig, SlotConfig
from ps.serving.state import DenseModel, ServingState
from ps.serving.synthetic import lr_weights, sparse_rows

SLOTS = [SlotConfig("user_id", dim=8), SlotConfig("item_id", dim=8), SlotConfig("genre", dim=8)]
IDS = np.arange(2000)


def update(k: int):
    """Update k sets every row of every slot to k, and adds rows of a new ID per slot."""
    vals = np.full((len(IDS), 8), float(k), np.float32)
    return sparse_rows({s.name: (IDS, vals) for s in SLOTS})


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_no_torn_read_across_concurrent_updates(precision: str) -> None:
    state = ServingState(SLOTS, precision=precision)
    state.apply_sparse(update(1), shard=0, watermark_ms=1)
    updates = [update(k) for k in range(2, 202)]  # built before the race starts
    done = threading.Event()
    seen: list[tuple[int, float]] = []
    torn: list[str] = []

    def reader() -> None:
        ids = {s.name: IDS for s in SLOTS}
        while not done.is_set():
            view = state.read(ids)
            values = np.concatenate([e.ravel() for e in view.embeddings.values()])
            lo, hi = float(values.min()), float(values.max())
            # Update k is table version k: the values must all be that update's.
            if lo != hi or lo != view.table_version:
                torn.append(f"version {view.table_version}: values {lo}..{hi}")
            seen.append((view.table_version, lo))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for k, u in enumerate(updates, start=2):
        assert state.apply_sparse(u, shard=0, watermark_ms=k) == k
    done.set()
    for t in readers:
        t.join()
    assert not torn, torn[:5]
    versions = {v for v, _ in seen}
    assert len(versions) > 10, "readers did not overlap the updates"


def test_dense_swap_is_one_reference_and_versions_count() -> None:
    state = ServingState(SLOTS)
    assert state.read({}).dense is None
    m1 = DenseModel(lr_weights(0.5), shard=0, seq=1, watermark_ms=0, wall_time_ms=0, kind="lr")
    m2 = DenseModel(lr_weights(-0.5), shard=0, seq=2, watermark_ms=0, wall_time_ms=0,
                    kind="lr")
    assert state.set_dense(m1) == 1
    held = state.read({}).dense  # a request in flight keeps the model it started with
    assert state.set_dense(m2) == 2
    assert held is m1 and held.weights["bias"][0] == 0.5
    view = state.read({})
    assert view.dense is m2 and view.model_version == 2


def test_serving_tables_hold_values_only_and_apply_deletes() -> None:
    state = ServingState([SlotConfig("item_id", dim=4, admission=AdmissionConfig(min_count=5))])
    assert state.tables.slots["item_id"].width == 4  # no optimizer-state columns
    vals = np.arange(12, dtype=np.float32).reshape(3, 4)
    state.apply_sparse(sparse_rows({"item_id": (np.array([1, 2, 3]), vals)}), 0, 10)
    state.apply_sparse(sparse_rows({}, deleted={"item_id": np.array([2])}), 0, 20)
    got = state.read({"item_id": np.array([1, 2, 3])}).embeddings["item_id"]
    assert got.tolist() == [vals[0].tolist(), [0.0] * 4, vals[2].tolist()]
    assert state.table_rows() == {"item_id": 2}
    assert state.watermark_ms() == 20


def test_an_update_that_does_not_fit_changes_nothing() -> None:
    state = ServingState(SLOTS)
    ids = np.arange(3)
    ok = np.ones((3, 8), np.float32)
    for bad in [sparse_rows({"user_id": (ids, ok), "unknown": (ids, ok)}),
                sparse_rows({"user_id": (ids, ok), "genre": (ids, np.ones((3, 4), np.float32))})]:
        with pytest.raises(ValueError, match="unknown slot|serving dim"):
            state.apply_sparse(bad, shard=0, watermark_ms=1)
    assert state.versions.table == 0 and state.table_rows()["user_id"] == 0
