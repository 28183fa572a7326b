"""DeepFM (Guo et al. 2017), the default model, as in Monolith's experiments.

``logit = bias + first_order_scale * sum of column 0 + FM pairwise interactions of the
factor vectors (columns 1:) + an MLP over the concatenated factors``.

Examples
--------
With zero MLP weights, DeepFM is first-order + FM; one example worked by hand:

>>> arch = DeepFM(n_slots=2, dim=3, hidden=[4])
>>> w = {k: np.zeros(s, np.float32) for k, s in arch.weight_shapes().items()}
>>> w["first_order_scale"][0] = 1.0
>>> pooled = np.array([[[1.0, 2.0, 3.0], [0.5, 4.0, -1.0]]], np.float32)
>>> DeepFM.forward(w, pooled).tolist()  # first order 1 + 0.5; FM <(2, 3), (4, -1)> = 5
[6.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from udfs.models.base import Architecture, first_order, mlp

if TYPE_CHECKING:
    import keras


class DeepFM(Architecture):
    """First-order + FM pairwise + MLP (``model.hidden``) over the factor vectors."""

    kind = "deepfm"

    def __init__(self, n_slots: int, dim: int, hidden: Sequence[int] = (64, 32),
                 first_order_scale: float = 1.0) -> None:
        super().__init__(n_slots, dim, hidden, first_order_scale)
        if dim < 2:
            raise ValueError("deepfm needs slot dim >= 2 (column 0 is the first-order weight)")

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"bias": (1,), "first_order_scale": (1,)}
        width = self.n_slots * (self.dim - 1)
        for i, h in enumerate(self.hidden):
            shapes[f"mlp/{i}/kernel"], shapes[f"mlp/{i}/bias"] = (width, h), (h,)
            width = h
        shapes["mlp/out/kernel"], shapes["mlp/out/bias"] = (width, 1), (1,)
        return shapes

    def keras_model(self) -> keras.Model:
        import keras
        import tensorflow as tf

        from udfs.models._keras import FirstOrderModel, named_layers

        class KerasDeepFM(FirstOrderModel):
            def __init__(self, hidden: Sequence[int], first_order_scale: float) -> None:
                super().__init__(first_order_scale)
                self.mlp = [keras.layers.Dense(h, activation="relu") for h in hidden]
                self.out = keras.layers.Dense(1)

            def call(self, pooled):  # noqa: ANN001, ANN202
                first = self.first_order(pooled)
                v = pooled[:, :, 1:]  # (batch, slots, k)
                s = tf.reduce_sum(v, axis=1)
                fm = 0.5 * tf.reduce_sum(s * s - tf.reduce_sum(v * v, axis=1), axis=1)
                h = tf.reshape(v, (-1, v.shape[1] * v.shape[2]))
                for layer in self.mlp:
                    h = layer(h)
                return first + fm + self.out(h)[:, 0] + self.bias[0]

            def named_weights(self) -> dict[str, keras.Variable]:
                return {**super().named_weights(),
                        **named_layers("mlp", [*self.mlp, self.out],
                                       [*map(str, range(len(self.mlp))), "out"])}

        return KerasDeepFM(self.hidden, self.first_order_scale)

    @staticmethod
    def forward(weights: Mapping[str, np.ndarray], pooled: np.ndarray) -> np.ndarray:
        pooled = np.asarray(pooled, np.float32)
        logit = first_order(weights, pooled)
        v = pooled[:, :, 1:]
        s = v.sum(axis=1)
        logit = logit + 0.5 * (s * s - (v * v).sum(axis=1)).sum(axis=1)
        h = mlp(weights, "mlp", v.reshape(len(v), -1))
        return logit + (h @ weights["mlp/out/kernel"] + weights["mlp/out/bias"])[:, 0]
