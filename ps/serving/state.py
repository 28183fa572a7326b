"""What a serving process holds: embedding tables and a dense model, versioned.

Atomic visibility, the one rule of this module: **every change happens under one
lock, and so does every request's read of all its slots and the dense model**.
A complete update (all parts, all slots) is applied in one vectorized call while
the lock is held, so a request sees either all of an update or none of it and
learns the versions it saw. The lock is held for microseconds to a few
milliseconds (a lookup of a few hundred IDs, or one update's upsert), so requests
keep being answered while updates arrive.

Only the loader thread writes. Reading needs no lock against other readers, but
a plain mutex is enough: the HTTP server reads from one event-loop thread.

The serving tables hold values only: their slots use the SGD layout (no
optimizer-state columns) and admit every ID (no sketch); with ``precision='fp16'``
they are :class:`ps.serving.half.HalfCollection` (float16 values).

Examples
--------
>>> import numpy as np
>>> from ps.config import SlotConfig
>>> from ps import EmbeddingCollection
>>> slots = [SlotConfig("user_id", dim=2), SlotConfig("item_id", dim=2)]
>>> trainer = EmbeddingCollection(slots)
>>> _ = trainer.pull("item_id", np.array([7]), now=0.0)
>>> state = ServingState(slots)
>>> state.apply_sparse(trainer.drain_delta(), shard=0, watermark_ms=5)
1
>>> view = state.read({"item_id": np.array([7, 8])})
>>> view.table_version, view.embeddings["item_id"].shape, view.dense is None
(1, (2, 2), True)
>>> state.set_dense(DenseModel({"bias": np.zeros(1, np.float32)}, shard=0, seq=3,
...                            watermark_ms=5, wall_time_ms=6, kind="lr"))
1
>>> state.read({}).dense.seq
3
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ps.collection import EmbeddingCollection
from ps.config import AdmissionConfig, ExpiryConfig, SGDConfig, SlotConfig
from ps.serving.half import HalfCollection

PRECISIONS = ("fp32", "fp16")  # fp16: half the memory, ~3 significant digits


def serving_slots(slots: Sequence[SlotConfig]) -> list[SlotConfig]:
    """The trainer's slots, laid out for serving: values only, every ID admitted."""
    return [
        dataclasses.replace(s, optimizer=SGDConfig(), table=None, admission=AdmissionConfig(),
                            expiry=ExpiryConfig())
        for s in slots
    ]


@dataclass(frozen=True)
class DenseModel:
    """Named dense weights (never mutated once built), where they came from, and the
    ``model.kind`` they are the weights of (from the dense delta's header)."""

    weights: Mapping[str, np.ndarray]
    shard: int
    seq: int
    watermark_ms: int
    wall_time_ms: int
    kind: str


@dataclass(frozen=True)
class View:
    """One request's consistent read: embeddings of its IDs and the model to score with."""

    embeddings: dict[str, np.ndarray]  # slot -> float32 (n, dim), copies
    dense: DenseModel | None
    table_version: int  # complete sparse updates applied
    model_version: int  # dense models swapped in


@dataclass
class Versions:
    """Counters and watermarks, changed only with the state's lock held."""

    table: int = 0
    model: int = 0
    # shard -> event-time watermark of the newest sparse update applied from it.
    watermark_ms: dict[int, int] = field(default_factory=dict)


class ServingState:
    """Serving tables + the current dense model, with per-update atomic visibility.

    Parameters
    ----------
    slots : sequence of SlotConfig
        The model's slots (the trainer's config); dims must match the deltas.
    collection : EmbeddingCollection or HalfCollection, optional
        Restored tables (from a snapshot); default empty tables.
    precision : {'fp32', 'fp16'}
        Value type of new empty tables (``ps.serving.half`` for fp16).
    """

    def __init__(
        self,
        slots: Sequence[SlotConfig],
        collection: EmbeddingCollection | HalfCollection | None = None,
        precision: str = "fp32",
    ) -> None:
        self.slots = serving_slots(slots)
        if collection is None:
            if precision not in PRECISIONS:
                raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
            collection = (HalfCollection(self.slots) if precision == "fp16"
                          else EmbeddingCollection(self.slots))
        self.tables = collection
        self.precision = "fp16" if isinstance(collection, HalfCollection) else "fp32"
        self.dense: DenseModel | None = None
        self.versions = Versions()
        self._lock = threading.Lock()
        self._changes: list[pa.RecordBatch] | None = None  # see track_changes

    # -- reads (any thread) --------------------------------------------------------
    def read(self, ids: Mapping[str, np.ndarray]) -> View:
        """Look up every slot's IDs and take the dense model, all in one locked step."""
        with self._lock:
            emb = {slot: self.tables.lookup(slot, i) for slot, i in ids.items()}
            return View(emb, self.dense, self.versions.table, self.versions.model)

    def watermark_ms(self) -> int | None:
        """Event time that every shard's served sparse updates include (min over shards)."""
        marks = self.versions.watermark_ms
        return min(marks.values()) if marks else None

    # -- writes (the loader thread) ------------------------------------------------
    def apply_sparse(self, delta: pa.RecordBatch, shard: int, watermark_ms: int) -> int:
        """Apply one complete sparse update atomically; returns the new table version.

        Raises ValueError, before changing anything, if the update does not fit the
        tables (unknown slot, wrong dim): half of an update must never be visible.
        """
        self.check_sparse(delta)
        with self._lock:
            self.tables.apply(delta)
            if self._changes is not None:
                self._changes.append(delta)
            self.versions.table += 1
            old = self.versions.watermark_ms.get(shard, watermark_ms)
            self.versions.watermark_ms[shard] = max(old, watermark_ms)
            return self.versions.table

    def check_sparse(self, delta: pa.RecordBatch) -> None:
        """Raise ValueError unless every slot is known and every live row has its dim."""
        slot = delta.column("slot")
        if not pa.types.is_dictionary(slot.type):
            slot = pc.dictionary_encode(slot)
        codes = slot.indices.to_numpy(zero_copy_only=False)
        live = ~delta.column("deleted").to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(delta.column("values")).to_numpy(zero_copy_only=False)
        for k, name in enumerate(slot.dictionary.to_pylist()):
            rows = codes == k
            if not rows.any():
                continue
            if name not in self.tables.slots:
                raise ValueError(f"update has unknown slot {name!r}; serving "
                                 f"{sorted(self.tables.slots)}")
            dim = self.tables.dim(name)
            bad = rows & live & (lengths != dim)
            if bad.any():
                raise ValueError(f"slot {name!r}: rows of {int(lengths[bad][0])} values, "
                                 f"serving dim is {dim}")

    def track_changes(self) -> None:
        """Record the sparse updates applied from now on, for :meth:`take_changes` (a
        store saving incrementally); forgets any recorded so far."""
        with self._lock:
            self._changes = []

    def take_changes(self) -> list[pa.RecordBatch]:
        """The sparse updates applied since :meth:`track_changes` or the last take."""
        with self._lock:
            if self._changes is None:
                raise RuntimeError("take_changes before track_changes")
            changes, self._changes = self._changes, []
            return changes

    def set_dense(self, model: DenseModel) -> int:
        """Swap in a dense model (one reference); returns the new model version."""
        with self._lock:
            self.dense = model
            self.versions.model += 1
            return self.versions.model

    def restore_versions(self, versions: Versions, dense: DenseModel | None) -> None:
        """Set counters and model after a restart (before serving starts)."""
        with self._lock:
            self.versions = versions
            self.dense = dense

    # -- accounting ----------------------------------------------------------------
    def table_rows(self) -> dict[str, int]:
        return {name: len(s) for name, s in self.tables.slots.items()}

    def nbytes(self) -> int:
        return self.tables.nbytes()
