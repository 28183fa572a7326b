"""EmbeddingCollection: the sparse parameters of a model, one table per slot.

This is the API the trainer and the serving side code against::

    trainer:  pull -> forward/backward -> push -> (every second) drain_delta -> Kafka
    serving:  Kafka -> apply -> lookup

Examples
--------
>>> import numpy as np
>>> from ps.config import SlotConfig, TableConfig, table_config
>>> trainer = EmbeddingCollection([SlotConfig("user_id", dim=4), SlotConfig("genre", dim=2)])
>>> trainer.pull("user_id", np.array([10, 11]), now=0.0).shape
(2, 4)
>>> trainer.push("user_id", np.array([10]), np.ones((1, 4), np.float32), now=1.0)
>>> delta = trainer.drain_delta()
>>> delta.column("id").to_pylist(), trainer.drain_delta().num_rows
([10], 0)
>>> server = EmbeddingCollection([SlotConfig("user_id", dim=4), SlotConfig("genre", dim=2)])
>>> server.apply(delta)
>>> ids = np.array([10, 11])
>>> got = server.lookup("user_id", ids)   # 11 was never updated, so never sent
>>> bool((got[0] == trainer.lookup("user_id", ids)[0]).all()), got[1].tolist()
(True, [0.0, 0.0, 0.0, 0.0])
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from ps.batch import SlotRows, from_batch, read_file, to_batch, write_file
from ps.config import SlotConfig, TableConfig, table_config
from ps.slot import Cells, EmbeddingSlot

_FORMAT = "freshet.ps.snapshot/3"


class EmbeddingCollection:
    """Embedding tables for a set of slots.

    Parameters
    ----------
    slots : sequence of SlotConfig
        One per feature group; each has its own dim, optimizer, filter and TTL.
    table : TableConfig, optional
        The table of every slot whose config names none (default: collisionless
        cuckoo); ``HashedTableConfig(rows=N)`` is the fixed-size hashing baseline.
    seed : int
        Seeds initializers, admission coins, sketches and hashes.
    """

    def __init__(
        self,
        slots: Sequence[SlotConfig],
        table: TableConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self.slots: dict[str, EmbeddingSlot] = {}
        for k, cfg in enumerate(slots):
            if cfg.name in self.slots:
                raise ValueError(f"duplicate slot {cfg.name!r}")
            self.slots[cfg.name] = EmbeddingSlot(cfg, seed=seed * 1009 + k, table=table)

    def tables(self) -> dict[str, TableConfig]:
        """Each slot's table config (its own, else the collection's)."""
        return {name: s.table_config for name, s in self.slots.items()}

    def _slot(self, name: str) -> EmbeddingSlot:
        try:
            return self.slots[name]
        except KeyError:
            raise KeyError(f"unknown slot {name!r}; known: {sorted(self.slots)}") from None

    def dim(self, slot: str) -> int:
        return self._slot(slot).dim

    # -- training and serving ------------------------------------------------------
    def pull(self, slot: str, ids: np.ndarray, now: float, train: bool = True) -> np.ndarray:
        """float32 ``(len(ids), dim)``. ``train``: count sightings and admit per the
        slot's filters; non-admitted IDs read zeros. Otherwise read-only."""
        return self._slot(slot).pull(ids, now, train)

    def push(self, slot: str, ids: np.ndarray, grads: np.ndarray, now: float) -> None:
        """Sum duplicate IDs' gradients and apply the slot optimizer to admitted rows."""
        self._slot(slot).push(ids, grads, now)

    def lookup(self, slot: str, ids: np.ndarray) -> np.ndarray:
        """Read-only embeddings; missing IDs read zeros."""
        return self._slot(slot).lookup(ids)

    def cells(self, slot: str, ids: np.ndarray, column: int = 0) -> Cells:
        """One column of the rows of distinct ``ids``, with its optimizer state, to be
        updated by :func:`ps.optimizers.step` and written back by :meth:`store_cells`."""
        return self._slot(slot).cells(ids, column)

    def store_cells(self, slot: str, cells: Cells, now: float) -> None:
        self._slot(slot).store_cells(cells, now)

    def evict_expired(self, now: float) -> int:
        """Delete rows not updated for their slot's ``ttl_s``; returns how many."""
        return sum(s.evict_expired(now) for s in self.slots.values())

    # -- deltas --------------------------------------------------------------------
    def drain_delta(self, with_optimizer_state: bool = False) -> pa.RecordBatch:
        """Rows updated, and rows deleted, since the last drain (see :mod:`ps.batch`)."""
        parts = []
        for name, s in self.slots.items():
            ids, values, stamps, deleted = s.drain()
            parts.append(
                SlotRows(name, ids, values[:, : s.dim], stamps, deleted, values[:, s.dim :])
            )
        return to_batch(parts, with_optimizer_state)

    def apply(self, delta: pa.RecordBatch, with_optimizer_state: bool = False) -> None:
        """Upsert rows and drop deleted rows, without marking them touched.

        Serving applies embeddings only. A trainer restoring its checkpoint passes
        ``with_optimizer_state=True`` to take the ``state`` column too.
        """
        for part in from_batch(delta):
            s = self._slot(part.slot)
            if len(part.deleted):
                s.delete(part.deleted, record=False)
            if len(part.ids):
                if part.values.shape[1] != s.dim:
                    raise ValueError(f"{part.slot}: values have {part.values.shape[1]} != dim")
                values = part.values
                if with_optimizer_state:
                    if part.state is None:
                        raise ValueError(f"{part.slot}: the delta has no optimizer state")
                    values = np.hstack([part.values, part.state])
                s.upsert(part.ids, values, part.stamps)

    def iter_rows(self, max_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """Every live row with its optimizer state, in batches of at most ``max_rows``
        (chunked checkpoints; :meth:`apply` with ``with_optimizer_state`` reads them)."""
        for part in self._live_parts():
            for a in range(0, len(part.ids), max_rows):
                b = slice(a, a + max_rows)
                yield to_batch([SlotRows(part.slot, part.ids[b], part.values[b],
                                         part.stamps[b], part.deleted, part.state[b])],
                               with_state=True)

    def _live_parts(self) -> list[SlotRows]:
        parts = []
        for name, s in self.slots.items():
            ids, values, stamps = s.dump()
            parts.append(SlotRows(name, ids, values[:, : s.dim], stamps,
                                  np.empty(0, np.int64), values[:, s.dim :]))
        return parts

    def init_state(self) -> dict[str, dict]:
        """Each slot's row-initialiser RNG state (JSON-able), so a restored trainer
        creates the same new rows as the one it replaces."""
        return {name: s.init_rng.bit_generator.state for name, s in self.slots.items()}

    def set_init_state(self, state: dict[str, dict]) -> None:
        for name, st in state.items():
            self._slot(name).init_rng.bit_generator.state = st

    # -- admission filters in a checkpoint -----------------------------------------
    # A filter's decisions depend on every sighting before (sketch counters, their
    # halving, the coin's RNG). A trainer checkpoints them as the filter state at
    # compaction plus a journal of each later call's sightings, replayed on restore.
    @property
    def has_filter_state(self) -> bool:
        """Whether any slot's filter remembers sightings (not admit-everything)."""
        return any(not s.filter.admits_all for s in self.slots.values())

    def start_journal(self) -> None:
        """Journal every filter call from now on (take it with :meth:`drain_journal`)."""
        for s in self.slots.values():
            if s.journal is None and not s.filter.admits_all:
                s.journal = []

    def drain_journal(self) -> pa.RecordBatch | None:
        """The filter calls since the last drain, in order, one row each: ``slot``,
        ``sightings`` (list<int64>); None if there were none."""
        names, calls = [], []
        for name, s in self.slots.items():
            if s.journal:
                names += [name] * len(s.journal)
                calls += s.journal
                s.journal = []
        if not calls:
            return None
        return pa.record_batch({"slot": pa.array(names, pa.string()),
                                "sightings": pa.array(calls, pa.list_(pa.int64()))})

    def replay_journal(self, journal: pa.RecordBatch) -> None:
        """Apply :meth:`drain_journal`'s calls to the filters again, in order."""
        slots = journal.column("slot").to_pylist()
        calls = journal.column("sightings")
        for k, name in enumerate(slots):
            self._slot(name).replay(calls[k].values.to_numpy(zero_copy_only=False))

    def filter_state(self) -> pa.RecordBatch:
        """Every slot's filter (sketch counters, additions, coin RNG) and refusal count,
        one row per slot (:meth:`load_filter_state` reads it)."""
        names, sketches, shapes, metas, refused = [], [], [], [], []
        for name, s in self.slots.items():
            sketch, meta = s.filter.state()
            names.append(name)
            sketches.append(np.ascontiguousarray(sketch).tobytes())
            shapes.append(list(sketch.shape))
            metas.append(meta)
            refused.append(s.filtered)
        return pa.record_batch({
            "slot": pa.array(names, pa.string()), "sketch": pa.array(sketches, pa.binary()),
            "sketch_shape": pa.array(shapes, pa.list_(pa.int64())),
            "filter": pa.array(metas, pa.string()), "filtered": pa.array(refused, pa.int64()),
        })

    def load_filter_state(self, state: pa.RecordBatch) -> None:
        for row in state.to_pylist():
            s = self._slot(row["slot"])
            sketch = np.frombuffer(row["sketch"], np.uint8).reshape(row["sketch_shape"])
            s.filter.load_state(sketch, row["filter"])
            s.filtered = row["filtered"]

    # -- snapshots -----------------------------------------------------------------
    def snapshot(self, path: str | Path) -> None:
        """Write every row (with optimizer state) and the filter state to directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT, "seed": self.seed, "init_rng": self.init_state(),
                "tables": {name: dataclasses.asdict(t) for name, t in self.tables().items()},
                "shapes": {name: [s.dim, s.width] for name, s in self.slots.items()}}
        # One batch: an Arrow IPC file allows a single dictionary for the slot column.
        write_file(path / "rows.arrow", to_batch(self._live_parts(), with_state=True))
        write_file(path / "filters.arrow", self.filter_state())
        (path / "meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def restore(cls, path: str | Path, slots: Sequence[SlotConfig]) -> EmbeddingCollection:
        """A collection for ``slots`` loaded from :meth:`snapshot`'s directory."""
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a {_FORMAT} snapshot")
        # The snapshot's tables, whatever the slots name: its rows are laid out for them.
        tables = {name: table_config(**t) for name, t in meta["tables"].items()}
        slots = [dataclasses.replace(s, table=tables.get(s.name, s.table)) for s in slots]
        out = cls(slots, seed=meta["seed"])
        for name, (dim, width) in meta["shapes"].items():
            s = out._slot(name)
            if (s.dim, s.width) != (dim, width):
                raise ValueError(f"{name}: snapshot dim/width {dim}/{width} "
                                 f"!= config {s.dim}/{s.width}")
        for batch in read_file(path / "filters.arrow"):
            out.load_filter_state(batch)
        out.set_init_state(meta["init_rng"])
        for batch in read_file(path / "rows.arrow"):
            for part in from_batch(batch):
                s = out._slot(part.slot)
                values = np.hstack([part.values, part.state]) if len(part.ids) else part.values
                s.upsert(part.ids, values, part.stamps)
        return out

    # -- accounting ----------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(s) for s in self.slots.values())

    def nbytes(self) -> int:
        """Committed bytes of all tables and filters."""
        return sum(s.nbytes for s in self.slots.values())

    def stats(self) -> dict:
        return {
            "rows": len(self),
            "nbytes": self.nbytes(),
            "slots": {name: s.stats() for name, s in self.slots.items()},
        }
