"""DCN-v2 (Wang et al. 2021, "DCN V2: Improved Deep & Cross Network"), parallel form.

``x0`` is the concatenation of every slot's factor vector (columns ``1:``). A stack of
cross layers, ``x_{l+1} = x0 * (x_l W_l + b_l) + x_l``, builds explicit feature
crosses of growing order (layer ``l`` reaches order ``l + 1``); beside it an MLP
(``model.hidden``, ReLU) reads ``x0`` too, and one linear head reads both:

``logit = bias + first_order_scale * sum of column 0 + [x_L, mlp(x0)] @ out``

Column 0 stays out of ``x0``: it enters only through the first-order term, as in
every model here, so the trainer's per-example first-order steps hold.

Examples
--------
One slot, one factor, one cross layer with ``W = 2, b = 1`` and no MLP: with factor
``x0 = 3``, the cross gives ``3 * (3 * 2 + 1) + 3 = 24``; the head doubles it.

>>> arch = DCN(n_slots=1, dim=2, hidden=[], cross_layers=1)
>>> w = {k: np.zeros(s, np.float32) for k, s in arch.weight_shapes().items()}
>>> w["cross/0/kernel"][:] = 2.0; w["cross/0/bias"][:] = 1.0; w["out/kernel"][:] = 2.0
>>> w["first_order_scale"][:] = 1.0
>>> DCN.forward(w, np.array([[[0.5, 3.0]]], np.float32)).tolist()  # 0.5 + 2 * 24
[48.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from udfs.models.base import Architecture, first_order, mlp

if TYPE_CHECKING:
    import keras


class DCN(Architecture):
    """First-order + DCN-v2 cross layers and an MLP in parallel over the factors.

    ``cross_layers`` is fixed here rather than a config field, so that adding the model
    changed no config: three layers reach crosses of degree 4 in ``x0`` at the cost of
    three ``(d, d)`` products, ``d = slots * (dim - 1)``.
    """

    kind = "dcn"

    def __init__(self, n_slots: int, dim: int, hidden: Sequence[int] = (64, 32),
                 first_order_scale: float = 1.0, cross_layers: int = 3) -> None:
        super().__init__(n_slots, dim, hidden, first_order_scale)
        if dim < 2:
            raise ValueError("dcn needs slot dim >= 2 (column 0 is the first-order weight)")
        if cross_layers < 1:
            raise ValueError(f"dcn needs at least one cross layer, got {cross_layers}")
        self.cross_layers = cross_layers

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        d = self.n_slots * (self.dim - 1)
        shapes: dict[str, tuple[int, ...]] = {"bias": (1,), "first_order_scale": (1,)}
        for i in range(self.cross_layers):
            shapes[f"cross/{i}/kernel"], shapes[f"cross/{i}/bias"] = (d, d), (d,)
        width = d
        for i, h in enumerate(self.hidden):
            shapes[f"deep/{i}/kernel"], shapes[f"deep/{i}/bias"] = (width, h), (h,)
            width = h
        head = d + (self.hidden[-1] if self.hidden else 0)
        shapes["out/kernel"], shapes["out/bias"] = (head, 1), (1,)
        return shapes

    def keras_model(self) -> keras.Model:
        import keras
        import tensorflow as tf

        from udfs.models._keras import FirstOrderModel, named_layers

        d = self.n_slots * (self.dim - 1)

        class KerasDCN(FirstOrderModel):
            def __init__(self, cross_layers: int, hidden: Sequence[int],
                         first_order_scale: float) -> None:
                super().__init__(first_order_scale)
                self.cross = [keras.layers.Dense(d) for _ in range(cross_layers)]
                self.deep = [keras.layers.Dense(h, activation="relu") for h in hidden]
                self.out = keras.layers.Dense(1)

            def call(self, pooled):  # noqa: ANN001, ANN202
                x0 = tf.reshape(pooled[:, :, 1:], (-1, d))
                x = x0
                for layer in self.cross:
                    x = x0 * layer(x) + x
                h = x0
                for layer in self.deep:
                    h = layer(h)
                head = tf.concat([x, h], axis=1) if self.deep else x
                return self.first_order(pooled) + self.out(head)[:, 0] + self.bias[0]

            def named_weights(self) -> dict[str, keras.Variable]:
                return {**super().named_weights(), **named_layers("cross", self.cross),
                        **named_layers("deep", self.deep),
                        "out/kernel": self.out.kernel, "out/bias": self.out.bias}

        return KerasDCN(self.cross_layers, self.hidden, self.first_order_scale)

    @staticmethod
    def forward(weights: Mapping[str, np.ndarray], pooled: np.ndarray) -> np.ndarray:
        pooled = np.asarray(pooled, np.float32)
        x0 = pooled[:, :, 1:].reshape(len(pooled), -1)
        x, i = x0, 0
        while f"cross/{i}/kernel" in weights:
            x = x0 * (x @ weights[f"cross/{i}/kernel"] + weights[f"cross/{i}/bias"]) + x
            i += 1
        if "deep/0/kernel" in weights:
            x = np.concatenate([x, mlp(weights, "deep", x0)], axis=1)
        return first_order(weights, pooled) + (x @ weights["out/kernel"]
                                               + weights["out/bias"])[:, 0]
