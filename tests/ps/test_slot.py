"""EmbeddingSlot.cells / store_cells: one column and its optimizer state, read and written back."""

from __future__ import annotations

import numpy as np
import pytest

from ps.config import AdmissionConfig, SlotConfig, optimizer_config
from ps.optimizers import step
from ps.slot import EmbeddingSlot


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "ftrl"])
def test_cells_step_like_push_does(optimizer: str) -> None:
    """Stepping column 2 through cells equals a push whose gradient is 0 elsewhere."""
    cfg = SlotConfig("user_id", dim=4, optimizer=optimizer_config(optimizer, learning_rate=0.3))
    a, b = EmbeddingSlot(cfg, seed=1), EmbeddingSlot(cfg, seed=1)
    ids = np.array([5, 9, 12])
    for s in (a, b):
        s.pull(ids, now=0.0)
        s.push(ids, np.full((3, 4), 0.5, np.float32), now=0.0)  # some optimizer state
        s.drain()
    g = np.array([0.7, -1.1, 0.2], np.float32)
    grads = np.zeros((3, 4), np.float32)
    grads[:, 2] = g
    a.push(ids, grads, now=1.0)
    cells = b.cells(ids, column=2)
    for i in range(3):
        cells.values[i] = step(cells.code, cells.hyper, *cells.values[i], g[i])
    b.store_cells(cells, now=1.0)
    np.testing.assert_allclose(b.dump()[1], a.dump()[1], rtol=1e-6)
    assert sorted(b.drain()[0].tolist()) == ids.tolist()  # touched: in the next delta


def test_ids_without_a_row_read_zero_and_are_not_written() -> None:
    cfg = SlotConfig("user_id", dim=2, admission=AdmissionConfig(min_count=2))  # 1st: no row
    s = EmbeddingSlot(cfg)
    s.pull(np.array([1]), now=0.0)
    s.pull(np.array([1, 2]), now=0.0)  # 1 admitted on its 2nd sighting, 2 not yet
    cells = s.cells(np.array([1, 2]))
    assert cells.rows[1] == -1 and (cells.values[1] == 0).all()
    cells.values[:] = 7.0
    s.store_cells(cells, now=1.0)
    assert len(s) == 1 and s.lookup(np.array([1, 2]))[:, 0].tolist() == [7.0, 0.0]


def test_rejects_a_column_outside_the_embedding() -> None:
    s = EmbeddingSlot(SlotConfig("user_id", dim=2))
    with pytest.raises(ValueError, match="column 2"):
        s.cells(np.array([1]), column=2)
