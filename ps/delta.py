"""The wire format of the Kafka ``params`` topic: parameter updates as Arrow IPC streams.

A trainer shard publishes two kinds of update:

- ``sparse``: a row batch from :meth:`ps.EmbeddingCollection.drain_delta`
  (see :mod:`ps.batch`), every second or so;
- ``dense``: named NumPy arrays (the dense layers), every few minutes.

A dense update's header also says which model the arrays are for (``model_kind``,
a registered ``model.kind``), so serving scores them with that model's forward and
refuses a kind it does not know, never guessing from the arrays' names.

A large update is split into parts, each a complete Arrow IPC stream of at most
``max_part_bytes`` whose schema metadata says which update it belongs to
(``model_id, shard, kind, seq``) and ``part`` of ``parts``, so a consumer can tell
when an update is complete. All parts of a shard and kind share one message key,
so they land in one partition, in order. :class:`DeltaAssembler` collects parts and
drops re-deliveries: the embedded broker is at-least-once. No pickle anywhere.

``seq`` must increase per ``(model_id, shard, kind)``, across trainer restarts too
(restore it from the checkpoint): the assembler ignores any seq it has completed.

Examples
--------
>>> import numpy as np, pyarrow as pa
>>> batch = pa.RecordBatch.from_pydict({"id": np.arange(1000)})
>>> msgs = encode_sparse(batch, model_id="m", shard=0, seq=7, watermark_ms=1, wall_time_ms=2,
...                      max_part_bytes=4096)
>>> len(msgs) > 1, msgs[0][0]
(True, b'm/sparse/0')
>>> asm = DeltaAssembler()
>>> done = [u for _, v in msgs + msgs for u in [asm.feed(v)] if u is not None]
>>> len(done), done[0].meta.seq, done[0].payload.num_rows      # re-delivery dropped
(1, 7, 1000)
>>> _, value = encode_dense({"w": np.eye(2, dtype=np.float32)}, model_kind="lr",
...                         model_id="m", shard=0, seq=1, watermark_ms=0, wall_time_ms=0)[0]
>>> meta, arrays = decode(value)
>>> meta.kind, meta.model_kind, arrays["w"].tolist()
('dense', 'lr', [[1.0, 0.0], [0.0, 1.0]])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ps.batch import to_ipc

_PREFIX = "freshet.delta."
_HEADROOM = 1024  # bytes kept free in each part for the schema metadata
# Header fields older producers did not write. A dense update without a model_kind
# still decodes (serving then refuses to score it, saying why) rather than being
# dropped as "not a Freshet delta" along with every sparse update of that trainer.
_OPTIONAL = frozenset({"model_kind"})


@dataclass(frozen=True)
class DeltaMeta:
    """Which update a part belongs to. ``watermark_ms``: event time the trainer had
    consumed; ``wall_time_ms``: when the update was produced; ``model_kind``: the
    ``model.kind`` a dense update's arrays are weights of (empty for sparse)."""

    model_id: str
    shard: int
    seq: int
    kind: str  # 'sparse' | 'dense'
    watermark_ms: int
    wall_time_ms: int
    part: int = 0
    parts: int = 1
    model_kind: str = ""

    @property
    def update_id(self) -> tuple[str, int, str, int]:
        return (self.model_id, self.shard, self.kind, self.seq)

    def to_metadata(self) -> dict[bytes, bytes]:
        return {
            (_PREFIX + k).encode(): str(v).encode() for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_metadata(cls, md: Mapping[bytes, bytes] | None) -> DeltaMeta:
        md = md or {}
        kw = {}
        for f in dataclasses.fields(cls):
            raw = md.get((_PREFIX + f.name).encode())
            if raw is None and f.name in _OPTIONAL:
                continue  # written before the field existed: its default
            if raw is None:
                raise ValueError(f"not a Freshet delta: schema metadata lacks {f.name!r}")
            kw[f.name] = raw.decode() if f.type == "str" else int(raw)
        return cls(**kw)


@dataclass(frozen=True)
class Update:
    """A complete update: its meta (``part`` 0 of ``parts``) and payload."""

    meta: DeltaMeta
    payload: pa.RecordBatch | dict[str, np.ndarray]


def message_key(model_id: str, shard: int, kind: str) -> bytes:
    return f"{model_id}/{kind}/{shard}".encode()


def _split(batch: pa.RecordBatch, limit: int) -> list[pa.RecordBatch]:
    """Consecutive slices of ``batch`` whose IPC encoding fits ``limit`` bytes."""
    if batch.num_rows == 0 or len(to_ipc(batch)) <= limit:
        return [batch]
    if batch.num_rows == 1:
        raise ValueError(f"one row needs more than {limit} bytes; raise max_part_bytes")
    half = batch.num_rows // 2
    return _split(batch.slice(0, half), limit) + _split(batch.slice(half), limit)


def _encode(
    batch: pa.RecordBatch, meta: DeltaMeta, max_part_bytes: int
) -> list[tuple[bytes, bytes]]:
    slices = _split(batch, max_part_bytes - _HEADROOM)
    key = message_key(meta.model_id, meta.shard, meta.kind)
    out = []
    for i, piece in enumerate(slices):
        part_meta = dataclasses.replace(meta, part=i, parts=len(slices))
        schema = piece.schema.with_metadata(part_meta.to_metadata())
        out.append((key, to_ipc(pa.RecordBatch.from_arrays(piece.columns, schema=schema))))
    return out


def encode_sparse(
    batch: pa.RecordBatch,
    *,
    model_id: str,
    shard: int,
    seq: int,
    watermark_ms: int,
    wall_time_ms: int,
    max_part_bytes: int = 512 * 1024,
) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` messages for a sparse row batch, split into parts as needed."""
    meta = DeltaMeta(model_id, shard, seq, "sparse", watermark_ms, wall_time_ms)
    return _encode(batch, meta, max_part_bytes)


def encode_dense(
    weights: Mapping[str, np.ndarray],
    *,
    model_kind: str,
    model_id: str,
    shard: int,
    seq: int,
    watermark_ms: int,
    wall_time_ms: int,
    max_part_bytes: int = 512 * 1024,
) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` messages for named dense arrays, the weights of a
    ``model_kind`` model.

    One Arrow row per array (columns ``name, dtype, shape, row_start, data``); an array
    too big for a part is cut along axis 0 into several rows.
    """
    if not model_kind:
        raise ValueError("a dense update needs its model_kind (serving scores by it)")
    limit = max_part_bytes - _HEADROOM - 2048  # room for IPC framing and the other columns
    rows: dict[str, list] = {"name": [], "dtype": [], "shape": [], "row_start": [], "data": []}
    for name, arr in weights.items():
        arr = np.asarray(arr, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name}: dtype {arr.dtype} is not numeric")
        flat = arr.reshape(1, -1) if arr.ndim == 0 else arr
        per_row = max(flat[:1].nbytes, 1)
        step = max(1, limit // per_row)
        for start in range(0, max(len(flat), 1), step):
            rows["name"].append(name)
            rows["dtype"].append(arr.dtype.str)
            rows["shape"].append(list(arr.shape))
            rows["row_start"].append(start)
            rows["data"].append(flat[start : start + step].tobytes())
    schema = pa.schema([("name", pa.string()), ("dtype", pa.string()),
                        ("shape", pa.list_(pa.int64())), ("row_start", pa.int64()),
                        ("data", pa.binary())])
    batch = pa.RecordBatch.from_pydict(rows, schema=schema)
    meta = DeltaMeta(model_id, shard, seq, "dense", watermark_ms, wall_time_ms,
                     model_kind=model_kind)
    return _encode(batch, meta, max_part_bytes)


def _read(value: bytes) -> tuple[DeltaMeta, pa.RecordBatch]:
    reader = pa.ipc.open_stream(pa.py_buffer(value))
    meta = DeltaMeta.from_metadata(reader.schema.metadata)
    batches = list(reader)
    batch = batches[0] if len(batches) == 1 else pa.Table.from_batches(
        batches, reader.schema).combine_chunks().to_batches()[0]
    return meta, batch.replace_schema_metadata(None)


def _arrays(batches: list[pa.RecordBatch]) -> dict[str, np.ndarray]:
    """Dense rows -> arrays; pieces of one array are joined in ``row_start`` order."""
    pieces: dict[str, list[tuple[int, bytes]]] = {}
    shapes: dict[str, tuple[str, list[int]]] = {}
    for b in batches:
        for name, dtype, shape, start, data in zip(*(b.column(i).to_pylist() for i in range(5)),
                                                   strict=True):
            pieces.setdefault(name, []).append((start, data))
            shapes[name] = (dtype, shape)
    out = {}
    for name, chunks in pieces.items():
        dtype, shape = shapes[name]
        flat = np.frombuffer(b"".join(d for _, d in sorted(chunks)), dtype=np.dtype(dtype))
        whole = flat.size == int(np.prod(shape))
        out[name] = flat.reshape(shape).copy() if whole else flat.reshape(-1, *shape[1:]).copy()
    return out


def decode(value: bytes) -> tuple[DeltaMeta, pa.RecordBatch | dict[str, np.ndarray]]:
    """One message's meta and payload.

    A dense part of a multi-part update holds whole arrays and/or row ranges of large
    ones (a range comes back with fewer rows than the array); use
    :class:`DeltaAssembler` to get whole updates.
    """
    meta, batch = _read(value)
    if meta.kind == "dense":
        return meta, _arrays([batch])
    return meta, batch


class DeltaAssembler:
    """Reassembles parts into updates and drops duplicates and re-deliveries.

    An update is identified by ``(model_id, shard, kind, seq)``. Once one completes,
    any part with the same or a lower seq for that ``(model_id, shard, kind)`` is
    ignored, and incomplete older updates are discarded.
    """

    def __init__(self) -> None:
        self.done: dict[tuple[str, int, str], int] = {}  # stream -> last completed seq
        self.pending: dict[tuple[str, int, str, int], dict[int, pa.RecordBatch]] = {}
        self.duplicates = 0

    def feed(self, value: bytes) -> Update | None:
        """Add one message; returns the update it completes, else None."""
        meta, batch = _read(value)
        stream = meta.update_id[:3]
        if meta.seq <= self.done.get(stream, -1):
            self.duplicates += 1
            return None
        parts = self.pending.setdefault(meta.update_id, {})
        if meta.part in parts:
            self.duplicates += 1
            return None
        parts[meta.part] = batch
        if len(parts) < meta.parts:
            return None
        self.done[stream] = meta.seq
        for uid in [u for u in self.pending if u[:3] == stream and u[3] <= meta.seq]:
            del self.pending[uid]
        ordered = [parts[i] for i in range(meta.parts)]
        full = dataclasses.replace(meta, part=0)
        if meta.kind == "dense":
            return Update(full, _arrays(ordered))
        table = pa.Table.from_batches(ordered).combine_chunks()
        batch = table.to_batches()[0] if table.num_rows else ordered[0]
        return Update(full, batch)
