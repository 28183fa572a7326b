"""Logistic regression: ``logit = bias + first_order_scale * sum over slots of column 0``.

Use it with dim-1 slots (it reads column 0 only).

Examples
--------
>>> w = {"bias": np.array([0.5], np.float32)}   # first_order_scale absent: 1
>>> LogisticRegression.forward(w, np.array([[[1.0, 9.0], [2.0, 9.0]]], np.float32)).tolist()
[3.5]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from udfs.models.base import Architecture, first_order

if TYPE_CHECKING:
    import keras


class LogisticRegression(Architecture):
    """The global bias plus the scaled first-order weights; no factors, no MLP."""

    kind = "lr"

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"bias": (1,), "first_order_scale": (1,)}

    def keras_model(self) -> keras.Model:
        from udfs.models._keras import FirstOrderModel

        class KerasLR(FirstOrderModel):
            def call(self, pooled):  # noqa: ANN001, ANN202
                return self.first_order(pooled) + self.bias[0]

        return KerasLR(self.first_order_scale)

    @staticmethod
    def forward(weights: Mapping[str, np.ndarray], pooled: np.ndarray) -> np.ndarray:
        return first_order(weights, np.asarray(pooled, np.float32))
