"""The daily batch baseline, retrained: a model trained from scratch each day on all data
so far, then served unchanged through the next day.

The sync experiment's ``batch_daily`` copy deploys the *online* model at each UTC
midnight, which beats nothing by construction (it is the online model, staler). The
classic alternative is a batch job: every midnight, train a fresh model on every
example before it, ``epochs`` shuffled passes in mini-batches of ``batch_size``, and
serve it for the day. This module measures that with the trainer the Flink job runs,
scoring each day's examples with the serving forward (``udfs.models.numpy_forward``)
over the day's model, which never learns during the day.

Examples
--------
>>> from freshet.config import ModelConfig
>>> from ps.config import SlotConfig
>>> from freshet.topics import Example
>>> exs = [Example(f"r{i}", i % 5, i % 3, i * 3_600_000, int(i % 5 < 2),
...                slots={"user_id": [i % 3], "item_id": [i % 5]}) for i in range(72)]
>>> model = ModelConfig(slots=[SlotConfig("user_id", dim=4), SlotConfig("item_id", dim=4)],
...                     hidden=[8])
>>> logits, labels = retrained_daily(exs, model, epochs=2, batch_size=16)
>>> len(logits), len(labels)  # every example after the first day
(48, 48)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from freshet.config import ModelConfig, TrainConfig
from freshet.topics import Example, ExampleBatch

DAY_MS = 86_400_000


def score(trainer: object, batch: ExampleBatch) -> np.ndarray:
    """Logits of ``batch`` from the trainer's rows and dense weights, learning nothing."""
    from ps.serving.scoring import pool_csr
    from udfs.models import numpy_forward

    tables, names = trainer.tables, [s.name for s in trainer.slots]
    pooled = np.zeros((len(batch), len(names), trainer.dim), np.float32)
    for s, name in enumerate(names):
        if name in batch.slots:
            ids, offsets = batch.slots[name]
            pooled[:, s] = pool_csr(tables.lookup(name, ids), offsets)
    return np.asarray(numpy_forward(trainer.dense_weights(), pooled, trainer.arch.kind))


def retrained_daily(
    examples: Sequence[Example],
    model: ModelConfig,
    train: TrainConfig | None = None,
    epochs: int = 3,
    batch_size: int = 512,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every example after the first UTC day (see the module)."""
    from ps import EmbeddingCollection
    from udfs.trainer import Trainer

    train = dataclasses.replace(train or TrainConfig(), micro_batch=batch_size, seed=seed)
    everything = ExampleBatch.from_rows([e.to_dict() for e in examples])
    day = everything.ts // DAY_MS
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    ends = np.r_[starts[1:], len(day)]
    trainer = Trainer(model, train)
    fresh = trainer.dense_state()
    rng = np.random.default_rng(seed)
    logits, labels = [], []
    for start, end in zip(starts[1:], ends[1:], strict=True):
        trainer.tables = EmbeddingCollection(model.slots, table=train.table, seed=seed)
        trainer.load_dense_state(fresh)
        for _ in range(epochs):
            order = rng.permutation(start)
            for a in range(0, start, batch_size):
                trainer.train_batch(everything.take(order[a:a + batch_size]))
        today = everything.take(np.arange(start, end))
        logits.append(score(trainer, today))
        labels.append(today.label)
    if not logits:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(logits), np.concatenate(labels)
