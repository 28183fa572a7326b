"""Score with the exported dense weights in NumPy: what serving runs (no TensorFlow).

Examples
--------
>>> w = {"bias": np.array([0.5], np.float32)}
>>> pooled = np.array([[[1.0, 9.0], [2.0, 9.0]]], np.float32)  # 1 example, 2 slots, dim 2
>>> numpy_forward(w, pooled).tolist()
[3.5]
"""

from __future__ import annotations

import numpy as np


def numpy_forward(
    weights: dict[str, np.ndarray], pooled: np.ndarray, kind: str | None = None
) -> np.ndarray:
    """Logits, shape ``(batch,)``, for pooled embeddings of shape ``(batch, slots, dim)``.

    ``kind`` is ``"deepfm"`` or ``"lr"``; by default it is read off the weight names.
    """
    pooled = np.asarray(pooled, np.float32)
    kind = kind or ("deepfm" if "mlp/out/kernel" in weights else "lr")
    scale = weights["first_order_scale"][0] if "first_order_scale" in weights else 1.0
    logit = pooled[:, :, 0].sum(axis=1) * scale + weights["bias"][0]
    if kind == "lr":
        return logit
    v = pooled[:, :, 1:]
    s = v.sum(axis=1)
    logit = logit + 0.5 * (s * s - (v * v).sum(axis=1)).sum(axis=1)
    h = v.reshape(len(v), -1)
    i = 0
    while f"mlp/{i}/kernel" in weights:
        h = np.maximum(h @ weights[f"mlp/{i}/kernel"] + weights[f"mlp/{i}/bias"], 0.0)
        i += 1
    return logit + (h @ weights["mlp/out/kernel"] + weights["mlp/out/bias"])[:, 0]
