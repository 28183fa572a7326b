"""Item popularity, scored progressively: the baseline every model must beat.

The score of an example is its item's positive rate so far, smoothed with one prior
positive and one prior negative: ``(positives + 1) / (shown + 2)``. (Counting only
positives scores 0.62 AUC on MovieLens; the rate scores 0.70, River's figure.)
A batch is scored before it is counted, like the trainer.

Examples
--------
>>> p = ItemPopularity()
>>> p.score_then_learn(np.array([7, 7, 8]), np.array([1.0, 1.0, 0.0])).tolist()
[0.5, 0.5, 0.5]
>>> p.score_then_learn(np.array([7, 8]), np.array([1.0, 1.0])).tolist()
[0.75, 0.3333333333333333]
"""

from __future__ import annotations

import numpy as np


class ItemPopularity:
    def __init__(self) -> None:
        self.positives: dict[int, float] = {}
        self.shown: dict[int, float] = {}

    def score_then_learn(self, items: np.ndarray, labels: np.ndarray) -> np.ndarray:
        keys = items.tolist()
        pos, shown = self.positives, self.shown
        scores = np.array([(pos.get(i, 0.0) + 1) / (shown.get(i, 0.0) + 2) for i in keys])
        for i, y in zip(keys, labels.tolist(), strict=True):
            pos[i] = pos.get(i, 0.0) + y
            shown[i] = shown.get(i, 0.0) + 1
        return scores


class UserItemPopularity:
    """User and item positive rates, combined: the strongest counter baseline.

    Each rate is smoothed towards the global rate with ``prior`` pseudo-examples, and
    the score adds their log-odds (minus the global's, counted twice otherwise). On
    MovieLens-100K, progressively: 0.749 AUC against item popularity's 0.698.

    Examples
    --------
    >>> p = UserItemPopularity(prior=1.0)
    >>> s = p.score_then_learn(np.array([1, 1]), np.array([7, 8]), np.array([1.0, 0.0]))
    >>> s.tolist()  # nothing learnt yet: the global prior
    [0.0, 0.0]
    >>> bool(p.score_then_learn(np.array([1]), np.array([7]), np.array([1.0]))[0] > 0)
    True
    """

    def __init__(self, prior: float = 10.0) -> None:
        self.prior = prior
        self.user: dict[int, list[float]] = {}  # id -> [positives, shown]
        self.item: dict[int, list[float]] = {}
        self.positives = self.shown = 0.0

    def score_then_learn(self, users: np.ndarray, items: np.ndarray, labels: np.ndarray
                         ) -> np.ndarray:
        """Log-odds scores of a batch (all made before any of it is counted)."""
        g = (self.positives + 1.0) / (self.shown + 2.0)
        lg = np.log(g / (1 - g))
        scores = np.empty(len(labels))
        for k, (u, i) in enumerate(zip(users.tolist(), items.tolist(), strict=True)):
            pu = self._rate(self.user.get(u), g)
            pi = self._rate(self.item.get(i), g)
            scores[k] = np.log(pu / (1 - pu)) + np.log(pi / (1 - pi)) - lg
        for u, i, y in zip(users.tolist(), items.tolist(), labels.tolist(), strict=True):
            for table, key in ((self.user, u), (self.item, i)):
                c = table.setdefault(key, [0.0, 0.0])
                c[0] += y
                c[1] += 1
            self.positives += y
            self.shown += 1
        return scores

    def _rate(self, counts: list[float] | None, g: float) -> float:
        pos, shown = counts if counts is not None else (0.0, 0.0)
        return (pos + self.prior * g) / (shown + self.prior)
