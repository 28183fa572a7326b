"""Hand-made parameter updates, for tests and benchmarks of the serving side.

Real updates come from the trainer; these have values chosen by the caller, so a
test can tell exactly which update a served score reflects.

Examples
--------
>>> batch = sparse_rows({"item_id": (np.array([1, 2]), np.full((2, 4), 0.5, np.float32))})
>>> batch.num_rows, lr_weights(0.25)["bias"].tolist()
(2, [0.25])
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
from confluent_kafka import Producer

from ps.batch import SlotRows, to_batch
from ps.delta import encode_dense, encode_sparse


def sparse_rows(
    values: Mapping[str, tuple[np.ndarray, np.ndarray]],
    deleted: Mapping[str, np.ndarray] | None = None,
) -> pa.RecordBatch:
    """A sparse row batch: slot -> ``(ids, values (n, dim))``, plus deleted IDs."""
    deleted = deleted or {}
    parts = []
    for slot in sorted(set(values) | set(deleted)):
        ids, vals = values.get(slot, (np.empty(0, np.int64), np.empty((0, 0), np.float32)))
        parts.append(SlotRows(slot, np.asarray(ids, np.int64), np.asarray(vals, np.float32),
                              np.zeros(len(ids)), np.asarray(deleted.get(slot, []), np.int64)))
    return to_batch(parts)


def lr_weights(bias: float) -> dict[str, np.ndarray]:
    """Dense weights of the LR model: logit = bias + sum of slots' column 0."""
    return {"bias": np.array([bias], np.float32)}


def deepfm_weights(dim: int, n_slots: int, hidden: tuple[int, ...] = (64, 32),
                   seed: int = 0, scale: float = 0.1) -> dict[str, np.ndarray]:
    """Random DeepFM dense weights in the trainer's export naming."""
    rng = np.random.default_rng(seed)
    w = {"bias": np.zeros(1, np.float32)}
    width = n_slots * (dim - 1)
    for i, h in enumerate(hidden):
        w[f"mlp/{i}/kernel"] = rng.normal(0, scale, (width, h)).astype(np.float32)
        w[f"mlp/{i}/bias"] = np.zeros(h, np.float32)
        width = h
    w["mlp/out/kernel"] = rng.normal(0, scale, (width, 1)).astype(np.float32)
    w["mlp/out/bias"] = np.zeros(1, np.float32)
    return w


def now_ms() -> int:
    return int(time.time() * 1000)


def sparse_messages(batch: pa.RecordBatch, model_id: str, seq: int, shard: int = 0,
                    watermark_ms: int | None = None, max_part_bytes: int = 512 * 1024
                    ) -> list[tuple[bytes, bytes]]:
    t = now_ms()
    return encode_sparse(batch, model_id=model_id, shard=shard, seq=seq,
                         watermark_ms=t if watermark_ms is None else watermark_ms,
                         wall_time_ms=t, max_part_bytes=max_part_bytes)


def dense_messages(weights: Mapping[str, np.ndarray], model_id: str, seq: int,
                   shard: int = 0, *, model_kind: str) -> list[tuple[bytes, bytes]]:
    """A dense update of ``weights``, scored by serving as a ``model_kind`` model."""
    t = now_ms()
    return encode_dense(weights, model_kind=model_kind, model_id=model_id, shard=shard,
                        seq=seq, watermark_ms=t, wall_time_ms=t)


def publish(producer: Producer, topic: str, messages: list[tuple[bytes, bytes]],
            flush: bool = True) -> None:
    """Produce ``(key, value)`` messages in order (one key -> one partition)."""
    for key, value in messages:
        producer.produce(topic, value, key)
    if flush:
        producer.flush(30)
