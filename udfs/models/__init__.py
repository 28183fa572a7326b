"""Dense parts of the models: a Keras model for training, a NumPy forward for serving.

Every model takes the slot embeddings pooled per example, shape ``(batch, slots, dim)``,
and returns one logit per example. Column 0 of each slot's embedding is that slot's
first-order (linear) weight; columns ``1:`` are its factor vector (DeepFM only).

The Keras functions are imported lazily: serving imports ``numpy_forward`` from here
and must not pay for TensorFlow (seconds and hundreds of MB).
"""

from __future__ import annotations

from typing import Any

from udfs.models.numpy_forward import numpy_forward

_KERAS = ("build_model", "export_weights", "import_weights")

__all__ = [*_KERAS, "numpy_forward"]


def __getattr__(name: str) -> Any:
    if name in _KERAS:
        from udfs.models import keras_models

        return getattr(keras_models, name)
    raise AttributeError(f"module 'udfs.models' has no attribute {name!r}")
