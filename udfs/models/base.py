"""What a dense model is: one :class:`Architecture` subclass per ``model.kind``.

Every model takes the slot embeddings pooled per example, shape ``(batch, slots, dim)``,
and returns one logit per example. Column 0 of each slot's embedding is that slot's
first-order (linear) weight, and every model adds it in as
``first_order_scale * sum over slots of column 0`` and nowhere else: the trainer's
per-example first-order steps (``udfs/first_order.py``) move a logit by exactly that
much when they step column 0. Columns ``1:`` are the slot's factor vector, which
each model uses as it likes.

A model has two halves that must agree, and one list of weights:

- :meth:`Architecture.build_keras`: the Keras model the trainer trains. TensorFlow is
  imported inside it, never at module import: serving imports the same module for
  the other half and must not pay for TensorFlow (seconds and hundreds of MB);
- :meth:`Architecture.forward`: the NumPy forward serving scores with. It reads every
  shape off the weights, so serving needs only the kind (from the dense delta's
  header) and the weights;
- :meth:`Architecture.weight_shapes`: the names and shapes the Keras model exports
  (what goes to the params topic and into checkpoints).

``tests/udfs/models/test_conformance.py`` checks every registered model for all of
this; :mod:`udfs.models.registry` is where a model is registered.

Examples
--------
The term every model shares, for one example with two dim-1 slots:

>>> w = {"bias": np.array([0.5], np.float32), "first_order_scale": np.array([2.0], np.float32)}
>>> first_order(w, np.array([[[1.0], [2.0]]], np.float32)).tolist()  # 0.5 + 2 * (1 + 2)
[6.5]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    import keras


class Architecture(ABC):
    """A dense model: its Keras build, its NumPy forward and its weights' names.

    Parameters
    ----------
    n_slots : int
        Slots in the input, in the model config's order.
    dim : int
        Embedding dim of every slot (column 0 is the first-order weight).
    hidden : sequence of int
        Widths of the model's MLP, if it has one (``model.hidden``).
    first_order_scale : float
        The constant multiplier on column 0 (``model.first_order_scale``).
    """

    kind: ClassVar[str]  # the model.kind it is registered under

    def __init__(
        self,
        n_slots: int,
        dim: int,
        hidden: Sequence[int] = (64, 32),
        first_order_scale: float = 1.0,
    ) -> None:
        if n_slots < 1 or dim < 1:
            raise ValueError(f"{self.kind} needs n_slots >= 1 and dim >= 1, got {n_slots}, {dim}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"{self.kind}: hidden widths must be positive, got {list(hidden)}")
        self.n_slots = n_slots
        self.dim = dim
        self.hidden = tuple(int(h) for h in hidden)
        self.first_order_scale = float(first_order_scale)

    @abstractmethod
    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every exported weight's name and shape, in export order."""

    def weight_names(self) -> list[str]:
        """The exported weights' names, in export order."""
        return list(self.weight_shapes())

    @abstractmethod
    def keras_model(self) -> keras.Model:
        """A new, unbuilt Keras model whose ``named_weights()`` returns its variables by
        the names of :meth:`weight_shapes`. Import TensorFlow in here, not at the top."""

    def build_keras(self) -> keras.Model:
        """The Keras model, built (its weights created) for ``(batch, n_slots, dim)``."""
        import tensorflow as tf

        model = self.keras_model()
        model(tf.zeros((1, self.n_slots, self.dim)))
        built = {k: tuple(v.shape) for k, v in model.named_weights().items()}
        if built != self.weight_shapes():  # the two lists of one model have drifted apart
            raise TypeError(f"{self.kind}: the Keras model's weights {built} are not the "
                            f"declared {self.weight_shapes()}")
        return model

    @staticmethod
    @abstractmethod
    def forward(weights: Mapping[str, np.ndarray], pooled: np.ndarray) -> np.ndarray:
        """Logits, shape ``(batch,)``, for pooled embeddings ``(batch, slots, dim)``.

        NumPy only. A missing weight raises ``KeyError``, a wrong shape ``ValueError``
        (the serving gate refuses such a model)."""

    def random_weights(self, seed: int = 0, scale: float = 0.5) -> dict[str, np.ndarray]:
        """Weights of the declared names and shapes, normal with std ``scale`` (for
        checks: Keras starts biases at zero, which would hide a forgotten bias)."""
        rng = np.random.default_rng(seed)
        return {k: rng.normal(0, scale, shape).astype(np.float32)
                for k, shape in self.weight_shapes().items()}


def first_order(weights: Mapping[str, np.ndarray], pooled: np.ndarray) -> np.ndarray:
    """The term every model shares: ``first_order_scale * sum of column 0 + bias``.

    Hand-made weights without ``first_order_scale`` use 1.
    """
    scale = weights["first_order_scale"][0] if "first_order_scale" in weights else 1.0
    return pooled[:, :, 0].sum(axis=1) * scale + weights["bias"][0]


def mlp(weights: Mapping[str, np.ndarray], prefix: str, h: np.ndarray) -> np.ndarray:
    """ReLU layers ``{prefix}/0``, ``{prefix}/1``, ... for as many as ``weights`` has."""
    i = 0
    while f"{prefix}/{i}/kernel" in weights:
        h = np.maximum(h @ weights[f"{prefix}/{i}/kernel"] + weights[f"{prefix}/{i}/bias"], 0.0)
        i += 1
    return h


def export_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """A built model's weights by name, as float32 arrays (what goes to the params topic)."""
    return {k: np.asarray(v.numpy(), np.float32) for k, v in model.named_weights().items()}


def import_weights(model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
    """Set a built model's weights from :func:`export_weights` output (same names)."""
    named = model.named_weights()
    if set(weights) != set(named):  # a checkpoint of another kind or shape of model
        raise ValueError(f"weights {sorted(weights)} do not match the model's {sorted(named)}")
    for k, v in named.items():
        v.assign(weights[k])
