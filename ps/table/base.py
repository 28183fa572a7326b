"""The table interface every index (cuckoo, hashed) implements.

A table maps int64 IDs to rows of a :class:`~ps.table.rows.RowStore`. It knows
nothing about embeddings, optimizers or time: those live in :mod:`ps.slot`, which
only talks to this interface, so swapping the collisionless cuckoo table for the
hashed baseline is one constructor argument.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ps.table.rows import EMPTY_ID, RowStore


class Table(ABC):
    """int64 ID -> row number, over a :class:`RowStore` of ``width`` float32 values.

    Attributes
    ----------
    rows : RowStore
        The row arena; read ``rows.values[r]`` for the row of ID with row ``r``.
    collisionless : bool
        True if two distinct IDs never share a row.
    """

    collisionless: bool = True
    rows: RowStore

    @abstractmethod
    def find(self, ids: np.ndarray) -> np.ndarray:
        """Row of each ID, -1 where absent (int64, same length as ``ids``)."""

    @abstractmethod
    def insert(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Insert-or-get. Returns ``(rows, new_rows)``: the row of every ID and the
        rows created by this call (each once, to be initialised by the caller)."""

    @abstractmethod
    def delete(self, ids: np.ndarray) -> np.ndarray:
        """Remove IDs; returns the IDs that were present (each once)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of live rows."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Committed bytes: index plus row store."""

    def lookup(self, ids: np.ndarray, dim: int) -> np.ndarray:
        """The first ``dim`` values of each ID's row; zeros where absent."""
        return self.rows.gather(self.find(ids), dim)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All live ``(ids, rows)``, in row order."""
        rows = self.rows.live_rows()
        return self.rows.ids[rows].copy(), rows

    def compact(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Give memory back after many deletions (default: nothing to do)."""

    def stats(self) -> dict:
        return {"rows": len(self), "nbytes": self.nbytes}


def check_ids(ids: np.ndarray) -> np.ndarray:
    """IDs as a contiguous int64 array; the reserved EMPTY_ID is rejected."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
    if len(ids) and (ids == EMPTY_ID).any():
        raise ValueError(f"ID {EMPTY_ID} is reserved")
    return ids
