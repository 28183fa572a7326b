"""First-order weights stepped per example inside a micro-batch (udfs/first_order.py)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

from freshet.config import TrainConfig
from freshet.topics import ExampleBatch
from ps.config import AdagradConfig, FTRLConfig, SGDConfig
from ps.slot import Cells
from udfs.first_order import step_first_order
from udfs.trainer import Trainer

OPTIMIZERS = [c.build() for c in (SGDConfig(0.3), AdagradConfig(0.2, 0.1),
                                  FTRLConfig(0.3, 1.0, 0.01, 0.1))]


def random_slot(rng: np.random.Generator, opt: object, n: int, ids: int, missing: int) -> tuple:
    width = 1 + opt.state_width(1)
    values = np.zeros((ids, 3), np.float32)
    values[:, 0] = rng.normal(0, 0.1, ids)
    values[:, 1:width] = opt.init_state(ids, 1)
    rows = np.arange(ids)
    rows[missing] = -1  # an ID without a row: reads 0, never updated
    values[missing] = 0.0
    per_example = rng.integers(0, 3, n)
    offsets = np.concatenate([[0], np.cumsum(per_example)])
    inverse = rng.integers(0, ids, offsets[-1])
    return Cells(rows, values, 0, opt.code, opt.hyper()), inverse, offsets


def reference(logits, labels, slots, optimizers, scale):  # noqa: ANN001, ANN201 - test helper
    """Example by example, each ID's weight a one-row table stepped by ``opt.apply``."""
    tables = [c.values.copy() for c, _, _ in slots]
    start = [t[:, 0].copy() for t in tables]
    out = []
    for k in range(len(logits)):
        z = float(logits[k]) + scale * sum(
            float(t[inv[q], 0] - w0[inv[q]])
            for t, w0, (_, inv, off) in zip(tables, start, slots, strict=True)
            for q in range(off[k], off[k + 1]))
        out.append(z)
        g = np.float32(scale * (1 / (1 + math.exp(-z)) - labels[k]))
        for t, (c, inv, off), opt in zip(tables, slots, optimizers, strict=True):
            width = 1 + opt.state_width(1)
            for q in range(off[k], off[k + 1]):
                if c.rows[inv[q]] >= 0:
                    row = t[inv[q] : inv[q] + 1, :width]  # a view: apply updates t
                    opt.apply(row, np.array([0]), np.array([[g]], np.float32), 1)
    return np.array(out), tables


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_stepping_one_example_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    slots = [random_slot(rng, opt, n, ids=6, missing=2) for opt in OPTIMIZERS]
    logits = rng.normal(0, 1, n).astype(np.float32)
    labels = (rng.random(n) < 0.5).astype(np.float32)
    want_logits, want_tables = reference(logits, labels, slots, OPTIMIZERS, scale=2.0)
    got_logits, loss = step_first_order(logits, labels, slots, scale=2.0)
    np.testing.assert_allclose(got_logits, want_logits, rtol=1e-5, atol=1e-5)
    for (c, _, _), t in zip(slots, want_tables, strict=True):
        np.testing.assert_allclose(c.values, t, rtol=1e-5, atol=1e-6)
        assert (c.values[2] == 0).all()  # the ID without a row
    z = want_logits
    want_loss = np.sum(np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z))))
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert not np.allclose(got_logits, logits)  # later examples did see earlier steps


def lr_without_dense_steps(streams: SimpleNamespace) -> object:
    cfg = streams.model_config("lr", dim=1)
    # The bias stays put, and new rows start at 0 whatever order they are created in.
    slots = [dataclasses.replace(s, init_std=0.0) for s in cfg.slots]
    return dataclasses.replace(cfg, dense_learning_rate=0.0, slots=slots)


def train(cfg: object, micro_batch: int, per_example: bool, messages: list[bytes]) -> Trainer:
    """A trainer after the messages; ``tr.scores``: every example's progressive logit."""
    tr = Trainer(cfg, TrainConfig(micro_batch=micro_batch, first_order_per_example=per_example))
    tr.scores = np.concatenate([tr.train_batch(ExampleBatch.from_json(m)).logits
                                for m in messages])
    return tr


def test_an_lr_learns_per_example_whatever_the_micro_batch(streams: SimpleNamespace) -> None:
    """An LR's weights are all first-order: micro-batch 32 then trains exactly as 1 does."""
    cfg = lr_without_dense_steps(streams)
    msgs = streams.messages(streams.examples(600, seed=5), size=100)
    one = train(cfg, 1, True, msgs)
    many = train(cfg, 32, True, msgs)
    np.testing.assert_allclose(many.scores, one.scores, rtol=1e-4, atol=1e-5)
    for name in streams.SLOTS:
        ids = np.arange(100)
        np.testing.assert_allclose(many.tables.lookup(name, ids), one.tables.lookup(name, ids),
                                   rtol=1e-4, atol=1e-6)
    batched = train(cfg, 32, False, msgs)  # the old way: a step scores 32 with stale weights
    assert not np.allclose(batched.scores, one.scores, atol=1e-3)


def test_factors_and_dense_weights_step_as_before(streams: SimpleNamespace) -> None:
    """Only column 0 changes: factor columns and the dense part get the same step."""
    cfg = streams.model_config("deepfm")
    msgs = streams.messages(streams.examples(64, seed=6), size=64)
    on, off = train(cfg, 64, True, msgs), train(cfg, 64, False, msgs)
    for name in streams.SLOTS:
        ids = np.arange(100)
        a, b = on.tables.lookup(name, ids), off.tables.lookup(name, ids)
        np.testing.assert_allclose(a[:, 1:], b[:, 1:], rtol=1e-5, atol=1e-7)
        assert not np.allclose(a[:, 0], b[:, 0])
    for k, v in off.dense_weights().items():
        np.testing.assert_allclose(on.dense_weights()[k], v, rtol=1e-5, err_msg=k)
