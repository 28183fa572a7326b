"""Serving snapshots on local disk, so a restarted server resumes in seconds.

A snapshot is a directory ``snap-<n>/`` holding the tables (Arrow IPC, via
:meth:`ps.EmbeddingCollection.snapshot`), the dense weights (``.npy`` files, no
pickle) and ``meta.json``: the loader's :class:`Position` (next params-topic offset
per partition, a CRC of the last record read, and the last applied seq per
stream) plus the versions. A file ``CURRENT`` names the newest complete snapshot;
it is replaced atomically (write a temporary file, then rename) only after the
snapshot is fully written, so a crash at any point leaves the previous snapshot
in force. On start the server restores ``CURRENT`` and consumes from its offsets.

Examples
--------
>>> import tempfile, numpy as np
>>> from freshet.config import SlotConfig
>>> from ps.serving.state import DenseModel, ServingState
>>> state = ServingState([SlotConfig("item_id", dim=2)])
>>> _ = state.set_dense(DenseModel({"bias": np.ones(1, np.float32)}, 0, 4, 0, 0))
>>> store = SnapshotStore(tempfile.mkdtemp())
>>> _ = store.save(state, Position(offsets={0: 12}, last_crc={0: 99}, seqs={"m/sparse/0": 11}))
>>> state2, pos = store.load([SlotConfig("item_id", dim=2)])
>>> pos.offsets, pos.seqs, state2.dense.seq, state2.versions.model
({0: 12}, {'m/sparse/0': 11}, 4, 1)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from freshet.config import SlotConfig
from ps.collection import EmbeddingCollection
from ps.serving.half import HalfCollection
from ps.serving.state import DenseModel, ServingState, Versions, serving_slots

_FORMAT = "freshet.serving.snapshot/1"


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


class SnapshotStore:
    """Atomic save/load of a :class:`ServingState` and the loader's :class:`Position`.

    Parameters
    ----------
    root : path
        Directory of this server's snapshots (created on first save).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.saved = 0

    def current(self) -> Path | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        return self.root / pointer.read_text().strip()

    def save(self, state: ServingState, position: Position) -> Path:
        """Write a new snapshot and make it current. Call from the only writer thread
        (the loader), so the tables cannot change while they are written."""
        self.root.mkdir(parents=True, exist_ok=True)
        previous = self.current()
        number = int(previous.name.split("-")[1]) + 1 if previous else 0
        target = self.root / f"snap-{number:09d}"
        tmp = self.root / f".tmp-{target.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        state.tables.snapshot(tmp / "tables")
        dense = state.dense
        if dense is not None:
            (tmp / "dense").mkdir()
            for i, arr in enumerate(dense.weights.values()):
                np.save(tmp / "dense" / f"{i}.npy", arr, allow_pickle=False)
        meta = {
            "format": _FORMAT,
            "precision": state.precision,
            "position": _jsonable(asdict(position)),
            "versions": _jsonable(asdict(state.versions)),
            "dense": None if dense is None else {
                "names": list(dense.weights), "shard": dense.shard, "seq": dense.seq,
                "watermark_ms": dense.watermark_ms, "wall_time_ms": dense.wall_time_ms},
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        _fsync_dir(tmp)
        tmp.rename(target)
        pointer_tmp = self.root / "CURRENT.tmp"
        pointer_tmp.write_text(target.name)
        os.replace(pointer_tmp, self.root / "CURRENT")  # the commit point
        if previous is not None and previous != target:
            shutil.rmtree(previous, ignore_errors=True)
        self.saved += 1
        return target

    def load(
        self, slots: Sequence[SlotConfig], precision: str = "fp32"
    ) -> tuple[ServingState, Position]:
        """The current snapshot's state and position; empty ones if there is none."""
        path = self.current()
        if path is None:
            return ServingState(slots, precision=precision), Position()
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a {_FORMAT} snapshot")
        stored = meta.get("precision", "fp32")
        if stored != precision:
            raise ValueError(f"{path}: snapshot tables are {stored}, config asks for "
                             f"{precision}; set it back or remove {self.root} to reload the "
                             "params topic")
        table_cls = HalfCollection if precision == "fp16" else EmbeddingCollection
        tables = table_cls.restore(path / "tables", serving_slots(slots))
        state = ServingState(slots, tables)
        dense = None
        if meta["dense"] is not None:
            d = meta["dense"]
            weights = {name: np.load(path / "dense" / f"{i}.npy", allow_pickle=False)
                       for i, name in enumerate(d["names"])}
            dense = DenseModel(weights, d["shard"], d["seq"], d["watermark_ms"],
                               d["wall_time_ms"])
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


def _jsonable(obj: object) -> object:
    """JSON turns int dict keys into strings; do it explicitly (and reverse on load)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    return obj


def _fsync_dir(path: Path) -> None:
    """Flush the snapshot's files before it becomes current (survives power loss too)."""
    for f in path.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
