"""The serving store: round trip, incremental saves, and a failed save leaves the
previous one in force and is made good by the next."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rocksdict import Options, Rdict

import ps.serving.store as store_module
from ps.config import SlotConfig
from ps.serving.state import DenseModel, ServingState
from ps.serving.store import Position, ServingStore
from ps.serving.synthetic import deepfm_weights, sparse_rows

SLOTS = [SlotConfig("user_id", dim=4), SlotConfig("item_id", dim=4)]


def filled_state(value: float) -> ServingState:
    state = ServingState(SLOTS)
    ids = np.arange(100)
    vals = np.full((100, 4), value, np.float32)
    state.apply_sparse(sparse_rows({"user_id": (ids, vals), "item_id": (ids * 7, vals)}), 1, 42)
    state.set_dense(DenseModel(deepfm_weights(4, 2, hidden=(8,)), 0, 9, 40, 41, "deepfm"))
    return state


def save(path: Path, state: ServingState, position: Position) -> int:
    with ServingStore(path) as store:
        return store.save(state, position)


def load(path: Path, slots=SLOTS, **kw) -> tuple[ServingState, Position]:  # noqa: ANN001
    with ServingStore(path) as store:
        return store.load(slots, **kw)


def test_round_trip(tmp_path: Path) -> None:
    state = filled_state(0.25)
    pos = Position(offsets={0: 17, 1: 3}, last_crc={0: 123, 1: 456}, seqs={"m/sparse/1": 5})
    save(tmp_path, state, pos)
    got, got_pos = load(tmp_path)
    assert got_pos == pos
    assert got.versions == state.versions
    assert got.dense.seq == 9 and got.dense.watermark_ms == 40 and got.dense.kind == "deepfm"
    for k, w in state.dense.weights.items():
        np.testing.assert_array_equal(got.dense.weights[k], w)
    ids = {"user_id": np.arange(101), "item_id": np.arange(101) * 7}
    a, b = state.read(ids).embeddings, got.read(ids).embeddings
    for slot in ids:
        np.testing.assert_array_equal(a[slot], b[slot])
    assert got.table_rows() == {"user_id": 100, "item_id": 100}


def test_no_snapshot_means_empty_state(tmp_path: Path) -> None:
    state, pos = load(tmp_path / "none")
    assert pos == Position() and state.dense is None and state.table_rows()["user_id"] == 0


def items(state: ServingState, slot: str, ids: np.ndarray) -> np.ndarray:
    return state.read({slot: ids}).embeddings[slot][:, 0]


def test_saves_write_only_what_changed(tmp_path: Path) -> None:
    store = ServingStore(tmp_path)
    state, _ = store.load(SLOTS)
    ids = np.arange(100)
    state.apply_sparse(sparse_rows({"user_id": (ids, np.ones((100, 4)))}), 0, 1)
    assert store.save(state, Position(offsets={0: 1})) == 100
    assert store.save(state, Position(offsets={0: 1})) == 0
    state.apply_sparse(sparse_rows({"user_id": ([5, 500], np.full((2, 4), 2.0))},
                                   deleted={"user_id": [7]}), 0, 2)
    assert store.save(state, Position(offsets={0: 2})) == 3
    store.close()
    back, pos = load(tmp_path)
    assert pos.offsets == {0: 2} and back.versions == state.versions
    every = np.arange(501)
    np.testing.assert_array_equal(items(back, "user_id", every), items(state, "user_id", every))
    assert back.table_rows() == state.table_rows() == {"user_id": 100, "item_id": 0}


def test_the_updates_of_one_save_are_applied_again_in_order(tmp_path: Path) -> None:
    store = ServingStore(tmp_path)
    state, _ = store.load(SLOTS)
    for delta in [sparse_rows({"user_id": ([5], np.ones((1, 4)))}, deleted={"user_id": [6]}),
                  sparse_rows({"user_id": ([6], np.ones((1, 4)))}, deleted={"user_id": [5]}),
                  sparse_rows({"item_id": ([1], np.ones((1, 4)))})]:  # another dictionary
        state.apply_sparse(delta, 0, 1)
    assert store.save(state, Position()) == 5
    store.close()
    back, _ = load(tmp_path)
    assert back.table_rows() == state.table_rows() == {"user_id": 1, "item_id": 1}
    assert items(back, "user_id", np.array([5, 6])).tolist() == [0.0, 1.0]


def test_a_state_the_store_did_not_load_is_saved_in_full(tmp_path: Path) -> None:
    store = ServingStore(tmp_path)
    store.save(filled_state(1.0), Position(offsets={0: 10}))
    other = ServingState(SLOTS)  # e.g. tables rebuilt after a reset
    other.apply_sparse(sparse_rows({"item_id": ([3], np.ones((1, 4)))}), 0, 1)
    assert store.save(other, Position(offsets={0: 11})) == 1
    store.close()
    back, _ = load(tmp_path)
    assert back.table_rows() == {"user_id": 0, "item_id": 1}  # nothing of the first state


def test_failed_save_keeps_the_previous_and_the_next_save_makes_it_good(
    tmp_path: Path, monkeypatch
) -> None:
    store = ServingStore(tmp_path)
    state, _ = store.load(SLOTS)
    ids = np.arange(100)
    state.apply_sparse(sparse_rows({"user_id": (ids, np.ones((100, 4)))}), 0, 1)
    store.save(state, Position(offsets={0: 10}))
    state.apply_sparse(sparse_rows({"user_id": ([0, 200], np.full((2, 4), 2.0))}), 0, 2)

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr("ps.serving.store._commit", crash)
    with pytest.raises(OSError):
        store.save(state, Position(offsets={0: 20}))
    store.close()  # reopened by its next save
    back, pos = load(tmp_path)
    assert pos.offsets == {0: 10}
    assert items(back, "user_id", np.array([0, 200])).tolist() == [1.0, 0.0]
    monkeypatch.undo()
    # The failed save took the recorded changes: the next one must still write them.
    state.apply_sparse(sparse_rows({"user_id": ([1], np.full((1, 4), 3.0))}), 0, 3)
    assert store.save(state, Position(offsets={0: 30})) == 101  # in full
    store.close()
    back, pos = load(tmp_path)
    assert pos.offsets == {0: 30}
    assert items(back, "user_id", np.array([0, 1, 2, 200])).tolist() == [2.0, 3.0, 1.0, 2.0]


def test_a_store_with_other_dims_is_refused(tmp_path: Path) -> None:
    save(tmp_path, filled_state(1.0), Position())
    with pytest.raises(ValueError, match="slot 'user_id' was stored with dim 4"):
        load(tmp_path, [SlotConfig("user_id", dim=8), SLOTS[1]])


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

    save(tmp_path, state, Position(offsets={0: 2}))
    back, _ = load(tmp_path, precision="fp16")
    np.testing.assert_array_equal(back.read({"item_id": ids}).embeddings["item_id"], got)
    assert back.precision == "fp16" and back.table_rows()["item_id"] == 4999
    with pytest.raises(ValueError, match="stored tables are fp16"):
        load(tmp_path)


def keys(path: Path) -> dict[bytes, int]:
    """Keys of the store's database by first byte (base, log, dense, meta)."""
    db = Rdict(str(path / "rocksdb"), Options(raw_mode=True))
    try:
        every = list(db.keys())
    finally:
        db.close()
    return dict(Counter(k[:1] for k in every))


def test_the_log_is_folded_into_a_new_base(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("ps.serving.store._BLOCK_ROWS", 7)  # 100 rows: 15 blocks
    store = ServingStore(tmp_path, compact_rows=150)
    state, _ = store.load(SLOTS)
    rng = np.random.default_rng(0)
    written, live = [], []
    for k in range(8):  # 8 updates of 40 rows over 100 IDs
        ids = rng.choice(100, 40, replace=False)
        state.apply_sparse(sparse_rows({"user_id": (ids, rng.normal(size=(40, 4)))},
                                       deleted={"user_id": [k]} if k % 3 == 0 else None), 0, k)
        written.append(store.save(state, Position(offsets={0: k})))
        live.append(sum(state.table_rows().values()))
    # Log rows 41, 81, 121, 162 > 150: the fifth save writes a base of the live rows.
    assert written[:4] == [41, 40, 40, 41] and written[4] == live[4]
    store.close()
    assert keys(tmp_path)[b"l"] == 3  # the three updates saved since the base
    assert keys(tmp_path)[b"b"] == -(-written[4] // 7)  # the old base is gone
    back, pos = load(tmp_path)
    every = np.arange(100)
    np.testing.assert_array_equal(items(back, "user_id", every), items(state, "user_id", every))
    assert back.table_rows() == state.table_rows() and pos.offsets == {0: 7}


def power_cut(monkeypatch) -> None:  # noqa: ANN001
    """Writes go through until the final one, which names them in the metadata."""
    real = store_module._commit

    def cut(db, batch, final: bool) -> None:  # noqa: ANN001
        if final:
            raise OSError("power cut")
        real(db, batch, final)

    monkeypatch.setattr("ps.serving.store._commit", cut)


def test_log_entries_cut_short_are_ignored_then_overwritten(tmp_path: Path, monkeypatch) -> None:
    store = ServingStore(tmp_path)
    state, _ = store.load(SLOTS)
    state.apply_sparse(sparse_rows({"user_id": (np.arange(5), np.ones((5, 4)))}), 0, 1)
    store.save(state, Position(offsets={0: 1}))
    state.apply_sparse(sparse_rows({"user_id": ([0, 9], np.full((2, 4), 2.0))}), 0, 2)
    power_cut(monkeypatch)
    with pytest.raises(OSError):
        store.save(state, Position(offsets={0: 2}))
    monkeypatch.undo()
    store.close()
    assert keys(tmp_path)[b"l"] == 2  # the entry was written ...
    back, pos = load(tmp_path)
    assert pos.offsets == {0: 1}  # ... but is not part of the save
    assert items(back, "user_id", np.array([0, 9])).tolist() == [1.0, 0.0]
    with ServingStore(tmp_path) as again:
        restored, _ = again.load(SLOTS)
        restored.apply_sparse(sparse_rows({"user_id": ([4], np.full((1, 4), 3.0))}), 0, 2)
        again.save(restored, Position(offsets={0: 2}))
    back, _ = load(tmp_path)
    assert items(back, "user_id", np.array([0, 4, 9])).tolist() == [1.0, 3.0, 0.0]


def test_a_base_cut_short_leaves_the_previous_save(tmp_path: Path, monkeypatch) -> None:
    save(tmp_path, filled_state(1.0), Position(offsets={0: 10}))
    store = ServingStore(tmp_path)  # has not loaded: it must find the current base itself
    power_cut(monkeypatch)  # the blocks are written, the switch to them is not
    with pytest.raises(OSError):
        store.save(filled_state(2.0), Position(offsets={0: 20}))  # a state it did not load
    monkeypatch.undo()
    store.close()
    state, pos = load(tmp_path)
    assert pos.offsets == {0: 10}
    assert items(state, "user_id", np.array([0])).tolist() == [1.0]
    save(tmp_path, filled_state(3.0), Position(offsets={0: 30}))
    assert keys(tmp_path)[b"b"] == 2  # one block per slot: the cut-short blocks are gone
    assert items(load(tmp_path)[0], "user_id", np.array([0])).tolist() == [3.0]


def test_a_store_in_use_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with ServingStore(tmp_path) as first:
        first.save(filled_state(1.0), Position())
        with pytest.raises(RuntimeError, match="open in another server"):
            ServingStore(tmp_path).load(SLOTS)
