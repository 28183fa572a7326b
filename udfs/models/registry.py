"""The dense models by ``model.kind``: the one list of them.

A model is registered by one line in ``_HOME`` (kind -> ``module:class``).
``freshet.config`` checks ``model.kind`` against :func:`model_kinds` when a config is
loaded; the trainer builds :func:`architecture` of it; the trainer's dense delta
carries the kind in its header, and serving scores with :func:`numpy_forward` of that
kind, refusing one that is not registered. ``tests/udfs/models/test_conformance.py``
checks every kind listed here.

Examples
--------
>>> model_kinds()
('dcn', 'deepfm', 'lr')
>>> architecture("lr").kind
'lr'
>>> architecture("fm")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
udfs.models.registry.UnknownModelKind: unknown model kind 'fm'; known: ...
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from freshet.errors import FreshetError

if TYPE_CHECKING:
    import numpy as np

    from udfs.models.base import Architecture

# Names, not imports: the config checks model.kind against these at every load, and
# must not pay for NumPy (nor a model's TensorFlow half) to do so.
_HOME = {
    "dcn": "udfs.models.dcn:DCN",
    "deepfm": "udfs.models.deepfm:DeepFM",
    "lr": "udfs.models.lr:LogisticRegression",
}


class UnknownModelKind(FreshetError, ValueError):
    """A model kind that is not registered (config, dense delta header or caller)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown model kind {kind!r}; known: {', '.join(model_kinds())}")
        self.kind = kind


def model_kinds() -> tuple[str, ...]:
    """Every registered ``model.kind``, sorted.

    Examples
    --------
    >>> "deepfm" in model_kinds()
    True
    """
    return tuple(sorted(_HOME))


@functools.cache
def architecture(kind: str) -> type[Architecture]:
    """The :class:`~udfs.models.base.Architecture` registered as ``kind``.

    Imports the model's module (NumPy only; its Keras half imports TensorFlow when
    built). Raises :class:`UnknownModelKind` for a kind that is not registered.

    Examples
    --------
    >>> arch = architecture("deepfm")(n_slots=3, dim=4, hidden=[8])
    >>> arch.weight_names()[:3]
    ['bias', 'first_order_scale', 'mlp/0/kernel']
    """
    from udfs.models.base import Architecture

    if kind not in _HOME:
        raise UnknownModelKind(kind)
    module, _, name = _HOME[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Architecture)) or cls.kind != kind:
        raise TypeError(f"{_HOME[kind]} is registered as {kind!r} but is not an "
                        f"Architecture of that kind")
    return cls


def numpy_forward(
    weights: Mapping[str, np.ndarray], pooled: np.ndarray, kind: str
) -> np.ndarray:
    """Logits ``(batch,)`` of the ``kind`` model for pooled embeddings ``(batch, slots,
    dim)``, in NumPy: what serving runs. ``kind`` comes from the dense delta's header;
    an unregistered one raises :class:`UnknownModelKind`.

    Examples
    --------
    >>> import numpy as np
    >>> w = {"bias": np.array([0.5], np.float32)}
    >>> numpy_forward(w, np.array([[[1.0], [2.0]]], np.float32), "lr").tolist()
    [3.5]
    >>> numpy_forward(w, np.zeros((1, 2, 1), np.float32), "")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    udfs.models.registry.UnknownModelKind: unknown model kind ''; known: ...
    """
    return architecture(kind).forward(weights, pooled)
