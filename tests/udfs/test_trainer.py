"""The training step: progressive scores come before updates, sparse grads are sums."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from freshet.config import TrainConfig
from freshet.topics import Example, ExampleBatch, encode_examples
from ps.config import HashedTableConfig
from udfs.models import numpy_forward
from udfs.trainer import Trainer


def batch_of(exs: list[Example]) -> ExampleBatch:
    return ExampleBatch.from_json(encode_examples(exs))


@pytest.mark.parametrize("kind", ["deepfm", "lr"])
def test_learns_a_learnable_stream(kind: str, streams: SimpleNamespace) -> None:
    tr = Trainer(streams.model_config(kind), TrainConfig(micro_batch=32, eval_window_examples=512))
    windows = []
    for m in streams.messages(streams.examples(6000), size=256):
        tr.train_batch(ExampleBatch.from_json(m))
        if tr.eval.window_full():
            windows.append(tr.eval.take_window()["auc"])
    assert tr.ledger.examples == 6000
    assert windows[-1] > 0.8 and windows[-1] > windows[0] + 0.1, windows


def test_scores_come_before_the_update_and_match_numpy_forward(streams: SimpleNamespace) -> None:
    cfg = streams.model_config("deepfm")
    # One step scores every example with the weights from before it (per-example
    # first-order steps are tested in test_first_order.py).
    tr = Trainer(cfg, TrainConfig(micro_batch=1000, first_order_per_example=False))
    exs = streams.examples(64, seed=3)
    tr.train_batch(batch_of(exs[:32]))  # some training so weights are not at init
    batch = batch_of(exs[32:])
    # Expected pre-update logits: pool the current rows by hand, score in NumPy.
    pooled = np.zeros((len(batch), 3, 8), np.float32)
    for s, name in enumerate(streams.SLOTS):
        ids, offsets = batch.slots[name]
        tr.tables.pull(name, np.unique(ids), now=0.0)  # create new IDs' rows, as training does
        rows = tr.tables.lookup(name, ids)
        for b in range(len(batch)):
            pooled[b, s] = rows[offsets[b] : offsets[b + 1]].sum(axis=0)
    expected = numpy_forward(tr.dense_weights(), pooled, "deepfm")
    got = tr.train_batch(batch).logits
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    trained = numpy_forward(tr.dense_weights(), pooled, "deepfm")
    assert not np.allclose(trained, expected)  # it trained


def test_sparse_rows_get_the_sum_of_their_examples_gradients(streams: SimpleNamespace) -> None:
    """Two identical examples in one step move their rows twice as far as one would."""
    cfg = streams.model_config("lr", dim=1)
    ex = Example("a", 1, 1, 0, 1, slots={"user_id": [1], "item_id": [2], "genre": []})
    twin = Example("b", 1, 1, 0, 1, slots={"user_id": [1], "item_id": [2], "genre": []})

    class Recorder:
        def __init__(self, inner: object) -> None:
            self.inner, self.pushed = inner, []

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def push(self, slot: str, ids: np.ndarray, grads: np.ndarray, now: float) -> None:
            self.pushed.append((slot, ids.tolist(), grads.copy()))
            self.inner.push(slot, ids, grads, now)

    # Off: with it an LR's dim-1 rows are all first-order, stepped per example instead.
    train = TrainConfig(micro_batch=8, first_order_per_example=False)
    one = Trainer(cfg, train)
    one.tables = Recorder(one.tables)
    one.train_batch(batch_of([ex]))
    two = Trainer(cfg, train)
    two.tables = Recorder(two.tables)
    two.train_batch(batch_of([ex, twin]))
    (s1, ids1, g1), (s2, ids2, g2) = one.tables.pushed[0], two.tables.pushed[0]
    assert (s1, ids1) == (s2, ids2) == ("user_id", [1])
    assert abs(g1[0, 0]) > 0.1
    np.testing.assert_allclose(g2, 2 * g1, rtol=1e-5)


def test_log_odds_correction_for_sampled_negatives(streams: SimpleNamespace) -> None:
    cfg = streams.model_config("lr", dim=1)
    tr = Trainer(cfg, TrainConfig(micro_batch=8))
    neg = Example("n", 1, 1, 0, 0, sample_rate=0.25, slots={"user_id": [1]})
    pos = Example("p", 2, 2, 0, 1, slots={"user_id": [2]})
    before = tr.dense_weights()["bias"][0]
    logits = tr.train_batch(batch_of([neg, pos])).logits
    # Fresh rows are ~N(0, 0.01): the logits are the offset log(1 / 0.25) plus noise.
    assert logits == pytest.approx([math.log(4) + before] * 2, abs=0.05)


def test_dense_state_round_trips(streams: SimpleNamespace) -> None:
    cfg = streams.model_config("deepfm")
    a = Trainer(cfg, TrainConfig(micro_batch=16))
    for m in streams.messages(streams.examples(200), size=64):
        a.train_batch(ExampleBatch.from_json(m))
    b = Trainer(cfg, TrainConfig(micro_batch=16))
    b.load_dense_state(a.dense_state())
    for k, v in a.dense_state().items():
        np.testing.assert_array_equal(b.dense_state()[k], v, err_msg=k)
    assert b.ledger == a.ledger and b.eval.auc() == a.eval.auc()


def test_train_table_hashed_reaches_the_tables(streams: SimpleNamespace) -> None:
    """``train.table = {kind = "hashed", rows = 64}``: every slot gets a hashed table of
    that many rows, and the model still learns."""
    from ps import HashedTable

    train = TrainConfig(micro_batch=32, eval_window_examples=512, table=HashedTableConfig(rows=64))
    tr = Trainer(streams.model_config("deepfm"), train)
    assert all(isinstance(s.table, HashedTable) for s in tr.tables.slots.values())
    windows = []
    for m in streams.messages(streams.examples(4000), size=256):
        tr.train_batch(ExampleBatch.from_json(m))
        if tr.eval.window_full():
            windows.append(tr.eval.take_window()["auc"])
    assert max(len(s) for s in tr.tables.slots.values()) <= 64
    assert windows[-1] > 0.7, windows
