"""The one walk-forward runner every experiment shares.

Steps through mini-batches in event-time order. For each batch, first every serving
copy syncs what is due and scores it, then the trainer
(:meth:`udfs.trainer.Trainer.train_batch`, the code the Flink job runs) scores it
too (each logit is made before the example's own update; with per-example
first-order steps, after those of the examples before it in the batch) and learns from
it. So no example is ever scored by a model that has learnt from it.

The trainer's rows changed in a step are drained once and handed to every copy, so
one trainer pass serves any number of sync schedules: the copies differ only in
when they apply what the trainer learnt, which is the question of the sync
experiments. A copy's ``stale`` flag per example says whether the trainer changed
that example's user or item row after the copy's last sparse sync: the share of
examples a sync interval can make a difference for.

Examples
--------
>>> from freshet.config import ModelConfig
>>> from ps.config import SlotConfig
>>> from freshet.produce.synthetic import SyntheticSpec
>>> from experiments.streams import micro_batches, synthetic_examples
>>> exs = synthetic_examples(SyntheticSpec(impressions=256, seed=1, start_ms=1))
>>> model = ModelConfig(slots=[SlotConfig("user_id", dim=4), SlotConfig("item_id", dim=4)],
...                     hidden=[8])
>>> run = walk_forward(micro_batches(exs, 32), model, copies=[CopySpec("daily", 86400)])
>>> len(run.labels), sorted(run.served), run.syncs["daily"]
(256, ['daily'], 1)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.serving_copy import Schedule, ServingCopy
from freshet.config import ModelConfig, TrainConfig
from freshet.topics import ExampleBatch
from ps import evaluation
from udfs.trainer import Trainer

DAY_S = 86_400.0


@dataclass(frozen=True)
class CopySpec:
    """A serving copy: sparse rows every ``sparse_every_s``, dense weights every
    ``dense_every_s`` (default: with the sparse rows), in event time."""

    name: str
    sparse_every_s: float
    dense_every_s: float | None = None


@dataclass
class Run:
    """Per-example results of one walk-forward pass (arrays in stream order)."""

    ts: np.ndarray  # event time, ms
    labels: np.ndarray
    online: np.ndarray  # the trainer's logits, made before it learnt the example
    served: dict[str, np.ndarray] = field(default_factory=dict)  # copy -> logits
    stale: dict[str, np.ndarray] = field(default_factory=dict)  # copy -> row changed since sync
    syncs: dict[str, int] = field(default_factory=dict)
    sync_bytes: dict[str, int] = field(default_factory=dict)
    sizes: list[dict[str, Any]] = field(default_factory=list)  # table size samples
    # ``probes``: each copy's logits for them, and their labels (not trained on)
    probed: dict[str, np.ndarray] = field(default_factory=dict)
    probe_labels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    trainer: Any = None  # the Trainer, for inspection after the run

    def auc(self, name: str = "online") -> float:
        """Walk-forward AUC of the trainer (``"online"``) or of a serving copy."""
        scores = self.online if name == "online" else self.served[name]
        return evaluation.auc(scores, self.labels)


def walk_forward(
    batches: Sequence[ExampleBatch],
    model: ModelConfig,
    train: TrainConfig | None = None,
    collection: Any = None,
    copies: Sequence[CopySpec] = (),
    evict_every_s: float = 0.0,
    size_every_s: float = DAY_S,
    probes: Sequence[ExampleBatch | None] | None = None,
) -> Run:
    """Score-then-train through ``batches``; see the module docstring.

    Parameters
    ----------
    batches : sequence of ExampleBatch
        In event-time order; each is one trainer step (``micro_batches``).
    model, train : ModelConfig, TrainConfig
        As for the Flink trainer job.
    collection : EmbeddingCollection, optional
        The trainer's tables (default: as ``train.table`` and the slots' own say).
    copies : sequence of CopySpec
        Serving copies to keep in sync and score with (collisionless tables).
    evict_every_s : float
        Event-time interval between expiry passes (slots with ``expiry.ttl_s``); 0: never.
    size_every_s : float
        Event-time interval between table-size samples.
    probes : sequence of ExampleBatch or None, optional
        One per step: examples the copies score before the step and nobody trains
        on, e.g. impressions scored when they are shown while their labelled
        examples reach the trainer later.
    """
    trainer = Trainer(model, train, collection)
    if copies and any(not s.table.collisionless for s in trainer.tables.slots.values()):
        raise ValueError("serving copies need collisionless trainer tables")
    start_weights = trainer.dense_weights()
    serving = [
        ServingCopy(c.name, model.slots, c.sparse_every_s,
                    c.sparse_every_s if c.dense_every_s is None else c.dense_every_s,
                    start_weights, trainer.arch.kind)
        for c in copies
    ]
    evict = Schedule(evict_every_s) if evict_every_s > 0 else None
    sample = Schedule(size_every_s)
    last_step: dict[str, dict[int, int]] = {"user": {}, "item": {}}
    online, labels, ts, sizes = [], [], [], []
    probed: dict[str, list[np.ndarray]] = {c.name: [] for c in serving}
    probe_labels = []
    t = time.perf_counter()
    for step, batch in enumerate(batches):
        first = int(batch.ts[0])
        probe = probes[step] if probes is not None else None
        dense = _once(trainer.dense_weights)  # exported once per step, if any copy asks
        for c in serving:
            c.maybe_sync(first, step, dense)
            c.logits.append(c.score(batch))
            c.stale.append(_changed_since(batch, last_step, c.synced_steps))
            if probe is not None:
                probed[c.name].append(c.score(probe))
        if probe is not None:
            probe_labels.append(probe.label)
        if evict is not None and evict.due(first):
            trainer.tables.evict_expired(first / 1000.0)
        if sample.due(first):
            sizes.append(_size(trainer, first))
        online.append(trainer.train_batch(batch).logits)
        labels.append(batch.label)
        ts.append(batch.ts)
        if serving:
            delta = trainer.tables.drain_delta()
            for c in serving:
                c.add_drain(delta)
        for u in batch.user_id.tolist():
            last_step["user"][u] = step
        for i in batch.item_id.tolist():
            last_step["item"][i] = step
    if ts:
        sizes.append(_size(trainer, int(ts[-1][-1])))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    return Run(
        ts=cat(ts), labels=cat(labels), online=cat(online),
        served={c.name: cat(c.logits) for c in serving},
        stale={c.name: cat(c.stale).astype(bool) for c in serving},
        syncs={c.name: c.syncs for c in serving},
        sync_bytes={c.name: c.bytes for c in serving},
        probed={name: cat(v) for name, v in probed.items()}, probe_labels=cat(probe_labels),
        sizes=sizes, seconds=time.perf_counter() - t, trainer=trainer,
    )


def _once(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` called on first use only; later calls return the same value."""
    cache: list[Any] = []

    def get() -> Any:
        if not cache:
            cache.append(fn())
        return cache[0]

    return get


def _changed_since(batch: ExampleBatch, last_step: dict[str, dict[int, int]],
                   synced_steps: int) -> np.ndarray:
    """Per example: was its user's or item's row trained after the copy's last sync?"""
    users, items = last_step["user"], last_step["item"]
    return np.array([
        users.get(u, -1) >= synced_steps or items.get(i, -1) >= synced_steps
        for u, i in zip(batch.user_id.tolist(), batch.item_id.tolist(), strict=True)
    ], bool)


def _size(trainer: Trainer, ts_ms: int) -> dict[str, Any]:
    tables = trainer.tables
    return {"ts": ts_ms, "rows": len(tables), "nbytes": tables.nbytes(),
            "slots": {name: len(s) for name, s in tables.slots.items()}}
