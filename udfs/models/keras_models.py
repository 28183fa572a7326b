"""Keras dense parts: DeepFM (the default, as in Monolith's experiments) and LR.

Weights are exported under stable names (``bias``, ``mlp/0/kernel``, ...) so that
serving can score with :func:`udfs.models.numpy_forward` and no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf


def _first_order_scale(model: keras.Model, scale: float) -> keras.Variable:
    # A constant multiplier on column 0. Adagrad moves a row by about its learning rate
    # per step whatever the gradient's size, so this gives the first-order weights
    # ``scale`` times the slot's step without a second optimizer (docs/training.md).
    return model.add_weight(shape=(1,), initializer=keras.initializers.Constant(scale),
                            trainable=False, name="first_order_scale")


class LogisticRegression(keras.Model):
    """logit = global bias + sum over slots of the pooled first-order weight."""

    kind = "lr"

    def __init__(self, first_order_scale: float = 1.0) -> None:
        super().__init__()
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")
        self.first_order_scale = _first_order_scale(self, first_order_scale)

    def call(self, pooled: tf.Tensor) -> tf.Tensor:
        first = tf.reduce_sum(pooled[:, :, 0], axis=1) * self.first_order_scale[0]
        return first + self.bias[0]


class DeepFM(keras.Model):
    """DeepFM (Guo et al. 2017): first-order + FM pairwise + MLP over the factors."""

    kind = "deepfm"

    def __init__(self, hidden: Sequence[int], first_order_scale: float = 1.0) -> None:
        super().__init__()
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")
        self.first_order_scale = _first_order_scale(self, first_order_scale)
        self.mlp = [keras.layers.Dense(h, activation="relu") for h in hidden]
        self.out = keras.layers.Dense(1)

    def call(self, pooled: tf.Tensor) -> tf.Tensor:
        first = tf.reduce_sum(pooled[:, :, 0], axis=1) * self.first_order_scale[0]
        v = pooled[:, :, 1:]  # (batch, slots, k)
        s = tf.reduce_sum(v, axis=1)
        fm = 0.5 * tf.reduce_sum(s * s - tf.reduce_sum(v * v, axis=1), axis=1)
        h = tf.reshape(v, (-1, v.shape[1] * v.shape[2]))
        for layer in self.mlp:
            h = layer(h)
        return first + fm + self.out(h)[:, 0] + self.bias[0]


def build_model(
    kind: str,
    n_slots: int,
    dim: int,
    hidden: Sequence[int] = (64, 32),
    first_order_scale: float = 1.0,
) -> keras.Model:
    """A built (weights created) dense part for ``(batch, n_slots, dim)`` inputs."""
    if kind == "deepfm":
        if dim < 2:
            raise ValueError("deepfm needs slot dim >= 2 (column 0 is the first-order weight)")
        model: keras.Model = DeepFM(hidden, first_order_scale)
    elif kind == "lr":
        model = LogisticRegression(first_order_scale)
    else:
        raise ValueError(f"unknown model kind {kind!r}; known: deepfm, lr")
    model(tf.zeros((1, n_slots, dim)))
    return model


def _named_variables(model: keras.Model) -> dict[str, keras.Variable]:
    named = {"bias": model.bias, "first_order_scale": model.first_order_scale}
    if isinstance(model, DeepFM):
        for i, layer in enumerate([*model.mlp, model.out]):
            tag = "out" if layer is model.out else str(i)
            named[f"mlp/{tag}/kernel"] = layer.kernel
            named[f"mlp/{tag}/bias"] = layer.bias
    return named


def export_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The dense weights by stable name (what goes to the params topic)."""
    return {k: np.asarray(v.numpy(), np.float32) for k, v in _named_variables(model).items()}


def import_weights(model: keras.Model, weights: dict[str, np.ndarray]) -> None:
    """Set the dense weights from :func:`export_weights` output."""
    for k, v in _named_variables(model).items():
        v.assign(weights[k])
