"""The validation gate for dense updates: offline validation before dissemination.

Before a new dense model is swapped in, both it and the current model score the
same recent window of labelled examples (from the ``examples`` topic, looked up in
the tables being served). If the candidate's AUC is more than ``margin`` below the
current model's, the current model stays and the :class:`GateDecision` says why.

The window holds the newest examples the server has seen; the trainer may have
trained the candidate on some of them, which favours the candidate slightly. The
gate is meant to catch broken models (diverged, NaN, wrong shapes, much worse
ranking), not to tell apart two good ones.

The AUC is :func:`ps.evaluation.auc`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from freshet.topics import ExampleBatch
from ps.evaluation import auc
from ps.serving.scoring import Forward, pool_slots
from ps.serving.state import DenseModel, ServingState


@dataclass(frozen=True)
class GateDecision:
    """Why a dense update was or was not swapped in."""

    shard: int
    seq: int
    accepted: bool
    reason: str
    auc_candidate: float | None
    auc_current: float | None
    examples: int
    ts_ms: int


class ValidationGate:
    """Compares a candidate dense model with the current one on recent examples.

    Parameters
    ----------
    forward : Forward
        The dense forward used for serving.
    slot_order : sequence of str
        The model's slots in input order.
    dim : int
        Embedding dim (the same for every slot).
    margin : float
        Largest AUC drop (candidate below current) still accepted.
    min_examples : int
        Below this many examples (or with one class only) nothing can be measured:
        the candidate is accepted unvalidated and the decision says so.
    """

    def __init__(
        self,
        forward: Forward,
        slot_order: Sequence[str],
        dim: int,
        margin: float,
        min_examples: int = 200,
    ) -> None:
        self.forward = forward
        self.slot_order = list(slot_order)
        self.dim = dim
        self.margin = margin
        self.min_examples = min_examples

    def logits(self, model: DenseModel, state: ServingState, batch: ExampleBatch) -> np.ndarray:
        """Logits of ``model`` on ``batch`` with the served embeddings."""
        ids = {s: batch.slots[s][0] for s in self.slot_order if s in batch.slots}
        offsets = {s: batch.slots[s][1] for s in ids}
        view = state.read(ids)
        pooled = pool_slots(view.embeddings, offsets, self.slot_order, len(batch), self.dim)
        return np.asarray(self.forward(model.weights, pooled, model.kind), np.float64)

    def check(
        self,
        candidate: DenseModel,
        current: DenseModel | None,
        state: ServingState,
        window: ExampleBatch | None,
    ) -> GateDecision:
        def decide(ok: bool, why: str, new: float | None = None, old: float | None = None,
                   n: int = 0) -> GateDecision:
            return GateDecision(candidate.shard, candidate.seq, ok, why, new, old, n,
                                int(time.time() * 1000))

        bad = [k for k, w in candidate.weights.items() if not np.isfinite(w).all()]
        if bad:
            return decide(False, f"non-finite weights in {bad}")
        n = 0 if window is None else len(window)
        labels = window.label if window is not None else np.zeros(0)
        try:
            new_logits = (self.logits(candidate, state, window) if n
                          else self.forward(candidate.weights,
                                            np.zeros((1, len(self.slot_order), self.dim),
                                                     np.float32), candidate.kind))
        except (KeyError, ValueError) as e:  # missing weight or wrong shape
            return decide(False, f"candidate does not score: {e!r}")
        if not np.isfinite(new_logits).all():
            return decide(False, "candidate produces non-finite scores", n=n)
        if current is None:
            return decide(True, "first model: nothing to compare with", n=n)
        positives = int((labels > 0).sum())
        if n < self.min_examples or positives in (0, n):
            return decide(True, f"not validated: {n} examples, {positives} positive (need "
                                f"{self.min_examples} with both labels)", n=n)
        new_auc = auc(new_logits, labels)
        old_auc = auc(self.logits(current, state, window), labels)
        if math.isnan(old_auc) or new_auc >= old_auc - self.margin:
            return decide(True, f"AUC {new_auc:.4f} vs current {old_auc:.4f} "
                                f"(margin {self.margin})", new_auc, old_auc, n)
        return decide(False, f"AUC {new_auc:.4f} is more than {self.margin} below current "
                             f"{old_auc:.4f}", new_auc, old_auc, n)
