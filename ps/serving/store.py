"""The serving state on local disk, in RocksDB, so a restarted server resumes in seconds.

One RocksDB database (``<root>/rocksdb``, through ``rocksdict`` in raw mode) holds a
*base* (every row, as Arrow IPC blocks) and a *log* (the sparse updates applied since
the base, as received, in order):

===============================  =======================================================
key                              value
===============================  =======================================================
``b`` + generation + block       up to ``_BLOCK_ROWS`` rows (Arrow IPC, :mod:`ps.batch`)
``l`` + sequence number          one applied sparse update (Arrow IPC)
``d`` + index                    dense array ``index`` (``.npy`` bytes, no pickle)
``m``                            JSON: format, precision, slot dims, the loader's
                                 :class:`Position`, versions, dense metadata, which base
                                 generation and log range are current
===============================  =======================================================

A save appends the updates applied since the previous save to the log (a write per
update), then writes the metadata (and the dense arrays if the model changed) in one
batch: RocksDB applies a batch entirely or not at all, and the metadata names the log
range and base that are current, so a crash at any point leaves the previous save in
force (entries past its range are ignored, and overwritten by the next save). Writes
are not synced (:func:`_commit`): after a power loss the store comes back at an
earlier save. A save costs what changed, whatever the table's size. rocksdict holds
the interpreter while it writes, so writes are kept small and request threads get it
back between them (docs/serving.md).

Once the log holds more rows than the base (and at least ``compact_rows``), the save
writes a new base generation block by block, then switches the metadata to it and
drops the old base and the log in one batch. The first save of a state this store did
not load, and the first save after a failed one, also write a new base. Loading
applies the base's blocks, then the log's updates, in order.

Examples
--------
>>> import tempfile, numpy as np
>>> from ps.config import SlotConfig
>>> from ps.serving.state import DenseModel, ServingState
>>> from ps.serving.synthetic import sparse_rows
>>> slots = [SlotConfig("item_id", dim=2)]
>>> store = ServingStore(tempfile.mkdtemp())
>>> state, _ = store.load(slots)  # nothing saved yet: empty
>>> _ = state.apply_sparse(sparse_rows({"item_id": ([7, 8], np.ones((2, 2)))}), 0, 5)
>>> _ = state.set_dense(DenseModel({"bias": np.ones(1, np.float32)}, 0, 4, 0, 0, "lr"))
>>> store.save(state, Position(offsets={0: 12}, last_crc={0: 99}, seqs={"m/sparse/0": 11}))
2
>>> _ = state.apply_sparse(sparse_rows({}, deleted={"item_id": [8]}), 0, 6)
>>> store.save(state, Position(offsets={0: 13}))  # rows written: one deletion
1
>>> store.close()  # one open handle per database and process
>>> with ServingStore(store.root) as again:
...     state2, pos = again.load(slots)
>>> pos.offsets, state2.table_rows(), state2.dense.seq, state2.versions.table
({0: 13}, {'item_id': 1}, 4, 2)
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rocksdict import Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from ps.batch import SlotRows, from_ipc, to_batch, to_ipc
from ps.collection import EmbeddingCollection
from ps.config import SlotConfig
from ps.serving.half import HalfCollection
from ps.serving.state import DenseModel, ServingState, Versions, serving_slots

_FORMAT = "freshet.serving.store/1"
_META, _BASE, _LOG, _DENSE = b"m", b"b", b"l", b"d"
_BLOCK_ROWS = 65_536  # rows per base block (one write each: a few ms)


@dataclass
class Position:
    """Where the loader is: what to read next and what it has applied.

    ``offsets``: partition -> next offset to read. ``last_crc``: partition -> CRC32
    of the record just before it (to notice a broker that lost its topic).
    ``seqs``: ``"model/kind/shard"`` -> last completed seq (for deduplication).
    """

    offsets: dict[int, int] = field(default_factory=dict)
    last_crc: dict[int, int] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)


@dataclass
class _Layout:
    """Which keys are current: the base generation and the log's range."""

    generation: int = 0
    base_rows: int = 0
    log_first: int = 0
    log_next: int = 0
    log_rows: int = 0


class ServingStore:
    """Saves a :class:`ServingState` and the loader's :class:`Position` incrementally and
    atomically, and loads them back.

    Parameters
    ----------
    root : path
        Directory of this server's store (created on the first save).
    compact_rows : int
        The log is folded into a new base once it holds more rows than the base and at
        least this many.
    """

    def __init__(self, root: str | os.PathLike[str], compact_rows: int = 1_000_000) -> None:
        self.root = Path(root)
        self.db_path = self.root / "rocksdb"
        self.compact_rows = compact_rows
        # The state whose every change up to the last save is on disk (None: the next
        # save writes a new base), and the model version saved with it.
        self._synced: ServingState | None = None
        self._saved_model = -1
        self._layout: _Layout | None = None  # the database's, once read or written
        self.saved_table_version: int | None = None  # of the last completed save
        self._handle: Rdict | None = None

    def _db(self) -> Rdict:
        # Kept open: reopening per save flushed the memtable each time and left an
        # info-log file behind per open.
        if self._handle is None:
            self.root.mkdir(parents=True, exist_ok=True)
            options = Options(raw_mode=True)
            options.set_keep_log_file_num(2)
            try:
                self._handle = Rdict(str(self.db_path), options)
            except Exception as e:  # rocksdict raises a bare Exception
                if "lock" not in str(e).lower():
                    raise
                raise RuntimeError(
                    f"{self.db_path} is open in another server (or another store of this "
                    "process): give each server its own serving.store_dir or work_dir"
                ) from e
        return self._handle

    def close(self) -> None:
        """Close the database (RocksDB lets one handle per process open it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ServingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- saving --------------------------------------------------------------------
    def save(self, state: ServingState, position: Position) -> int:
        """Write what changed since the last save, and ``position``; returns the number
        of rows written. Call from the only writer thread (the loader), so the tables
        cannot change meanwhile."""
        base = self._synced is not state
        self._synced = None  # until the save is on disk: a failed save writes a base
        layout = _Layout(**asdict(self._current_layout()))
        batch = WriteBatch(raw_mode=True)
        if base:
            state.track_changes()
            rows = self._write_base(state, layout, batch)
        else:
            rows, db = 0, self._db()
            for delta in state.take_changes():
                # A write each: rocksdict holds the interpreter while it writes, and one
                # batch of a save's 100 updates stalled request threads for 10-15 ms. An
                # entry is invisible until the metadata's log range covers it.
                entry = WriteBatch(raw_mode=True)
                entry.put(_log_key(layout.log_next), to_ipc(delta))
                _commit(db, entry, final=False)
                time.sleep(0)  # let a waiting request thread have the interpreter now
                layout.log_next += 1
                rows += delta.num_rows
            layout.log_rows += rows
        dense = state.dense
        if dense is not None and (base or state.versions.model != self._saved_model):
            batch.delete_range(_DENSE, _after(_DENSE))
            for i, arr in enumerate(dense.weights.values()):
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                batch.put(_dense_key(i), buf.getvalue())
        batch.put(_META, json.dumps(_meta(state, position, layout)).encode())
        _commit(self._db(), batch, final=True)
        self._layout = layout
        self._synced, self._saved_model = state, state.versions.model
        self.saved_table_version = state.versions.table
        if layout.log_rows > max(layout.base_rows, self.compact_rows):
            self._synced = None  # the next save folds the log into a new base
        return rows

    def _current_layout(self) -> _Layout:
        if self._layout is None:
            meta = self._meta()
            self._layout = _Layout(**meta["layout"]) if meta else _Layout()
        return self._layout

    def _meta(self) -> dict | None:
        """The saved metadata (None if nothing was saved); refuses another format."""
        if self._handle is None and not self.db_path.exists():
            return None
        raw = self._db().get(_META)
        if raw is None:
            return None
        meta = json.loads(raw)
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{self.db_path}: not a {_FORMAT} store; remove it to reload "
                             "the params topic")
        return meta

    def _write_base(self, state: ServingState, layout: _Layout, commit: WriteBatch) -> int:
        """Write every row as a new base generation (a block per write) and add to
        ``commit`` what drops the old base and the log once it is written."""
        db, new = self._db(), layout.generation + 1
        prefix = _base_key(new)
        db.delete_range(prefix, _BASE + b"\xff" * 5)  # left by a base cut short
        rows = block = 0
        for name, ids, values in _every_row(state):
            for a in range(0, len(ids), _BLOCK_ROWS):
                chunk = slice(a, a + _BLOCK_ROWS)
                part = SlotRows(name, ids[chunk], values[chunk], np.zeros(len(ids[chunk])),
                                np.empty(0, np.int64))
                one = WriteBatch(raw_mode=True)
                one.put(prefix + block.to_bytes(4, "big"), to_ipc(to_batch([part])))
                _commit(db, one, final=False)  # invisible until the metadata names it
                time.sleep(0)
                block += 1
                rows += len(part.ids)
        commit.delete_range(_BASE, prefix)  # older generations
        commit.delete_range(_LOG, _after(_LOG))
        layout.generation, layout.base_rows = new, rows
        layout.log_first = layout.log_next
        layout.log_rows = 0
        return rows

    # -- loading -------------------------------------------------------------------
    def load(
        self, slots: Sequence[SlotConfig], precision: str = "fp32"
    ) -> tuple[ServingState, Position]:
        """The saved state and position (empty ones if nothing was saved); the store
        then tracks the returned state, so its next save is incremental."""
        meta = self._meta()
        if meta is None:
            state, position = ServingState(slots, precision=precision), Position()
            self._layout = _Layout()
        else:
            self._layout = _Layout(**meta["layout"])
            state, position = _restore(self._db(), meta, self._layout, slots, precision,
                                       self.db_path)
        state.track_changes()
        self._synced, self._saved_model = state, state.versions.model
        self.saved_table_version = state.versions.table if meta is not None else None
        return state, position


def _commit(db: Rdict, batch: WriteBatch, final: bool) -> None:
    """Write a batch; ``final``: the one that makes a save current. (A function of its
    own so a test can make it fail.)

    Not synced: rocksdict holds the interpreter during the fsync, and the sync pushed
    the server's slowest requests from ~15 ms to ~30 ms. A killed process loses nothing
    (the OS has the write-ahead log); after a power loss RocksDB recovers a prefix of
    the writes, which is an earlier save, and the loader reads on from its position.
    """
    del final
    db.write(batch, WriteOptions())


def _base_key(generation: int) -> bytes:
    """The prefix of a base generation's blocks (each adds its number, 4 bytes)."""
    return _BASE + generation.to_bytes(4, "big")


def _log_key(n: int) -> bytes:
    return _LOG + n.to_bytes(8, "big")


def _dense_key(i: int) -> bytes:
    return _DENSE + i.to_bytes(4, "big")


def _after(prefix: bytes) -> bytes:
    """The first key past every key that starts with the one-byte ``prefix``."""
    return bytes([prefix[0] + 1])


def _meta(state: ServingState, position: Position, layout: _Layout) -> dict:
    dense = state.dense
    return {
        "format": _FORMAT,
        "precision": state.precision,
        "dims": {name: state.tables.dim(name) for name in state.tables.slots},
        "layout": asdict(layout),
        "position": _jsonable(asdict(position)),
        "versions": _jsonable(asdict(state.versions)),
        "dense": None if dense is None else {
            "names": list(dense.weights), "shard": dense.shard, "seq": dense.seq,
            "watermark_ms": dense.watermark_ms, "wall_time_ms": dense.wall_time_ms,
            "kind": dense.kind},
    }


def _restore(db: Rdict, meta: dict, layout: _Layout, slots: Sequence[SlotConfig],
             precision: str, where: Path) -> tuple[ServingState, Position]:
    if meta["precision"] != precision:
        raise ValueError(f"{where}: stored tables are {meta['precision']}, config asks for "
                         f"{precision}; set it back or remove {where} to reload the params "
                         "topic")
    tables = (HalfCollection if precision == "fp16" else EmbeddingCollection)(
        serving_slots(slots))
    for name, dim in meta["dims"].items():
        if name not in tables.slots or tables.dim(name) != dim:
            raise ValueError(f"{where}: slot {name!r} was stored with dim {dim}; the config "
                             "differs. Set it back or remove the store to reload the params "
                             "topic")
    for data in _values(db, _base_key(layout.generation), _base_key(layout.generation + 1)):
        tables.apply(from_ipc(data))
    for data in _values(db, _log_key(layout.log_first), _log_key(layout.log_next)):
        tables.apply(from_ipc(data))
    state = ServingState(slots, tables)
    dense = None
    if meta["dense"] is not None:
        d = meta["dense"]
        weights = {name: np.load(io.BytesIO(db[_dense_key(i)]),
                                 allow_pickle=False)
                   for i, name in enumerate(d["names"])}
        # A store saved before dense models carried their kind has none: "" is no
        # registered kind, so the loader refuses to serve that model (and says so).
        dense = DenseModel(weights, d["shard"], d["seq"], d["watermark_ms"], d["wall_time_ms"],
                           d.get("kind", ""))
    v = meta["versions"]
    state.restore_versions(
        Versions(v["table"], v["model"], {int(k): m for k, m in v["watermark_ms"].items()}),
        dense,
    )
    p = meta["position"]
    position = Position(
        offsets={int(k): o for k, o in p["offsets"].items()},
        last_crc={int(k): c for k, c in p["last_crc"].items()},
        seqs=dict(p["seqs"]),
    )
    return state, position


def _values(db: Rdict, start: bytes, stop: bytes) -> Iterator[bytes]:
    """Values of the keys in ``[start, stop)``, in key order."""
    bounds = ReadOptions()
    bounds.set_iterate_upper_bound(stop)
    yield from db.values(from_key=start, read_opt=bounds)


def _every_row(state: ServingState) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    for name, s in state.tables.slots.items():
        ids, values = s.dump()[:2]  # both table kinds' slots dump (ids, values, ...)
        yield name, ids, values[:, : s.dim]


def _jsonable(obj: object) -> object:
    """JSON turns int dict keys into strings; do it explicitly (and reverse on load)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    return obj
