"""One slot (feature group such as ``user_id``): a table plus its training policy.

A slot owns a :class:`~ps.table.base.Table` whose rows are laid out as
``[embedding (dim) | optimizer state]`` and applies the slot's admission filter,
initializer, optimizer, expiry and delta tracking. :class:`ps.EmbeddingCollection`
is a dict of these.

Examples
--------
>>> import numpy as np
>>> from ps.config import ExpiryConfig, SGDConfig, SlotConfig
>>> s = EmbeddingSlot(SlotConfig("genre", dim=2, optimizer=SGDConfig(learning_rate=1.0),
...                              init_std=0.0, expiry=ExpiryConfig(ttl_s=10)))
>>> s.pull(np.array([3]), now=0.0).tolist()
[[0.0, 0.0]]
>>> s.push(np.array([3, 3]), np.ones((2, 2), np.float32), now=1.0)  # grads summed
>>> s.lookup(np.array([3, 4])).tolist()
[[-2.0, -2.0], [0.0, 0.0]]
>>> s.evict_expired(now=5.0), s.evict_expired(now=12.0), len(s)
(0, 1, 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ps.config import CuckooTableConfig, SlotConfig, TableConfig
from ps.filters import AdmissionFilter
from ps.optimizers import Optimizer, sum_by_row
from ps.table import Table


@dataclass
class Cells:
    """One embedding column of some IDs' rows, with that column's optimizer state.

    For updates made one example at a time outside :meth:`EmbeddingSlot.push` (the
    trainer's first-order steps): ``values[:, 0]`` is the weight and ``values[:, 1:]``
    its state, laid out as :func:`ps.optimizers.step` takes them (unused columns are
    zero); ``code`` and ``hyper`` are the slot optimizer's. ``rows`` is -1 for an ID
    without a row (not admitted), which reads zero and must not be updated.
    """

    rows: np.ndarray
    values: np.ndarray  # float32 (n, 3)
    column: int
    code: int
    hyper: np.ndarray


class EmbeddingSlot:
    """Embeddings of one feature group with its own dim, optimizer, filter and TTL.

    Parameters
    ----------
    config : SlotConfig
        Its dim and policies, each of which builds its part here.
    seed : int
        Seeds the initializer, the admission filter and the table's hash.
    table : TableConfig, optional
        The table when ``config.table`` is None (default: collisionless cuckoo).
    """

    def __init__(
        self, config: SlotConfig, seed: int = 0, table: TableConfig | None = None
    ) -> None:
        self.config = config
        self.dim = config.dim
        self.optimizer: Optimizer = config.optimizer.build()
        self.width = self.dim + self.optimizer.state_width(self.dim)
        # Column j's weight and state are at j + dim * k (see Cells).
        self._cell_columns = self.dim * np.arange(self.width // self.dim)
        self.table_config: TableConfig = (
            config.table if config.table is not None else table or CuckooTableConfig()
        )
        self.table: Table = self.table_config.build(self.width, seed)
        self.filter: AdmissionFilter = config.admission.build(seed)
        self.init_rng = np.random.default_rng(seed)
        self.deleted: list[np.ndarray] = []  # IDs removed since the last drain
        self.filtered = 0  # sightings refused a row (for stats)
        # The filter's inputs, one array per call, while journaling (None: off).
        self.journal: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def nbytes(self) -> int:
        return self.table.nbytes + self.filter.nbytes

    # -- training ------------------------------------------------------------------
    def pull(self, ids: np.ndarray, now: float, train: bool = True) -> np.ndarray:
        """Embeddings ``(len(ids), dim)``; with ``train``, admits and creates rows."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = self.table.find(ids)
        if train:
            missing = np.flatnonzero(rows < 0)
            if len(missing):
                seen = ids[missing]
                admitted = missing[self.filter.admit(seen)]
                self.filtered += len(missing) - len(admitted)
                if self.journal is not None and not self.filter.admits_all:
                    self.journal.append(seen)
                if len(admitted):
                    rows[admitted] = self._create(ids[admitted], now)
        return self.table.rows.gather(rows, self.dim)

    def replay(self, seen: np.ndarray) -> None:
        """Feed the filter one journaled call's sightings again (a restore: the rows
        themselves come from the checkpoint), so it decides later IDs as before."""
        admitted = self.filter.admit(np.asarray(seen, dtype=np.int64))
        self.filtered += len(admitted) - int(admitted.sum())

    def _create(self, ids: np.ndarray, now: float) -> np.ndarray:
        rows, new = self.table.insert(ids)
        store = self.table.rows
        store.values[new, : self.dim] = self.init_rng.normal(
            0.0, self.config.init_std, (len(new), self.dim)
        )
        store.values[new, self.dim :] = self.optimizer.init_state(len(new), self.dim)
        store.stamps[new] = now  # an untouched new row expires ttl_s after creation
        return rows

    def push(self, ids: np.ndarray, grads: np.ndarray, now: float) -> None:
        """Apply the optimizer to admitted rows; duplicate IDs' gradients are summed."""
        ids = np.asarray(ids, dtype=np.int64)
        grads = np.ascontiguousarray(grads, dtype=np.float32)
        if grads.shape != (len(ids), self.dim):
            raise ValueError(f"grads shape {grads.shape} != {(len(ids), self.dim)}")
        uniq, summed = sum_by_row(self.table.find(ids), grads)
        if not len(uniq):
            return
        self.optimizer.apply(self.table.rows.values, uniq, summed, self.dim)
        self._touch(uniq, now)

    def cells(self, ids: np.ndarray, column: int = 0) -> Cells:
        """``column`` of the rows of ``ids`` (distinct) and its optimizer state."""
        rows = self.table.find(np.asarray(ids, dtype=np.int64))
        values = np.zeros((len(rows), 3), dtype=np.float32)
        _copy_cells(self.table.rows.values, rows, self._state_columns(column), values, False)
        return Cells(rows, values, column, self.optimizer.code, self.optimizer.hyper())

    def store_cells(self, cells: Cells, now: float) -> None:
        """Write back :meth:`cells` after updating them; marks the rows touched.

        Call before any insert or delete in this slot (row numbers may move)."""
        store = self.table.rows
        _copy_cells(store.values, cells.rows, self._state_columns(cells.column), cells.values,
                    True)
        self._touch(cells.rows[cells.rows >= 0], now)

    def _touch(self, rows: np.ndarray, now: float) -> None:
        """Mark updated rows: stamped for expiry, dirty for the next delta."""
        store = self.table.rows
        store.stamps[rows] = now
        store.dirty[rows] = True

    def _state_columns(self, column: int) -> np.ndarray:
        if not 0 <= column < self.dim:
            raise ValueError(f"column {column} not in [0, {self.dim})")
        return self._cell_columns + column

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Read-only embeddings; missing IDs read zeros."""
        return self.table.lookup(np.asarray(ids, dtype=np.int64), self.dim)

    # -- expiry --------------------------------------------------------------------
    def evict_expired(self, now: float) -> int:
        """Delete rows whose last update is older than ``ttl_s``; returns how many."""
        expiry = self.config.expiry
        if not expiry.enabled or len(self.table) == 0:
            return 0
        store = self.table.rows
        live = store.live_rows()
        old = live[expiry.expired(store.stamps[live], now)]
        if len(old) == 0:
            return 0
        return len(self.delete(store.ids[old]))

    def delete(self, ids: np.ndarray, record: bool = True) -> np.ndarray:
        """Delete IDs; returns those that were present. ``record``: report them in the
        next delta (the serving side, which never drains, passes False)."""
        gone = self.table.delete(np.asarray(ids, dtype=np.int64))
        if record and len(gone):
            self.deleted.append(gone)
        store = self.table.rows
        # Give memory back once most of the arena is free rows.
        if store.high_water > 4096 and len(self.table) < store.high_water // 4:
            self.table.compact()
        return gone

    # -- deltas --------------------------------------------------------------------
    def drain(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, values, stamps, deleted_ids)`` touched since the last drain; resets.

        ``values`` are whole rows (embedding then optimizer state).
        """
        store = self.table.rows
        rows = np.flatnonzero(store.dirty[: store.high_water])
        store.dirty[rows] = False
        deleted = np.concatenate(self.deleted) if self.deleted else np.empty(0, np.int64)
        self.deleted = []
        # An ID deleted then re-created since the last drain is live: send its values.
        ids = store.ids[rows]
        deleted = np.setdiff1d(deleted, ids)
        return ids, store.values[rows], store.stamps[rows], deleted

    def dump(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every live row: ``(ids, values, stamps)`` (for snapshots)."""
        ids, rows = self.table.items()
        store = self.table.rows
        return ids, store.values[rows], store.stamps[rows]

    def upsert(self, ids: np.ndarray, values: np.ndarray, stamps: np.ndarray) -> None:
        """Write rows as given (no filter, no optimizer): restore and serving.

        ``values`` may hold just the embedding (``dim`` columns: optimizer state is
        initialised for new rows, kept for old) or whole rows (``width`` columns).
        """
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        rows, new = self.table.insert(ids)
        store = self.table.rows
        if values.shape[1] == self.dim:
            store.values[new, self.dim :] = self.optimizer.init_state(len(new), self.dim)
        store.values[rows, : values.shape[1]] = values
        store.stamps[rows] = stamps

    def stats(self) -> dict:
        return {
            "table": self.table_config.kind,
            **self.table.stats(),
            "nbytes": self.nbytes,
            "filter_bytes": self.filter.nbytes,
            "filtered_sightings": self.filtered,
        }


@njit(cache=True, nogil=True)
def _copy_cells(values, rows, cols, cells, back):  # noqa: ANN001
    """``cells[i, k] = values[rows[i], cols[k]]`` (or back), skipping rows < 0."""
    for i in range(rows.shape[0]):
        r = rows[i]
        if r < 0:
            continue
        for k in range(cols.shape[0]):
            if back:
                values[r, cols[k]] = cells[i, k]
            else:
                cells[i, k] = values[r, cols[k]]
