"""A serving copy of the model: what a ranking server holds between parameter syncs.

The trainer drains the rows it changed after every step; a copy buffers those drains
(:class:`udfs.param_sync.SparseBuffer`, as the trainer job does) and, every
``sparse_every_s`` seconds of *event time*, takes them merged, encodes them for the
params topic (:func:`ps.delta.encode_sparse`), reassembles them
(:class:`ps.delta.DeltaAssembler`) and applies them to a
:class:`ps.serving.state.ServingState`, the object the ranking server holds. Dense
weights travel the same way every ``dense_every_s`` (:func:`ps.delta.encode_dense`,
their ``model.kind`` in the header) and are swapped in with
:meth:`~ps.serving.state.ServingState.set_dense`. A copy scores the way ``/rank`` does:
one consistent :meth:`~ps.serving.state.ServingState.read`, pooling
(:func:`ps.serving.scoring.pool_slots`), the model kind's NumPy forward; never
TensorFlow. What differs from a server is only the transport: no Kafka, no HTTP.

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
from ps.config import SlotConfig
from ps.delta import DeltaAssembler, Update, encode_dense, encode_sparse
from ps.serving.scoring import pool_slots
from ps.serving.state import DenseModel, ServingState
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
        self.dim = slots[0].dim
        self.state = ServingState(slots)  # what the ranking server holds
        self.sparse = Schedule(sparse_every_s)
        self.dense = Schedule(dense_every_s)
        self.pending = SparseBuffer()
        self.assembler = DeltaAssembler()
        self.synced_steps = 0  # trainer steps whose rows this copy holds
        self.syncs = 0
        self.dense_syncs = 0
        self.bytes = 0  # params-topic bytes of sparse updates received
        self.logits: list[np.ndarray] = []
        self.stale: list[np.ndarray] = []
        self._deploy(weights, ts_ms=0)

    def add_drain(self, delta: pa.RecordBatch) -> None:
        """Rows the trainer changed in one step (kept until the next sparse sync)."""
        self.pending.add(delta)

    def maybe_sync(self, ts_ms: int, steps: int, dense: Callable[[], Mapping]) -> None:
        """Sync what is due at event time ``ts_ms``, before scoring that example.

        ``steps``: trainer steps done so far; ``dense()`` returns the trainer's
        current dense weights (called only when a dense sync is due).
        """
        if self.dense.due(ts_ms):
            self._deploy(dense(), ts_ms)
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
        update, size = self._receive(encode_sparse(rows, model_id="copy", shard=0,
                                                   seq=self.syncs, watermark_ms=ts_ms,
                                                   wall_time_ms=0))
        self.bytes += size
        self.state.apply_sparse(update.payload, update.meta.shard, update.meta.watermark_ms)

    def _deploy(self, weights: Mapping[str, np.ndarray], ts_ms: int) -> None:
        """Dense weights through the params encoding, swapped in as the server does."""
        self.dense_syncs += 1
        update, _ = self._receive(encode_dense(weights, model_kind=self.kind,
                                               model_id="copy", shard=0,
                                               seq=self.dense_syncs, watermark_ms=ts_ms,
                                               wall_time_ms=0))
        m = update.meta
        self.state.set_dense(DenseModel(update.payload, m.shard, m.seq, m.watermark_ms,
                                        m.wall_time_ms, m.model_kind))

    def _receive(self, messages: Sequence[tuple[bytes, bytes]]) -> tuple[Update, int]:
        """One update reassembled from its parts, and its params-topic bytes."""
        update, size = None, 0
        for _key, value in messages:
            size += len(value)
            update = self.assembler.feed(value)
        assert update is not None, "the last part completes the update"
        return update, size

    def score(self, batch: ExampleBatch) -> np.ndarray:
        """Logits of the batch as ``/rank`` scores: one read, pooling, the forward."""
        names = [n for n in self.slot_names if n in batch.slots]
        view = self.state.read({n: batch.slots[n][0] for n in names})
        offsets = {n: batch.slots[n][1] for n in names}
        pooled = pool_slots(view.embeddings, offsets, self.slot_names, len(batch), self.dim)
        assert view.dense is not None
        return numpy_forward(view.dense.weights, pooled, view.dense.kind)
