from __future__ import annotations

import numpy as np

from ps.table import EMPTY_ID, RowStore


def test_alloc_reuses_released_rows_and_grows() -> None:
    rs = RowStore(width=2, capacity=2)
    rows = rs.alloc(5)
    assert rows.tolist() == [0, 1, 2, 3, 4] and rs.capacity >= 5
    rs.values[rows] = np.arange(10).reshape(5, 2)
    rs.release(np.array([1, 3]))
    assert sorted(rs.alloc(2).tolist()) == [1, 3]
    assert rs.high_water == 5
    assert rs.values[4].tolist() == [8.0, 9.0]  # growth kept the used prefix


def test_nbytes_tracks_high_water_not_reservation() -> None:
    rs = RowStore(width=4, capacity=1 << 20)
    assert rs.nbytes == 0
    rs.alloc(10)
    assert rs.nbytes == 10 * rs.row_bytes


def test_gather_reads_zero_for_missing() -> None:
    rs = RowStore(width=3)
    r = rs.alloc(1)
    rs.values[r] = [1, 2, 3]
    assert rs.gather(np.array([-1, 0]), 2).tolist() == [[0, 0], [1, 2]]


def test_compacted_keeps_rows_in_order() -> None:
    rs = RowStore(width=1)
    rows = rs.alloc(4)
    rs.ids[rows] = [10, 11, 12, 13]
    rs.values[rows, 0] = [0, 1, 2, 3]
    small = rs.compacted(np.array([3, 1]))
    assert small.ids[:2].tolist() == [13, 11] and small.values[:2, 0].tolist() == [3, 1]
    assert small.high_water == 2
    rs.release(np.array([0]))
    assert rs.ids[0] == EMPTY_ID and rs.live_rows().tolist() == [1, 2, 3]
