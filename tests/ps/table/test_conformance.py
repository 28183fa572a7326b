"""Behaviour every Table implementation shares (cuckoo and hashed)."""

from __future__ import annotations

import numpy as np
import pytest

from ps.table import EMPTY_ID, CuckooTable, HashedTable, Table

FACTORIES = {
    "cuckoo": lambda: CuckooTable(width=3, initial_buckets=2),
    "hashed": lambda: HashedTable(width=3, n_rows=64),
    "hashed-roomy": lambda: HashedTable(width=3, n_rows=1 << 16),
}


@pytest.fixture(params=sorted(FACTORIES))
def table(request: pytest.FixtureRequest) -> Table:
    return FACTORIES[request.param]()


def test_empty_table_finds_nothing(table: Table) -> None:
    assert len(table) == 0
    assert table.find(np.array([1, 2, -5])).tolist() == [-1, -1, -1]


def test_insert_then_find_agree_and_are_stable(table: Table) -> None:
    ids = np.array([5, 9, 5, -3, 2**40, 9])
    rows, new = table.insert(ids)
    assert rows[0] == rows[2] and rows[1] == rows[5]  # repeats share their row
    assert (table.find(ids) == rows).all()
    assert len(new) == len(set(new.tolist())) == len(table)
    again, new2 = table.insert(ids)
    assert (again == rows).all() and len(new2) == 0


def test_rows_hold_values(table: Table) -> None:
    ids = np.arange(20)
    rows, _ = table.insert(ids)
    table.rows.values[rows, 0] = ids  # last writer wins on shared (hashed) rows
    got = table.rows.gather(table.find(ids), 1)[:, 0]
    owner = table.rows.values[rows, 0]
    assert (got == owner).all()
    if table.collisionless:
        assert (got == ids).all()


def test_delete_removes(table: Table) -> None:
    rows, _ = table.insert(np.arange(10))
    gone = table.delete(np.array([3, 3, 99]))
    assert 3 in gone.tolist() and 99 not in gone.tolist()
    assert table.find(np.array([3])).tolist() == [-1]
    assert len(table) < 10


def test_items_match_find(table: Table) -> None:
    table.insert(np.arange(0, 300, 7))
    ids, rows = table.items()
    assert len(ids) == len(table)
    assert (table.find(ids) == rows).all()


def test_nbytes_counts_rows(table: Table) -> None:
    before = table.nbytes
    table.insert(np.arange(1000))
    assert table.nbytes >= before > 0


def test_reserved_id_rejected(table: Table) -> None:
    with pytest.raises(ValueError, match="reserved"):
        table.insert(np.array([EMPTY_ID]))
