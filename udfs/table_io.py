"""Whole rows (embedding + optimizer state) in and out of a ``ps.EmbeddingCollection``.

Checkpoints need the optimizer state too, which ``EmbeddingCollection.apply`` (the
serving path) ignores, so this module writes rows through ``EmbeddingSlot.upsert``
and reads them with ``EmbeddingSlot.dump``, as ``EmbeddingCollection.restore`` does.
It is the one place that touches those slot-level methods.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ps import EmbeddingCollection, SlotRows, from_batch, to_batch


def to_ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.RecordBatch:
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def apply_rows(coll: EmbeddingCollection, batch: pa.RecordBatch) -> None:
    """Upsert rows with their optimizer state and delete deleted rows (restore path)."""
    for part in from_batch(batch):
        slot = coll.slots[part.slot]
        if len(part.deleted):
            slot.delete(part.deleted, record=False)
        if len(part.ids):
            values = part.values if part.state is None else np.hstack([part.values, part.state])
            slot.upsert(part.ids, values, part.stamps)


def dump_rows(coll: EmbeddingCollection, max_rows: int = 65_536) -> list[pa.RecordBatch]:
    """Every live row with optimizer state, in batches of at most ``max_rows``."""
    out = []
    none = np.empty(0, np.int64)
    for name, slot in coll.slots.items():
        ids, values, stamps = slot.dump()
        for a in range(0, len(ids), max_rows):
            v = values[a : a + max_rows]
            part = SlotRows(name, ids[a : a + max_rows], v[:, : slot.dim],
                            stamps[a : a + max_rows], none, v[:, slot.dim :])
            out.append(to_batch([part], with_state=True))
    return out


def rng_state(coll: EmbeddingCollection) -> dict[str, Any]:
    """Per-slot state of the row initialisers (so a restore creates the same rows)."""
    return {name: s.init_rng.bit_generator.state for name, s in coll.slots.items()}


def set_rng_state(coll: EmbeddingCollection, state: dict[str, Any]) -> None:
    for name, st in state.items():
        coll.slots[name].init_rng.bit_generator.state = st
