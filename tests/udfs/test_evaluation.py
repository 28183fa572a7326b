"""Progressive evaluation: histogram AUC against the exact rank AUC; popularity."""

from __future__ import annotations

import numpy as np

from udfs.evaluation import ProgressiveEval, logloss_sum
from udfs.popularity import ItemPopularity


def exact_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def test_histogram_auc_is_close_to_exact_and_windows_partition_the_stream() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(3000) < 0.4).astype(np.float64)
    logits = rng.normal(0, 2, 3000) + 1.2 * labels
    e = ProgressiveEval(window=1000)
    windows = []
    for i in range(0, 3000, 500):
        e.add(logits[i : i + 500], labels[i : i + 500])
        if e.window_full():
            windows.append(e.take_window())
    assert abs(e.auc() - exact_auc(logits, labels)) < 1e-3
    assert [w["examples"] for w in windows] == [1000, 1000, 1000]
    assert abs(windows[1]["auc"] - exact_auc(logits[1000:2000], labels[1000:2000])) < 2e-3
    assert e.logloss() == logloss_sum(logits, labels) / 3000


def test_popularity_scores_each_batch_before_counting_it() -> None:
    p = ItemPopularity()
    first = p.score_then_learn(np.array([1, 1]), np.array([1.0, 1.0]))
    assert first.tolist() == [0.5, 0.5]
    assert p.score_then_learn(np.array([1]), np.array([0.0])).tolist() == [0.75]
