"""A serving copy of the model: what a ranking server holds between parameter syncs.

The trainer drains the rows it changed after every step; a copy buffers those drains
(:class:`udfs.param_sync.SparseBuffer`, as the trainer job does) and, every
``sparse_every_s`` seconds of *event time*, takes them merged, encodes them for the
params topic (:func:`ps.delta.encode_sparse`), reassembles them
(:class:`ps.delta.DeltaAssembler`) and applies them to its own tables
(:meth:`ps.EmbeddingCollection.apply`): the path a serving process runs, minus Kafka.
Dense weights are copied every ``dense_every_s``. It scores with the serving forward
(:func:`udfs.models.numpy_forward`), never with TensorFlow.

Syncs are aligned to multiples of the interval since the epoch, so a 86,400 s
interval deploys at each UTC midnight: the daily batch model.

Examples
--------
>>> s = Schedule(every_s=60.0)
>>> s.due(1_000), s.due(59_000), s.due(60_000), s.due(61_000), s.due(200_000)
(True, False, True, False, True)
>>> Schedule(every_s=0.0).due(5), Schedule(every_s=0.0).due(5)
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from freshet.topics import ExampleBatch
from ps import EmbeddingCollection
from ps.config import SlotConfig
from ps.delta import DeltaAssembler, encode_sparse
from ps.serving.scoring import pool_csr
from udfs.models import numpy_forward
from udfs.param_sync import SparseBuffer


class Schedule:
    """Due at the first event at or after each multiple of ``every_s`` (0: always)."""

    def __init__(self, every_s: float) -> None:
        self.every_ms = every_s * 1000.0
        self.next_ms = -math.inf

    def due(self, ts_ms: int) -> bool:
        if ts_ms < self.next_ms:
            return False
        if self.every_ms > 0:
            self.next_ms = (ts_ms // self.every_ms + 1) * self.every_ms
        return True


class ServingCopy:
    """Tables and dense weights as of the last sync, and what they scored.

    Parameters
    ----------
    name : str
        Label in results (``"online_1s"``, ``"batch_daily"``, ...).
    slots : sequence of SlotConfig
        The model's slots, in the dense part's input order.
    sparse_every_s, dense_every_s : float
        Event-time sync intervals; 0 syncs before every step.
    weights : mapping of str to ndarray
        The dense weights deployed at the start (the untrained model's).
    kind : str
        The ``model.kind`` they are weights of (serving's forward is that model's).
    """

    def __init__(
        self,
        name: str,
        slots: Sequence[SlotConfig],
        sparse_every_s: float,
        dense_every_s: float,
        weights: Mapping[str, np.ndarray],
        kind: str,
    ) -> None:
        self.name = name
        self.kind = kind
        self.slot_names = [s.name for s in slots]
        self.tables = EmbeddingCollection(slots)  # collisionless, as serving runs
        self.weights = dict(weights)
        self.sparse = Schedule(sparse_every_s)
        self.dense = Schedule(dense_every_s)
        self.pending = SparseBuffer()
        self.assembler = DeltaAssembler()
        self.synced_steps = 0  # trainer steps whose rows this copy holds
        self.syncs = 0
        self.bytes = 0  # params-topic bytes received
        self.logits: list[np.ndarray] = []
        self.stale: list[np.ndarray] = []

    def add_drain(self, delta: pa.RecordBatch) -> None:
        """Rows the trainer changed in one step (kept until the next sparse sync)."""
        self.pending.add(delta)

    def maybe_sync(self, ts_ms: int, steps: int, dense: Callable[[], Mapping]) -> None:
        """Sync what is due at event time ``ts_ms``, before scoring that example.

        ``steps``: trainer steps done so far; ``dense()`` returns the trainer's
        current dense weights (called only when a dense sync is due).
        """
        if self.dense.due(ts_ms):
            self.weights = dict(dense())
        if not self.sparse.due(ts_ms):
            return
        # One drain needs no merging (merge_rows would copy it unchanged).
        pending = self.pending.batches
        rows = pending[0] if len(pending) == 1 else self.pending.take()
        self.pending.batches, self.pending.rows = [], 0
        self.synced_steps = steps
        self.syncs += 1
        if rows is None:
            return
        for _key, value in encode_sparse(rows, model_id="copy", shard=0, seq=self.syncs,
                                         watermark_ms=ts_ms, wall_time_ms=0):
            self.bytes += len(value)
            update = self.assembler.feed(value)
            if update is not None:
                self.tables.apply(update.payload)

    def score(self, batch: ExampleBatch) -> np.ndarray:
        """Logits of the batch with this copy's rows and weights (serving's forward)."""
        n, dim = len(batch), self.tables.dim(self.slot_names[0])
        pooled = np.zeros((n, len(self.slot_names), dim), np.float32)
        for s, name in enumerate(self.slot_names):
            if name in batch.slots:
                ids, offsets = batch.slots[name]
                pooled[:, s] = pool_csr(self.tables.lookup(name, ids), offsets)
        return numpy_forward(self.weights, pooled, self.kind)
