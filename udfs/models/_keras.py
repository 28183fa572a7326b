"""Keras pieces the models share. Only :meth:`Architecture.keras_model` implementations
import this (it imports TensorFlow, which serving never loads)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


class FirstOrderModel(keras.Model):
    """The part every model shares: a global bias and the scaled first-order sum."""

    def __init__(self, first_order_scale: float) -> None:
        super().__init__()
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")
        # A constant multiplier on column 0. Adagrad moves a row by about its learning
        # rate per step whatever the gradient's size, so this gives the first-order
        # weights `scale` times the slot's step without a second optimizer
        # (docs/training.md).
        self.first_order_scale = self.add_weight(
            shape=(1,), initializer=keras.initializers.Constant(first_order_scale),
            trainable=False, name="first_order_scale")

    def first_order(self, pooled: tf.Tensor) -> tf.Tensor:
        """``first_order_scale * sum over slots of column 0`` (the bias is added apart)."""
        return tf.reduce_sum(pooled[:, :, 0], axis=1) * self.first_order_scale[0]

    def named_weights(self) -> dict[str, keras.Variable]:
        return {"bias": self.bias, "first_order_scale": self.first_order_scale}


def named_layers(prefix: str, layers: Sequence[keras.layers.Dense],
                 tags: Sequence[str] | None = None) -> dict[str, keras.Variable]:
    """``{prefix}/{tag}/kernel`` and ``/bias`` of each layer (tags default to 0, 1, ...)."""
    out = {}
    for tag, layer in zip(tags or [str(i) for i in range(len(layers))], layers, strict=True):
        out[f"{prefix}/{tag}/kernel"] = layer.kernel
        out[f"{prefix}/{tag}/bias"] = layer.bias
    return out
