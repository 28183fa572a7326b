"""The row-batch format: one Arrow record batch layout for deltas, snapshots and serving.

=============  ===========================  ============================================
column         type                         meaning
=============  ===========================  ============================================
``slot``       dictionary<int32, string>    feature group
``id``         int64                        feature ID
``values``     list<float32>                the embedding (``dim`` floats; empty if deleted)
``deleted``    bool                         the row was removed (expired or deleted)
``updated_at`` float64 (null if deleted)    last update time, seconds
``state``      list<float32> (optional)     optimizer state, only when asked for
=============  ===========================  ============================================

Examples
--------
>>> import numpy as np
>>> part = SlotRows("genre", ids=np.array([1, 2]), values=np.ones((2, 3), np.float32),
...                 stamps=np.array([5.0, 6.0]), deleted=np.array([9]))
>>> batch = to_batch([part])
>>> batch.num_rows, batch.column("deleted").to_pylist()
(3, [False, False, True])
>>> [(p.slot, p.ids.tolist(), p.values.shape, p.deleted.tolist()) for p in from_batch(batch)]
[('genre', [1, 2], (2, 3), [9])]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class SlotRows:
    """Rows of one slot, as NumPy arrays."""

    slot: str
    ids: np.ndarray  # int64 (n,)
    values: np.ndarray  # float32 (n, dim)
    stamps: np.ndarray  # float64 (n,)
    deleted: np.ndarray  # int64 IDs removed
    state: np.ndarray | None = None  # float32 (n, state_width)


def _lists(blocks: Sequence[np.ndarray]) -> pa.ListArray:
    """One list<float32> entry per row of each 2-D block (blocks may differ in width)."""
    lengths = np.concatenate([np.full(b.shape[0], b.shape[1], np.int32) for b in blocks])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.ascontiguousarray(b, np.float32).ravel() for b in blocks])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32()))


def to_batch(parts: Sequence[SlotRows], with_state: bool = False) -> pa.RecordBatch:
    """Live rows then deleted rows of every part, in one record batch."""
    names = [p.slot for p in parts]
    slot_idx, ids, values, states, stamps, deleted = [], [], [], [], [], []
    for k, p in enumerate(parts):
        n, m = len(p.ids), len(p.deleted)
        slot_idx.append(np.full(n + m, k, np.int32))
        ids += [p.ids, p.deleted]
        values += [p.values, np.zeros((m, 0), np.float32)]
        stamps += [p.stamps, np.full(m, np.nan)]
        deleted += [np.zeros(n, bool), np.ones(m, bool)]
        if with_state:
            width = 0 if p.state is None else p.state.shape[1]
            state = p.state if p.state is not None else np.zeros((n, 0), np.float32)
            states += [state, np.zeros((m, width), np.float32)]
    if not parts:
        return empty_batch(with_state)
    is_deleted = np.concatenate(deleted)
    columns = {
        "slot": pa.DictionaryArray.from_arrays(
            pa.array(np.concatenate(slot_idx), pa.int32()), pa.array(names, pa.string())
        ),
        "id": pa.array(np.concatenate(ids).astype(np.int64)),
        "values": _lists(values),
        "deleted": pa.array(is_deleted),
        "updated_at": pa.array(np.concatenate(stamps), pa.float64(), mask=is_deleted),
    }
    if with_state:
        columns["state"] = _lists(states)
    return pa.RecordBatch.from_pydict(columns)


def empty_batch(with_state: bool = False) -> pa.RecordBatch:
    return to_batch(
        [SlotRows("", np.empty(0, np.int64), np.empty((0, 0), np.float32),
                  np.empty(0), np.empty(0, np.int64), np.empty((0, 0), np.float32))],
        with_state,
    ).slice(0, 0)


def _matrix(lists: pa.Array) -> np.ndarray:
    """A list<float32> column whose entries all have one length, as an (n, w) array."""
    if len(lists) == 0:
        return np.empty((0, 0), np.float32)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    if (lengths != lengths[0]).any():
        raise ValueError("rows of one slot have different lengths")
    flat = lists.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(lists), int(lengths[0]))


def from_batch(batch: pa.RecordBatch) -> Iterator[SlotRows]:
    """Split a row batch back into per-slot NumPy arrays."""
    slot = batch.column("slot")
    if not pa.types.is_dictionary(slot.type):
        slot = pc.dictionary_encode(slot)
    codes = slot.indices.to_numpy(zero_copy_only=False)
    deleted = batch.column("deleted").to_numpy(zero_copy_only=False)
    ids = batch.column("id").to_numpy()
    has_state = "state" in batch.schema.names
    for k, name in enumerate(slot.dictionary.to_pylist()):
        live = np.flatnonzero((codes == k) & ~deleted)
        gone = np.flatnonzero((codes == k) & deleted)
        if len(live) == 0 and len(gone) == 0:
            continue
        take = pa.array(live)
        yield SlotRows(
            slot=name,
            ids=ids[live],
            values=_matrix(batch.column("values").take(take)),
            stamps=batch.column("updated_at").take(take).to_numpy(zero_copy_only=False),
            deleted=ids[gone],
            state=_matrix(batch.column("state").take(take)) if has_state else None,
        )


def to_ipc(batch: pa.RecordBatch) -> bytes:
    """A record batch as Arrow IPC stream bytes (the one serialisation Freshet uses)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.RecordBatch:
    """The record batch written by :func:`to_ipc` (batches of one stream are combined)."""
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def write_file(path: str | Path, batch: pa.RecordBatch) -> None:
    """One record batch as an Arrow IPC file (snapshots: :func:`read_file` maps it)."""
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, batch.schema) as w:
        w.write_batch(batch)


def read_file(path: str | Path) -> Iterator[pa.RecordBatch]:
    """The record batches of an Arrow IPC file, memory-mapped, not read into memory."""
    with pa.memory_map(str(path)) as f:
        reader = pa.ipc.open_file(f)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
