"""EmbeddingCollection: pull/push semantics, expiry, deltas, apply, snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ps import EmbeddingCollection
from ps.config import (
    AdmissionConfig,
    ExpiryConfig,
    FTRLConfig,
    HashedTableConfig,
    SGDConfig,
    SlotConfig,
)


def sgd_slot(name: str = "s", dim: int = 3, **kw: object) -> SlotConfig:
    return SlotConfig(name, dim=dim, optimizer=SGDConfig(1.0), init_std=0.0, **kw)


def test_pull_creates_initialised_rows_and_read_only_does_not() -> None:
    coll = EmbeddingCollection([SlotConfig("u", dim=8, init_std=0.1)])
    ids = np.array([1, 2, 1])
    assert not coll.pull("u", ids, now=0.0, train=False).any() and len(coll) == 0
    out = coll.pull("u", ids, now=0.0)
    assert out.shape == (3, 8) and out.dtype == np.float32
    assert (out[0] == out[2]).all() and (out[0] != out[1]).any() and out.std() > 0.01
    assert len(coll) == 2 and coll.dim("u") == 8
    assert (coll.lookup("u", ids) == out).all()


def test_push_sums_duplicate_gradients() -> None:
    coll = EmbeddingCollection([sgd_slot()])
    coll.pull("s", np.array([4, 5]), now=0.0)
    grads = np.arange(9, dtype=np.float32).reshape(3, 3)
    coll.push("s", np.array([4, 5, 4]), grads, now=1.0)
    assert coll.lookup("s", np.array([4, 5])).tolist() == [
        (-(grads[0] + grads[2])).tolist(), (-grads[1]).tolist()]


def test_push_to_unadmitted_ids_is_ignored() -> None:
    coll = EmbeddingCollection([sgd_slot(admission=AdmissionConfig(min_count=5))])
    coll.pull("s", np.array([1]), now=0.0)
    coll.push("s", np.array([1]), np.ones((1, 3), np.float32), now=1.0)
    assert len(coll) == 0 and coll.drain_delta().num_rows == 0
    with pytest.raises(ValueError, match="grads shape"):
        coll.push("s", np.array([1]), np.ones((1, 2), np.float32), now=1.0)


def test_slots_are_independent() -> None:
    coll = EmbeddingCollection([sgd_slot("a", dim=2),
                                SlotConfig("b", dim=5, optimizer=FTRLConfig())])
    coll.pull("a", np.array([1]), now=0.0)
    coll.pull("b", np.array([1]), now=0.0)
    coll.push("a", np.array([1]), np.ones((1, 2), np.float32), now=0.0)
    assert coll.lookup("a", np.array([1])).tolist() == [[-1.0, -1.0]]
    assert coll.lookup("b", np.array([1])).shape == (1, 5)
    with pytest.raises(KeyError, match="unknown slot"):
        coll.lookup("c", np.array([1]))


def test_expiry_by_last_update() -> None:
    coll = EmbeddingCollection([sgd_slot("t", expiry=ExpiryConfig(10.0)), sgd_slot("forever")])
    coll.pull("t", np.arange(4), now=0.0)
    coll.pull("forever", np.arange(4), now=0.0)
    coll.push("t", np.array([0]), np.ones((1, 3), np.float32), now=8.0)
    assert coll.evict_expired(now=9.0) == 0
    assert coll.evict_expired(now=15.0) == 3  # 1..3 never updated since creation at 0
    assert coll.lookup("t", np.array([0])).any() and len(coll) == 5
    assert coll.evict_expired(now=100.0) == 1 and len(coll) == 4


def test_drain_delta_reports_touched_and_deleted_rows() -> None:
    coll = EmbeddingCollection([SlotConfig("u", dim=2, expiry=ExpiryConfig(5.0)),
                                SlotConfig("i", dim=3)])
    coll.pull("u", np.array([1, 2, 3]), now=0.0)
    coll.pull("i", np.array([7]), now=0.0)
    coll.push("u", np.array([1, 2]), np.ones((2, 2), np.float32), now=1.0)
    coll.push("i", np.array([7]), np.ones((1, 3), np.float32), now=1.0)
    delta = coll.drain_delta(with_optimizer_state=True)
    rows = delta.to_pylist()
    assert sorted((r["slot"], r["id"]) for r in rows) == [("i", 7), ("u", 1), ("u", 2)]
    for r in rows:
        assert r["values"] == coll.lookup(r["slot"], np.array([r["id"]]))[0].tolist()
        assert len(r["state"]) == coll.dim(r["slot"]) and not r["deleted"]
        assert r["updated_at"] == 1.0
    assert pa.types.is_dictionary(delta.schema.field("slot").type)
    assert coll.drain_delta().num_rows == 0
    assert "state" not in coll.drain_delta().schema.names
    assert coll.evict_expired(now=7.0) == 3
    gone = coll.drain_delta().to_pylist()
    assert sorted(r["id"] for r in gone) == [1, 2, 3] and all(r["deleted"] for r in gone)
    assert all(r["values"] == [] and r["updated_at"] is None for r in gone)


def test_apply_mirrors_trainer_on_serving_side() -> None:
    slots = [SlotConfig("u", dim=4, expiry=ExpiryConfig(50.0),
                        admission=AdmissionConfig(min_count=2)), SlotConfig("g", dim=2)]
    trainer, server = EmbeddingCollection(slots), EmbeddingCollection(slots)
    rng = np.random.default_rng(0)
    for step in range(20):
        for name, dim in (("u", 4), ("g", 2)):
            ids = rng.integers(0, 300, 64)
            trainer.pull(name, ids, now=float(step))
            trainer.push(name, ids, rng.normal(size=(64, dim)).astype(np.float32), float(step))
        trainer.evict_expired(now=float(step * 5))
        server.apply(trainer.drain_delta(with_optimizer_state=step % 2 == 0))
    for name in ("u", "g"):
        ids = np.arange(300)
        np.testing.assert_array_equal(server.lookup(name, ids), trainer.lookup(name, ids))
    assert len(server) == len(trainer) > 0
    assert server.drain_delta().num_rows == 0  # apply neither marks rows nor records deletes


def test_snapshot_restore_keeps_rows_state_and_filters(tmp_path: Path) -> None:
    slots = [SlotConfig("u", dim=4, admission=AdmissionConfig(min_count=2)),
             SlotConfig("f", dim=3, optimizer=FTRLConfig(), expiry=ExpiryConfig(30.0))]
    coll = EmbeddingCollection(slots, seed=5)
    rng = np.random.default_rng(1)
    for step in range(5):
        for name, dim in (("u", 4), ("f", 3)):
            ids = rng.integers(0, 1000, 200)
            coll.pull(name, ids, now=float(step))
            coll.push(name, ids, rng.normal(size=(200, dim)).astype(np.float32), float(step))
    coll.pull("u", np.array([123_456]), now=5.0)  # seen once: counted, not admitted
    coll.snapshot(tmp_path / "snap")
    back = EmbeddingCollection.restore(tmp_path / "snap", slots)
    assert len(back) == len(coll) and back.stats()["rows"] == coll.stats()["rows"]
    # identical futures: same embeddings, optimizer state, filter counts, init RNG, stamps
    for c in (coll, back):
        c.pull("u", np.array([123_456, 999_999]), now=6.0)
        c.pull("f", np.arange(1000, 1010), now=6.0)
        c.push("u", np.arange(50), np.ones((50, 4), np.float32), now=6.0)
        c.push("f", np.arange(1010), np.ones((1010, 3), np.float32), now=6.0)
        c.evict_expired(now=34.0)
    for name in ("u", "f"):
        ids = np.append(np.arange(1010), [123_456, 999_999])
        np.testing.assert_array_equal(back.lookup(name, ids), coll.lookup(name, ids))
    assert back.lookup("u", np.array([123_456])).any()  # its earlier sighting survived


def test_filter_state_plus_replayed_journal_gives_the_same_filters() -> None:
    # What a trainer checkpoint holds: the filters' state once, then each later call's
    # sightings. Rebuilt that way, the filters must decide every future ID as before.
    slots = [SlotConfig("u", dim=2, admission=AdmissionConfig(3, sketch_width=64)),  # halves
             SlotConfig("p", dim=2, admission=AdmissionConfig(admit_prob=0.4)),  # every 32
             SlotConfig("all", dim=2)]
    live, rebuilt = EmbeddingCollection(slots, seed=3), EmbeddingCollection(slots, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        for name in ("u", "p", "all"):
            live.pull(name, rng.integers(0, 300, 40), now=0.0)
    assert live.drain_journal() is None  # not journaling yet
    rebuilt.load_filter_state(pa.RecordBatch.from_pylist(live.filter_state().to_pylist()))
    live.start_journal()
    for _ in range(6):
        for name in ("u", "p", "all"):
            live.pull(name, rng.integers(0, 300, 40), now=0.0)
    journal = live.drain_journal()
    assert set(journal.column("slot").to_pylist()) == {"u", "p"}  # "all" keeps no state
    rebuilt.replay_journal(journal)
    assert live.drain_journal() is None
    for name in ("u", "p"):
        a, b = live.slots[name], rebuilt.slots[name]
        assert a.filter.state()[1] == b.filter.state()[1] and a.filtered == b.filtered > 0
        np.testing.assert_array_equal(a.filter.state()[0], b.filter.state()[0])
        future = rng.integers(0, 300, 100)
        np.testing.assert_array_equal(a.filter.admit(future), b.filter.admit(future))


def test_restore_rejects_mismatched_dims(tmp_path: Path) -> None:
    EmbeddingCollection([SlotConfig("u", dim=4)]).snapshot(tmp_path)
    with pytest.raises(ValueError, match="dim"):
        EmbeddingCollection.restore(tmp_path, [SlotConfig("u", dim=8)])


def test_hashed_tables_share_rows_between_colliding_ids(tmp_path: Path) -> None:
    coll = EmbeddingCollection([sgd_slot(), sgd_slot("own", table=HashedTableConfig(rows=2))],
                               table=HashedTableConfig(rows=1))
    coll.pull("s", np.array([1, 2]), now=0.0)
    coll.push("s", np.array([1]), np.ones((1, 3), np.float32), now=0.0)
    assert coll.lookup("s", np.array([2])).tolist() == [[-1.0, -1.0, -1.0]]  # collision
    assert len(coll) == 1
    assert coll.tables() == {"s": HashedTableConfig(1), "own": HashedTableConfig(2)}
    assert coll.slots["own"].table.n_rows == 2  # a slot's own table wins
    coll.snapshot(tmp_path)
    back = EmbeddingCollection.restore(tmp_path, [sgd_slot(), sgd_slot("own")])
    assert back.tables() == coll.tables()  # the snapshot's tables, not the default cuckoo
    assert back.lookup("s", np.array([2])).tolist() == [[-1] * 3]


def test_stats_and_memory_accounting() -> None:
    coll = EmbeddingCollection([SlotConfig("u", dim=16)])
    coll.pull("u", np.arange(10_000), now=0.0)
    stats = coll.stats()
    slot = stats["slots"]["u"]
    assert stats["rows"] == 10_000 and slot["rows"] == 10_000
    raw = 10_000 * (8 + 4 * 32)  # key + embedding + adagrad accumulator
    assert raw < coll.nbytes() == stats["nbytes"] < 3 * raw
    assert 0 < slot["load_factor"] <= 1


def test_ttl_stream_of_5m_ids_stays_bounded() -> None:
    """5M distinct IDs through a slot with a short TTL: rows and bytes plateau."""
    coll = EmbeddingCollection([SlotConfig("x", dim=8, optimizer=SGDConfig(),
                                           expiry=ExpiryConfig(2.0))])
    batch, n = 65_536, 5_000_000
    row_bytes = coll.slots["x"].table.rows.row_bytes
    max_rows = max_bytes = 0
    grads = np.ones((batch, 8), np.float32)
    for i, start in enumerate(range(0, n, batch)):
        ids = np.arange(start, start + batch)
        coll.pull("x", ids, now=float(i))
        coll.push("x", ids, grads, now=float(i))
        coll.evict_expired(now=float(i))
        max_rows, max_bytes = max(max_rows, len(coll)), max(max_bytes, coll.nbytes())
    assert max_rows <= 3 * batch  # rows updated at i-2, i-1, i
    # bytes bounded by the live set (rows + index at >= 25% load), not the 5M stream
    assert max_bytes <= 5 * batch * (row_bytes + 2 * 12)
    coll.evict_expired(now=1e9)
    assert len(coll) == 0 and coll.nbytes() < max_bytes / 10  # memory really goes down


# -- against a dict model --------------------------------------------------------------
op = st.one_of(
    st.tuples(st.just("pull"), st.lists(st.integers(0, 40), max_size=30)),
    st.tuples(st.just("push"), st.lists(st.integers(0, 40), max_size=30)),
    st.tuples(st.just("tick"), st.integers(0, 4)),
    st.tuples(st.just("snapshot"), st.none()),
)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(op, max_size=25), backend=st.sampled_from(["cuckoo", "hashed"]))
def test_matches_dict_model(ops: list, backend: str, tmp_path_factory: pytest.TempPathFactory
                            ) -> None:
    slots = [sgd_slot(expiry=ExpiryConfig(3.0))]
    # hashed with more rows than IDs behaves like a dict only if nothing collides
    table = HashedTableConfig(rows=1 << 20) if backend == "hashed" else None
    coll = EmbeddingCollection(slots, table=table)
    model: dict[int, tuple[np.ndarray, float]] = {}  # id -> (embedding, last update)
    now = 0.0
    for kind, arg in ops:
        if kind == "pull":
            coll.pull("s", np.array(arg, np.int64), now)
            for i in arg:
                model.setdefault(i, (np.zeros(3, np.float32), now))
        elif kind == "push":
            ids = np.array(arg, np.int64)
            grads = (ids[:, None] % 5 + np.arange(3)).astype(np.float32)
            coll.push("s", ids, grads, now)
            for i, g in zip(arg, grads, strict=True):
                if i in model:
                    model[i] = (model[i][0] - g, now)
        elif kind == "tick":
            now += arg
            expired = [i for i, (_, t) in model.items() if t < now - 3.0]
            assert coll.evict_expired(now) == len(expired)
            for i in expired:
                del model[i]
        else:
            path = tmp_path_factory.mktemp("snap")
            coll.snapshot(path)
            coll = EmbeddingCollection.restore(path, slots)
        assert len(coll) == len(model)
        ids = np.arange(41)
        want = np.array([model[i][0] if i in model else np.zeros(3) for i in ids], np.float32)
        np.testing.assert_array_equal(coll.lookup("s", ids), want)


def test_checkpoint_rows_restore_values_optimizer_state_and_initialiser() -> None:
    slots = [SlotConfig("u", dim=4, init_std=0.1), SlotConfig("g", dim=2, init_std=0.1)]
    a = EmbeddingCollection(slots)
    rng = np.random.default_rng(0)
    for step in range(5):
        ids = rng.integers(0, 50, 40)
        a.pull("u", ids, now=step)
        a.push("u", ids, rng.normal(size=(40, 4)).astype(np.float32), now=step)
        a.pull("g", ids % 7, now=step)
    b = EmbeddingCollection(slots)
    for batch in a.iter_rows(max_rows=8):  # several chunks per slot
        assert batch.num_rows <= 8
        b.apply(batch, with_optimizer_state=True)
    b.set_init_state(a.init_state())
    assert len(b) == len(a)
    # Same optimizer state: the same gradient moves both tables the same way.
    ids = np.arange(50)
    grad = np.ones((50, 4), np.float32)
    for c in (a, b):
        c.push("u", ids, grad, now=9.0)
    assert np.array_equal(a.lookup("u", ids), b.lookup("u", ids))
    # Same initialiser state: a new ID gets the same initial row in both.
    new = np.array([1000])
    assert np.array_equal(a.pull("u", new, now=10.0), b.pull("u", new, now=10.0))


def test_apply_with_optimizer_state_needs_the_state_column() -> None:
    a = EmbeddingCollection([sgd_slot()])
    a.pull("s", np.array([1]), now=0.0)
    a.push("s", np.array([1]), np.ones((1, 3), np.float32), now=0.0)
    with pytest.raises(ValueError, match="no optimizer state"):
        EmbeddingCollection([sgd_slot()]).apply(a.drain_delta(), with_optimizer_state=True)
