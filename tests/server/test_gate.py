"""The dense validation gate: AUC, and which candidates it lets through."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from freshet.topics import Example, ExampleBatch, encode_examples
from jobs.serve import numpy_forward
from ps.config import SlotConfig
from ps.evaluation import auc
from ps.serving.state import DenseModel, ServingState
from ps.serving.synthetic import sparse_rows
from server.gate import ValidationGate

SLOTS = [SlotConfig("user_id", dim=4), SlotConfig("item_id", dim=4)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auc_matches_pair_counting(pairs) -> None:
    scores = np.array([s for s, _ in pairs], float)
    labels = np.array([y for _, y in pairs])
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        assert np.isnan(auc(scores, labels))
        return
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert abs(auc(scores, labels) - wins / (len(pos) * len(neg))) < 1e-12


def setup(n: int = 400) -> tuple[ServingState, ExampleBatch, ValidationGate]:
    """Items 0..n-1 whose first factor column is +1 for clicked, -1 for not clicked."""
    state = ServingState(SLOTS)
    ids = np.arange(n)
    labels = ids % 2
    vals = np.zeros((n, 4), np.float32)
    vals[:, 1] = np.where(labels == 1, 1.0, -1.0)
    state.apply_sparse(sparse_rows({"item_id": (ids, vals)}), 0, 0)
    window = ExampleBatch.from_json(encode_examples([
        Example(f"r{i}", int(i), 0, int(i), int(labels[i]), slots={"item_id": [int(i)]})
        for i in ids]))
    gate = ValidationGate(numpy_forward(), ["user_id", "item_id"], 4, margin=0.01,
                          min_examples=100)
    return state, window, gate


def deepfm(sign: float, seq: int, bias: float = 0.0) -> DenseModel:
    """DeepFM with one hidden unit reading the item's first factor: ``sign`` +1 ranks
    the clicked items first (AUC 1), -1 last (AUC 0)."""
    k0 = np.zeros((6, 1), np.float32)
    k0[3, 0] = 1.0  # input = [user factors (3) | item factors (3)]
    w = {"bias": np.array([bias], np.float32), "mlp/0/kernel": k0,
         "mlp/0/bias": np.ones(1, np.float32),
         "mlp/out/kernel": np.array([[sign]], np.float32), "mlp/out/bias": np.zeros(1, np.float32)}
    return DenseModel(w, shard=0, seq=seq, watermark_ms=0, wall_time_ms=0, kind="deepfm")


def test_gate_decisions() -> None:
    state, window, gate = setup()
    good = deepfm(+1.0, 1)
    first = gate.check(good, None, state, window)
    assert first.accepted and "first model" in first.reason

    similar = gate.check(deepfm(+1.0, 2, bias=0.3), good, state, window)
    assert similar.accepted and similar.auc_candidate == similar.auc_current == 1.0

    worse = gate.check(deepfm(-1.0, 3), good, state, window)
    assert not worse.accepted and "below current" in worse.reason
    assert worse.auc_candidate == 0.0 and worse.auc_current == 1.0
    assert worse.examples == len(window)

    nan = deepfm(+1.0, 4)
    nan.weights["mlp/0/bias"][0] = np.nan
    d = gate.check(nan, good, state, window)
    assert not d.accepted and "non-finite" in d.reason

    no_bias = DenseModel({k: v for k, v in deepfm(1.0, 5).weights.items() if k != "bias"},
                         0, 5, 0, 0, "deepfm")
    d = gate.check(no_bias, good, state, window)
    assert not d.accepted and "does not score" in d.reason

    few = ExampleBatch.from_json(encode_examples([Example("a", 0, 0, 0, 1, slots={})]))
    d = gate.check(deepfm(-1.0, 6), good, state, few)
    assert d.accepted and "not validated" in d.reason
    for label in (0, 1):  # many examples, but one class only: AUC is undefined
        one_class = ExampleBatch.from_json(encode_examples([
            Example(f"r{i}", i, 0, 0, label, slots={"item_id": [i]}) for i in range(300)]))
        d = gate.check(deepfm(-1.0, 7), good, state, one_class)
        assert d.accepted and "not validated" in d.reason and d.auc_candidate is None
