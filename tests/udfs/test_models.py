"""The dense models one by one (what all of them must do: models/test_conformance.py)."""

from __future__ import annotations

import numpy as np
import pytest

from udfs.models import UnknownModelKind, architecture, model_kinds, numpy_forward
from udfs.models.deepfm import DeepFM


def test_deepfm_uses_pairwise_interactions() -> None:
    """With zero MLP output and biases, DeepFM is first-order + FM: check one by hand."""
    arch = DeepFM(n_slots=2, dim=3, hidden=[4])
    w = {k: np.zeros(s, np.float32) for k, s in arch.weight_shapes().items()}
    w["first_order_scale"] = np.array([1.0], np.float32)
    pooled = np.array([[[1.0, 2.0, 3.0], [0.5, 4.0, -1.0]]], np.float32)
    # first order 1 + 0.5; FM: <(2,3),(4,-1)> = 5
    assert numpy_forward(w, pooled, "deepfm").tolist() == pytest.approx([6.5])
    w["first_order_scale"] = np.array([3.0], np.float32)  # scales column 0 only
    assert numpy_forward(w, pooled, "deepfm").tolist() == pytest.approx([9.5])


def test_deepfm_needs_room_for_first_order_column() -> None:
    with pytest.raises(ValueError, match="dim >= 2"):
        architecture("deepfm")(n_slots=2, dim=1)


def test_a_kind_is_never_guessed_from_weight_names() -> None:
    """DeepFM-looking weights are scored as the kind they are said to be, and a kind
    that is not registered fails, naming the known ones."""
    arch = DeepFM(n_slots=2, dim=3, hidden=[])
    w, pooled = arch.random_weights(), np.ones((4, 2, 3), np.float32)
    assert not np.allclose(numpy_forward(w, pooled, "lr"), numpy_forward(w, pooled, "deepfm"))
    with pytest.raises(UnknownModelKind, match="known: " + ", ".join(model_kinds())):
        numpy_forward(w, pooled, "deepfm2")


def test_the_synthetic_deepfm_weights_are_deepfms() -> None:
    """ps.serving.synthetic writes DeepFM weights by hand (ps cannot import the model):
    they must keep its names and shapes, less the optional first_order_scale."""
    from ps.serving.synthetic import deepfm_weights

    got = {k: v.shape for k, v in deepfm_weights(dim=4, n_slots=3, hidden=(8, 2)).items()}
    want = DeepFM(n_slots=3, dim=4, hidden=(8, 2)).weight_shapes()
    assert got == {k: s for k, s in want.items() if k != "first_order_scale"}
