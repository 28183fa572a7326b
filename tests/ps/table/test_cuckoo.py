"""The cuckoo table against a dict model: no collisions through inserts, deletes,
growth, forced cycles and compaction."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ps.table import CuckooTable

# Small ID pools make repeats and deletes of present IDs common.
ids_strategy = st.lists(st.integers(-(2**63) + 1, 2**63 - 1) | st.integers(-50, 50), max_size=60)
ops = st.lists(
    st.tuples(st.sampled_from(["insert", "delete", "compact"]), ids_strategy), max_size=25
)


def check_against_model(table: CuckooTable, model: dict[int, int]) -> None:
    assert len(table) == len(model)
    ids = np.array(list(model), dtype=np.int64)
    rows = table.find(ids)
    assert (rows >= 0).all()
    assert len(set(rows.tolist())) == len(rows)  # two distinct IDs never share a row
    # each row's payload is still its own ID's (rows survive kicks, growth, compaction)
    assert (table.rows.values[rows, 0].view(np.int32) == (ids % 1_000_003).astype(np.int32)).all()
    assert (table.rows.ids[rows] == ids).all()
    assert len(table) <= table.slots


@settings(max_examples=150, deadline=None)
@given(ops=ops, buckets=st.sampled_from([1, 2, 8]), kicks=st.sampled_from([1, 8, 500]))
def test_matches_dict_model(ops: list, buckets: int, kicks: int) -> None:
    table = CuckooTable(width=1, initial_buckets=buckets, max_kicks=kicks)
    model: dict[int, int] = {}
    for op, raw in ops:
        ids = np.array(raw, dtype=np.int64)
        if op == "insert":
            rows, new = table.insert(ids)
            table.rows.values[new, 0] = (table.rows.ids[new] % 1_000_003).astype(
                np.int32).view(np.float32)
            for i, r in zip(raw, rows.tolist(), strict=True):
                assert model.setdefault(i, r) == r  # insert-or-get is stable
        elif op == "delete":
            gone = set(table.delete(ids).tolist())
            assert gone == {i for i in raw if i in model}
            for i in gone:
                del model[i]
        else:
            table.compact()
            model = dict(zip(*(a.tolist() for a in table.items()), strict=True))
        check_against_model(table, model)
    absent = np.array([i for i in range(-60, 60) if i not in model], dtype=np.int64)
    assert (table.find(absent) == -1).all()


def test_forced_cycle_grows_table() -> None:
    # One bucket per side: 10 slots shared by every key, so the 11th key must cycle.
    table = CuckooTable(width=1, initial_buckets=1)
    table.insert(np.arange(10))
    assert table.stats()["grows"] == 0 and table.stats()["load_factor"] == 1.0
    table.insert(np.array([10]))
    assert table.stats()["grows"] == 1 and table.grow_loads == [1.0]
    assert (table.find(np.arange(11)) >= 0).all()


def test_grows_only_when_dense() -> None:
    table = CuckooTable(width=1, initial_buckets=64)
    rng = np.random.default_rng(1)
    for _ in range(20):
        table.insert(rng.integers(-(2**62), 2**62, 2000))
    assert table.grow_loads and min(table.grow_loads) > 0.85


def test_compact_gives_memory_back() -> None:
    table = CuckooTable(width=8, initial_buckets=4)
    table.insert(np.arange(100_000))
    big = table.nbytes
    table.delete(np.arange(99_000))
    table.compact()
    assert len(table) == 1000
    assert table.nbytes < big / 20
    kept = np.arange(99_000, 100_000)
    assert (table.rows.ids[table.find(kept)] == kept).all()
