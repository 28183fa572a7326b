"""Snapshots: round trip, and a crash while writing leaves the previous one in force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freshet.config import SlotConfig
from ps.serving.state import DenseModel, ServingState
from ps.serving.store import Position, SnapshotStore
from ps.serving.synthetic import deepfm_weights, sparse_rows

SLOTS = [SlotConfig("user_id", dim=4), SlotConfig("item_id", dim=4)]


def filled_state(value: float) -> ServingState:
    state = ServingState(SLOTS)
    ids = np.arange(100)
    vals = np.full((100, 4), value, np.float32)
    state.apply_sparse(sparse_rows({"user_id": (ids, vals), "item_id": (ids * 7, vals)}), 1, 42)
    state.set_dense(DenseModel(deepfm_weights(4, 2, hidden=(8,)), 0, 9, 40, 41))
    return state


def test_round_trip(tmp_path: Path) -> None:
    state = filled_state(0.25)
    pos = Position(offsets={0: 17, 1: 3}, last_crc={0: 123, 1: 456}, seqs={"m/sparse/1": 5})
    SnapshotStore(tmp_path).save(state, pos)
    got, got_pos = SnapshotStore(tmp_path).load(SLOTS)
    assert got_pos == pos
    assert got.versions == state.versions
    assert got.dense.seq == 9 and got.dense.watermark_ms == 40
    for k, w in state.dense.weights.items():
        np.testing.assert_array_equal(got.dense.weights[k], w)
    ids = {"user_id": np.arange(101), "item_id": np.arange(101) * 7}
    a, b = state.read(ids).embeddings, got.read(ids).embeddings
    for slot in ids:
        np.testing.assert_array_equal(a[slot], b[slot])
    assert got.table_rows() == {"user_id": 100, "item_id": 100}


def test_no_snapshot_means_empty_state(tmp_path: Path) -> None:
    state, pos = SnapshotStore(tmp_path / "none").load(SLOTS)
    assert pos == Position() and state.dense is None and state.table_rows()["user_id"] == 0


def test_crash_during_save_keeps_previous_snapshot(tmp_path: Path, monkeypatch) -> None:
    store = SnapshotStore(tmp_path)
    store.save(filled_state(1.0), Position(offsets={0: 10}))

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr("ps.serving.store._fsync_dir", crash)
    with pytest.raises(OSError):
        store.save(filled_state(2.0), Position(offsets={0: 20}))
    state, pos = SnapshotStore(tmp_path).load(SLOTS)
    assert pos.offsets == {0: 10}
    assert state.read({"user_id": np.array([0])}).embeddings["user_id"][0, 0] == 1.0
    monkeypatch.undo()
    store.save(filled_state(3.0), Position(offsets={0: 30}))  # a later save still works
    assert SnapshotStore(tmp_path).load(SLOTS)[1].offsets == {0: 30}
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("snap-")]) == 1


def test_fp16_tables_round_trip_and_precision_mismatch_is_refused(tmp_path: Path) -> None:
    state = ServingState(SLOTS, precision="fp16")
    rng = np.random.default_rng(0)
    ids = np.arange(5000)  # enough rows to make the index and value arrays grow
    vals = rng.normal(0, 0.1, (5000, 4)).astype(np.float32)
    state.apply_sparse(sparse_rows({"item_id": (ids, vals)}), 0, 1)
    state.apply_sparse(sparse_rows({}, deleted={"item_id": np.array([3])}), 0, 2)
    got = state.read({"item_id": ids}).embeddings["item_id"]
    keep = ids != 3
    np.testing.assert_allclose(got[keep], vals[keep], rtol=2**-10, atol=1e-4)
    assert (got[3] == 0).all()
    full = ServingState(SLOTS)
    full.apply_sparse(sparse_rows({"item_id": (ids, vals)}), 0, 1)
    assert state.nbytes() < full.nbytes()

    SnapshotStore(tmp_path).save(state, Position(offsets={0: 2}))
    back, _ = SnapshotStore(tmp_path).load(SLOTS, precision="fp16")
    np.testing.assert_array_equal(back.read({"item_id": ids}).embeddings["item_id"], got)
    assert back.precision == "fp16" and back.table_rows()["item_id"] == 4999
    with pytest.raises(ValueError, match="snapshot tables are fp16"):
        SnapshotStore(tmp_path).load(SLOTS)
