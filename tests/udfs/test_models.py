"""The Keras dense parts and the NumPy forward that serving uses agree."""

from __future__ import annotations

import numpy as np
import pytest

from udfs.models import build_model, export_weights, import_weights, numpy_forward


@pytest.mark.parametrize("kind", ["deepfm", "lr"])
def test_numpy_forward_matches_keras(kind: str) -> None:
    rng = np.random.default_rng(1)
    model = build_model(kind, n_slots=4, dim=6, hidden=[8, 4])
    # Non-trivial weights: Keras initialises biases to zero.
    weights = {k: rng.normal(0, 0.5, v.shape).astype(np.float32)
               for k, v in export_weights(model).items()}
    import_weights(model, weights)
    pooled = rng.normal(0, 1, (32, 4, 6)).astype(np.float32)
    keras_logits = np.asarray(model(pooled))
    np.testing.assert_allclose(numpy_forward(weights, pooled), keras_logits, rtol=1e-4, atol=1e-4)
    assert keras_logits.std() > 0.1  # the comparison is not between constants


def test_deepfm_uses_pairwise_interactions() -> None:
    """With zero MLP output and biases, DeepFM is first-order + FM: check one by hand."""
    model = build_model("deepfm", n_slots=2, dim=3, hidden=[4])
    w = {k: np.zeros_like(v) for k, v in export_weights(model).items()}
    w["first_order_scale"] = np.array([1.0], np.float32)
    pooled = np.array([[[1.0, 2.0, 3.0], [0.5, 4.0, -1.0]]], np.float32)
    # first order 1 + 0.5; FM: <(2,3),(4,-1)> = 5
    assert numpy_forward(w, pooled).tolist() == pytest.approx([6.5])
    w["first_order_scale"] = np.array([3.0], np.float32)  # scales column 0 only
    assert numpy_forward(w, pooled).tolist() == pytest.approx([9.5])


def test_deepfm_needs_room_for_first_order_column() -> None:
    with pytest.raises(ValueError, match="dim >= 2"):
        build_model("deepfm", n_slots=2, dim=1)
