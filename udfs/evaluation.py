"""Progressive (walk-forward) evaluation: AUC and logloss of scores made before training.

AUC comes from fixed histograms of the predicted logit, so the state is small and
fixed-size (it is checkpointed with the model) and histograms of several shards add
up. With 2048 bins over logits in [-10, 10] the AUC differs from the exact one by
ties within a bin only (counted as half).

Examples
--------
>>> e = ProgressiveEval(window=4)
>>> e.add(np.array([2.0, -2.0, 1.0, -1.0]), np.array([1.0, 0.0, 1.0, 0.0]))
>>> w = e.take_window(); w["auc"], w["examples"]
(1.0, 4)
>>> e.auc()
1.0
"""

from __future__ import annotations

import numpy as np

BINS = 2048
LOGIT_RANGE = 10.0


def histogram_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC from per-bin positive and negative counts (bins in increasing score order)."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (n_pos * n_neg))


def _bins(logits: np.ndarray) -> np.ndarray:
    x = (np.clip(logits, -LOGIT_RANGE, LOGIT_RANGE) + LOGIT_RANGE) / (2 * LOGIT_RANGE)
    return np.minimum((x * BINS).astype(np.int64), BINS - 1)


def logloss_sum(logits: np.ndarray, labels: np.ndarray) -> float:
    """Summed binary cross-entropy of ``sigmoid(logits)`` (numerically stable)."""
    z = logits.astype(np.float64)
    return float((np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))).sum())


class ProgressiveEval:
    """Cumulative and per-window AUC/logloss over a stream of (logit, label)."""

    def __init__(self, window: int = 10_000) -> None:
        self.window = window
        self.pos = np.zeros(BINS, np.int64)
        self.neg = np.zeros(BINS, np.int64)
        self.loss = 0.0
        self.count = 0
        self._reset_window()

    def _reset_window(self) -> None:
        self.w_pos = np.zeros(BINS, np.int64)
        self.w_neg = np.zeros(BINS, np.int64)
        self.w_loss = 0.0
        self.w_count = 0

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        """Record scores made before the examples were trained on."""
        b = _bins(logits)
        pos = np.bincount(b, weights=labels, minlength=BINS).astype(np.int64)
        neg = np.bincount(b, minlength=BINS) - pos
        loss = logloss_sum(logits, labels)
        self.pos += pos
        self.neg += neg
        self.w_pos += pos
        self.w_neg += neg
        self.loss += loss
        self.w_loss += loss
        self.count += len(labels)
        self.w_count += len(labels)

    def window_full(self) -> bool:
        return self.w_count >= self.window

    def take_window(self) -> dict[str, float]:
        """The current window's figures; starts a new window."""
        out = {
            "auc": histogram_auc(self.w_pos, self.w_neg),
            "logloss": self.w_loss / max(self.w_count, 1),
            "examples": self.w_count,
        }
        self._reset_window()
        return out

    def auc(self) -> float:
        return histogram_auc(self.pos, self.neg)

    def logloss(self) -> float:
        return self.loss / max(self.count, 1)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint (restored by :meth:`load_state`).

        Bin counts go as uint32 (half the bytes of a per-batch state write); a bin would
        need 4 billion examples to overflow.
        """
        counts = {"pos": self.pos, "neg": self.neg, "w_pos": self.w_pos, "w_neg": self.w_neg}
        return {
            **{k: v.astype(np.uint32) for k, v in counts.items()},
            "scalars": np.array([self.loss, self.count, self.w_loss, self.w_count], np.float64),
        }

    def load_state(self, s: dict[str, np.ndarray]) -> None:
        self.pos, self.neg = s["pos"].astype(np.int64), s["neg"].astype(np.int64)
        self.w_pos, self.w_neg = s["w_pos"].astype(np.int64), s["w_neg"].astype(np.int64)
        loss, count, w_loss, w_count = s["scalars"].tolist()
        self.loss, self.count, self.w_loss, self.w_count = loss, int(count), w_loss, int(w_count)
