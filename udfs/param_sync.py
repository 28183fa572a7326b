"""Parameter sync: touched rows to the params topic every interval, dense weights rarely.

The trainer drains the rows it touched after every batch (the checkpoint log needs
them anyway); :class:`SparseBuffer` keeps those drains until the next sync and merges
them, keeping each row's last version (a row deleted and re-created is live).
:class:`Versions` numbers updates so that they increase across restarts too: a
restored trainer rolls its counters back to the checkpoint, so it takes
``max(last + 1, wall-clock ms)``, which is above anything sent before the crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ps import SlotRows, from_batch, to_batch


def merge_rows(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One row batch (no optimizer state) with the last version of every row.

    Examples
    --------
    >>> a = to_batch([SlotRows("s", np.array([1, 2]), np.ones((2, 1), np.float32),
    ...                        np.zeros(2), np.array([], np.int64))])
    >>> b = to_batch([SlotRows("s", np.array([2]), np.full((1, 1), 5, np.float32),
    ...                        np.ones(1), np.array([1]))])
    >>> m = merge_rows([a, b])
    >>> sorted(zip(m.column("id").to_pylist(), m.column("deleted").to_pylist(),
    ...            m.column("values").to_pylist()))
    [(1, True, []), (2, False, [5.0])]
    """
    per_slot: dict[str, list[tuple[SlotRows, int]]] = {}
    for order, batch in enumerate(batches):
        for part in from_batch(batch):
            per_slot.setdefault(part.slot, []).append((part, order))
    parts = []
    for slot, items in per_slot.items():
        dims = [p.values.shape[1] for p, _ in items if len(p.ids)]
        dim = dims[0] if dims else 0
        ids, seq, values, stamps, live = [], [], [], [], []
        for p, order in items:
            ids += [p.ids, p.deleted]
            seq += [np.full(len(p.ids) + len(p.deleted), order)]
            values += [p.values.reshape(len(p.ids), dim), np.zeros((len(p.deleted), dim))]
            stamps += [p.stamps, np.zeros(len(p.deleted))]
            live += [np.ones(len(p.ids), bool), np.zeros(len(p.deleted), bool)]
        all_ids = np.concatenate(ids)
        # Last version per ID: sort by (id, order) and keep each ID's final entry.
        order_key = np.concatenate(seq)
        idx = np.lexsort((order_key, all_ids))
        last = idx[np.r_[all_ids[idx][1:] != all_ids[idx][:-1], True]]
        is_live = np.concatenate(live)[last]
        keep, gone = last[is_live], last[~is_live]
        parts.append(SlotRows(
            slot, all_ids[keep], np.concatenate(values)[keep].astype(np.float32),
            np.concatenate(stamps)[keep], all_ids[gone],
        ))
    return to_batch(parts) if parts else to_batch([])


@dataclass
class SparseBuffer:
    """Row drains waiting for the next sparse sync."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.batches.append(batch)
            self.rows += batch.num_rows

    def take(self) -> pa.RecordBatch | None:
        if not self.batches:
            return None
        merged = merge_rows(self.batches)
        self.batches, self.rows = [], 0
        return merged


@dataclass
class Versions:
    """Sequence numbers per update kind, increasing across restarts.

    Examples
    --------
    >>> v = Versions(sparse=5)
    >>> v.next("sparse", now_ms=3), v.next("sparse", now_ms=3), v.next("dense", now_ms=10)
    (6, 7, 10)
    """

    sparse: int = 0
    dense: int = 0

    def next(self, kind: str, now_ms: int | None = None) -> int:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        seq = max(getattr(self, kind) + 1, now_ms)
        setattr(self, kind, seq)
        return seq
