"""The training step: pull embeddings, score (progressive eval), update dense and sparse.

One :class:`Trainer` owns one shard's embedding tables (a ``ps.EmbeddingCollection``)
and one copy of the dense part. Per mini-batch, :meth:`Trainer.train_batch`

1. pulls each slot's distinct IDs once and sum-pools them per example;
2. runs the dense part forward; the logits, made before any update, are the
   progressive evaluation (every example is scored before it is trained on);
3. takes the loss with the log-odds correction for sampled negatives, gets the dense
   gradients (applied with Adam) and the gradients w.r.t. the pooled embeddings;
4. with ``train.first_order_per_example``, walks the examples in order stepping the
   first-order weights after each one (:mod:`udfs.first_order`), so an example's
   score includes what the earlier examples of its micro-batch taught them;
5. gives every distinct ID the SUM of its examples' gradients and pushes them to the
   tables, whose per-slot optimizer (Adagrad by default) updates the rows.

The same class runs inside the Flink operator and in a plain Python loop (the
benchmark's in-process baseline), so both measure the same code.
"""

from __future__ import annotations

import gc
import math
import os
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from freshet.config import ModelConfig, TrainConfig
from freshet.topics import ExampleBatch
from ps.config import SlotConfig
from ps.pooling import pool_sum, scatter_sum, unique_inverse
from udfs.evaluation import ProgressiveEval
from udfs.first_order import step_first_order
from udfs.models import architecture
from udfs.models.base import export_weights, import_weights

_NO_IDS = np.zeros(0, np.int64)


def configure_tensorflow(threads: int) -> None:
    """Limit TensorFlow's thread pools (call before TF runs anything).

    On 2 shared cores, TF's default pools (one thread per core each) fight Flink and
    the other workers; one intra-op thread is enough for these small matrices.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TF already initialised in this process: keep its settings


@dataclass
class Ledger:
    """What has been trained: a count and an order-free fingerprint of request IDs.

    Exactly-once shows as count and fingerprint equal to those of the input.

    Examples
    --------
    >>> a, b = Ledger(), Ledger()
    >>> a.add(["r1", "r2"]); b.add(["r2"]); b.add(["r1"])
    >>> a == b, a.examples
    (True, 2)
    """

    examples: int = 0
    fingerprint: int = 0

    def add(self, request_ids: list[str]) -> None:
        self.examples += len(request_ids)
        h = sum(zlib.crc32(r.encode()) for r in request_ids)
        self.fingerprint = (self.fingerprint + h) % (1 << 63)


@dataclass
class StepResult:
    logits: np.ndarray  # made before training on the examples, log-odds corrected
    loss: float  # summed over the batch


class Trainer:
    """Trains one shard: embedding tables in ``ps`` + a Keras dense part."""

    def __init__(
        self, model: ModelConfig, train: TrainConfig | None = None, collection: Any = None
    ) -> None:
        train = train or TrainConfig()
        configure_tensorflow(train.tf_threads)
        import keras
        import tensorflow as tf

        self.cfg = model
        self.slots: list[SlotConfig] = list(model.slots)
        if collection is None:
            from ps import EmbeddingCollection

            collection = EmbeddingCollection(self.slots, table=train.table, seed=train.seed)
        self.tables = collection
        dims = {self.tables.dim(s.name) for s in self.slots}
        if len(dims) != 1:
            raise ValueError(f"all slots need the same dim, got {sorted(dims)}")
        self.dim = dims.pop()
        self.micro_batch = train.micro_batch
        self.first_order_per_example = train.first_order_per_example
        keras.utils.set_random_seed(train.seed)
        self.arch = architecture(model.kind)(len(self.slots), self.dim, model.hidden,
                                             model.first_order_scale)
        self.model = self.arch.build_keras()
        self.optimizer = keras.optimizers.Adam(model.dense_learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self.eval = ProgressiveEval(train.eval_window_examples)
        # The scores serving returned for these impressions (logged with them), against
        # the same labels: what users were actually shown, whatever the training order.
        self.served = ProgressiveEval(train.eval_window_examples)
        self.ledger = Ledger()
        self.negative_rate = 1.0  # last seen sampling rate of negatives
        spec = [
            tf.TensorSpec((None, len(self.slots), self.dim), tf.float32),
            tf.TensorSpec((None,), tf.float32),
            tf.TensorSpec((None,), tf.float32),
        ]
        # A None batch dimension: one trace serves every batch size (no retracing). The
        # concrete function is traced here and called directly, skipping tf.function's
        # per-call argument binding (0.35 s of 1.7 s of TF time in a profile).
        self._step = tf.function(self._dense_step, input_signature=spec).get_concrete_function()
        self._tf = tf
        # Decoding a batch allocates ~10k dicts and lists, which triggers the cyclic GC,
        # whose collections then walk TensorFlow's large object graph. Objects alive now
        # are long-lived: exempt them (measured: decode 2.1 -> 1.8 ms CPU per message).
        gc.freeze()

    def _dense_grads(self, pooled: Any, labels: Any, offset: Any
                     ) -> tuple[Any, Any, Any, list[Any]]:
        """Logits, the gradient w.r.t. the pooled embeddings, the loss and the dense
        gradients (traced inside :meth:`_dense_step`, and by ``experiments.scale``)."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(pooled)
            logits = self.model(pooled) + offset
            # Summed, not averaged: each sparse row gets the sum of its examples' grads.
            loss = tf.reduce_sum(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
            )
        g_pooled, *g_dense = tape.gradient(loss, [pooled, *self.model.trainable_variables])
        return logits, g_pooled, loss, g_dense

    def _dense_step(self, pooled: Any, labels: Any, offset: Any) -> tuple[Any, Any, Any]:
        import tensorflow as tf

        logits, g_pooled, loss, g_dense = self._dense_grads(pooled, labels, offset)
        n = tf.cast(tf.shape(labels)[0], tf.float32)
        self.optimizer.apply_gradients(zip([g / n for g in g_dense],
                                           self.model.trainable_variables, strict=True))
        return logits, g_pooled, loss

    def _offset(self, batch: ExampleBatch) -> float:
        """Log-odds correction: negatives kept at rate r inflate the odds by 1/r.

        Training on ``f(x) - log(r)`` leaves ``f(x)`` calibrated to the unsampled stream.
        """
        negatives = batch.sample_rate[batch.label == 0]
        if len(negatives):
            self.negative_rate = float(negatives.mean())
        return -math.log(max(self.negative_rate, 1e-6))

    def train_batch(self, batch: ExampleBatch, now: float | None = None) -> StepResult:
        """Score then train on a batch, ``micro_batch`` examples per optimizer step.

        Steps run in order, so each example is scored by a model that has trained on
        every earlier micro-batch (walk-forward at micro-batch granularity).
        """
        n = len(batch)
        now = float(batch.ts.max()) / 1000.0 if now is None and n else (now or 0.0)
        slots = [batch.slots.get(s.name) for s in self.slots]
        offset = self._offset(batch) if n else 0.0
        logits, loss = [], 0.0
        for a in range(0, n, self.micro_batch):
            b = min(a + self.micro_batch, n)
            lg, ls = self._step_rows(slots, batch.label[a:b], a, b, offset, now)
            logits.append(lg)
            loss += ls
        out = np.concatenate(logits) if logits else np.zeros(0, np.float32)
        self.eval.add(out, batch.label)
        if batch.served_score is not None:
            self._add_served(batch, offset)
        self.ledger.add(batch.request_id)
        return StepResult(out, loss)

    def _add_served(self, batch: ExampleBatch, offset: float) -> None:
        """Served probabilities as logits of the sampled stream (as the progressive
        evaluation scores: ``+ offset``), for the examples that have one."""
        served = batch.served_score
        have = ~np.isnan(served)
        if have.any():
            p = np.clip(served[have], 1e-7, 1 - 1e-7)
            self.served.add(np.log(p / (1 - p)) + offset, batch.label[have])

    def _step_rows(
        self,
        slots: list[tuple[np.ndarray, np.ndarray] | None],
        labels: np.ndarray,
        a: int,
        b: int,
        offset: float,
        now: float,
    ) -> tuple[np.ndarray, float]:
        """One optimizer step on rows ``a:b`` of the batch; returns each example's logit
        before it was trained on."""
        n = b - a
        pooled = np.empty((n, len(self.slots), self.dim), np.float32)
        index = []
        for s, slot in enumerate(self.slots):
            if slots[s] is None:
                ids, offsets = _NO_IDS, np.zeros(n + 1, np.int64)
            else:
                all_ids, all_offsets = slots[s]
                ids = all_ids[all_offsets[a] : all_offsets[b]]
                offsets = all_offsets[a : b + 1] - all_offsets[a]
            uniq, inverse = unique_inverse(ids)
            rows = self.tables.pull(slot.name, uniq, now)
            pooled[:, s] = pool_sum(rows, inverse, offsets)
            index.append((uniq, inverse, offsets))
        tf = self._tf
        logits, g_pooled, loss = self._step(
            tf.constant(pooled), tf.constant(labels), tf.constant(np.full(n, offset, np.float32))
        )
        g_pooled = g_pooled.numpy()
        logits, loss = logits.numpy(), float(loss)
        if self.first_order_per_example:
            parts = [(self.tables.cells(slot.name, uniq), inverse, offsets)
                     for slot, (uniq, inverse, offsets) in zip(self.slots, index, strict=True)]
            logits, loss = step_first_order(logits, labels, parts, self.cfg.first_order_scale)
            for slot, (cells, _, _) in zip(self.slots, parts, strict=True):
                self.tables.store_cells(slot.name, cells, now)
            g_pooled[:, :, 0] = 0.0  # stepped above; a zero gradient leaves them as they are
        for s, slot in enumerate(self.slots):
            uniq, inverse, offsets = index[s]
            if len(uniq):
                grads = scatter_sum(g_pooled[:, s], inverse, offsets, len(uniq))
                self.tables.push(slot.name, uniq, grads, now)
        return logits, loss

    # -- dense state (weights + Adam), for sync and checkpoints -------------------------

    def dense_weights(self) -> dict[str, np.ndarray]:
        return export_weights(self.model)

    def dense_state(self) -> dict[str, np.ndarray]:
        """Weights, Adam's slots and the eval/ledger counters: one shard's small state."""
        out = {f"w/{k}": v for k, v in self.dense_weights().items()}
        for i, v in enumerate(self.optimizer.variables):
            out[f"opt/{i}"] = np.asarray(v.numpy())
        out.update({f"eval/{k}": v for k, v in self.eval.state().items()})
        out.update({f"served/{k}": v for k, v in self.served.state().items()})
        out["ledger"] = np.array([self.ledger.examples, self.ledger.fingerprint], np.int64)
        out["negative_rate"] = np.array([self.negative_rate], np.float64)
        return out

    def load_dense_state(self, state: dict[str, np.ndarray]) -> None:
        import_weights(self.model, {k[2:]: v for k, v in state.items() if k.startswith("w/")})
        for i, v in enumerate(self.optimizer.variables):
            v.assign(state[f"opt/{i}"])
        self.eval.load_state({k[5:]: v for k, v in state.items() if k.startswith("eval/")})
        self.served.load_state({k[7:]: v for k, v in state.items() if k.startswith("served/")})
        examples, fingerprint = state["ledger"].tolist()
        self.ledger = Ledger(int(examples), int(fingerprint))
        self.negative_rate = float(state["negative_rate"][0])
