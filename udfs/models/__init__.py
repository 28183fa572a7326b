"""Dense parts of the models: a Keras model for training, a NumPy forward for serving.

Every model takes the slot embeddings pooled per example, shape ``(batch, slots, dim)``,
and returns one logit per example. Column 0 of each slot's embedding is that slot's
first-order (linear) weight; columns ``1:`` are its factor vector (DeepFM only).
"""

from udfs.models.keras_models import build_model, export_weights, import_weights
from udfs.models.numpy_forward import numpy_forward

__all__ = ["build_model", "export_weights", "import_weights", "numpy_forward"]
