"""Half-precision serving tables: embeddings stored as float16, read as float32.

Serving needs values only, and float16 halves their memory (Monolith serves
embeddings in fp16 too). Each slot keeps a collisionless cuckoo index
(:class:`ps.table.CuckooTable` with zero-width rows: it only maps IDs to row
numbers) and its own float16 value array indexed by row number. The class offers
the part of :class:`ps.EmbeddingCollection`'s API that serving uses: ``apply``,
``lookup``, ``dim``, ``slots``, ``nbytes``, and each slot's ``dump`` (for the store).

float16 keeps ~3 significant digits (relative error <= 2**-11) for magnitudes
between ~6e-5 and 65504; smaller values lose precision, larger ones overflow to inf.

Examples
--------
>>> from ps.config import SlotConfig
>>> from ps.serving.synthetic import sparse_rows
>>> t = HalfCollection([SlotConfig("item_id", dim=2)])
>>> t.apply(sparse_rows({"item_id": (np.array([7, 8]), np.array([[0.1, 2.0], [3.0, 4.0]]))}))
>>> t.lookup("item_id", np.array([7, 9])).tolist()   # 9 is missing: zeros
[[0.0999755859375, 2.0], [0.0, 0.0]]
>>> t.slots["item_id"].values.dtype, len(t)
(dtype('float16'), 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ps.batch import from_batch
from ps.config import SlotConfig
from ps.table import CuckooTable


class HalfSlot:
    """One slot: ID -> row (cuckoo index), row -> float16 values."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim = dim
        self.table = CuckooTable(width=0, seed=seed)
        self.values = np.zeros((self.table.rows.capacity, dim), np.float16)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def nbytes(self) -> int:
        return self.table.nbytes + self.table.rows.high_water * self.dim * 2

    def upsert(self, ids: np.ndarray, values: np.ndarray) -> None:
        rows, _ = self.table.insert(np.asarray(ids, np.int64))
        capacity = self.table.rows.capacity
        if capacity > len(self.values):  # the row store grew: grow alongside it
            grown = np.zeros((capacity, self.dim), np.float16)
            grown[: len(self.values)] = self.values
            self.values = grown
        self.values[rows] = values

    def delete(self, ids: np.ndarray) -> None:
        self.table.delete(np.asarray(ids, np.int64))

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        rows = self.table.find(np.asarray(ids, np.int64))
        out = self.values[np.maximum(rows, 0)].astype(np.float32)
        out[rows < 0] = 0.0
        return out

    def dump(self) -> tuple[np.ndarray, np.ndarray]:
        ids, rows = self.table.items()
        return ids, self.values[rows].astype(np.float32)


class HalfCollection:
    """float16 serving tables for a set of slots (see the module docstring)."""

    def __init__(self, slots: Sequence[SlotConfig], seed: int = 0) -> None:
        self.slots = {s.name: HalfSlot(s.dim, seed * 1009 + k) for k, s in enumerate(slots)}

    def _slot(self, name: str) -> HalfSlot:
        try:
            return self.slots[name]
        except KeyError:
            raise KeyError(f"unknown slot {name!r}; known: {sorted(self.slots)}") from None

    def dim(self, slot: str) -> int:
        return self._slot(slot).dim

    def apply(self, delta: pa.RecordBatch) -> None:
        """Upsert values (rounded to float16) and delete rows marked deleted."""
        for part in from_batch(delta):
            s = self._slot(part.slot)
            if len(part.deleted):
                s.delete(part.deleted)
            if len(part.ids):
                s.upsert(part.ids, part.values)

    def lookup(self, slot: str, ids: np.ndarray) -> np.ndarray:
        """float32 ``(len(ids), dim)``; missing IDs read zeros."""
        return self._slot(slot).lookup(ids)

    def __len__(self) -> int:
        return sum(len(s) for s in self.slots.values())

    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.slots.values())
