from __future__ import annotations

import numpy as np
import pyarrow as pa

from ps.batch import SlotRows, from_batch, to_batch


def test_round_trip_mixed_dims_with_state() -> None:
    a = SlotRows("a", np.array([1, 2]), np.ones((2, 3), np.float32), np.array([1.0, 2.0]),
                 np.array([9]), np.full((2, 3), 0.5, np.float32))
    b = SlotRows("b", np.array([5]), np.zeros((1, 1), np.float32), np.array([3.0]),
                 np.empty(0, np.int64), np.empty((1, 0), np.float32))
    batch = to_batch([a, b], with_state=True)
    assert batch.num_rows == 4
    assert batch.schema.field("values").type == pa.list_(pa.float32())
    back = {p.slot: p for p in from_batch(batch)}
    assert back["a"].ids.tolist() == [1, 2] and back["a"].deleted.tolist() == [9]
    assert back["a"].state.tolist() == a.state.tolist()
    assert back["b"].values.shape == (1, 1) and back["b"].stamps.tolist() == [3.0]


def test_plain_string_slot_column_accepted() -> None:
    batch = to_batch([SlotRows("a", np.array([1]), np.ones((1, 2), np.float32),
                               np.array([0.0]), np.empty(0, np.int64))])
    plain = batch.set_column(0, "slot", batch.column("slot").cast(pa.string()))
    (part,) = from_batch(plain)
    assert part.slot == "a" and part.values.tolist() == [[1.0, 1.0]]
