"""The dense parts of the models: one :class:`Architecture` per ``model.kind``.

Each model is one module here (``deepfm.py``, ``lr.py``, ...) holding one class that
owns its Keras build (for the trainer), its NumPy forward (for serving) and its
weights' names; :mod:`udfs.models.registry` lists them by kind. ``base.py`` says what
a model must provide.

This package sits at the bottom of the layers with ``ps`` (``tests/test_layers.py``):
``freshet.config`` validates ``model.kind`` against the registry, and serving scores
with the NumPy forwards, so nothing here imports the project, and TensorFlow is
imported only when a Keras model is built. The names below load on first use
(PEP 562): the config imports the registry at every load, without NumPy.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {  # name -> the module that defines it
    **dict.fromkeys(("UnknownModelKind", "architecture", "model_kinds", "numpy_forward"),
                    "udfs.models.registry"),
    **dict.fromkeys(("Architecture", "export_weights", "import_weights"), "udfs.models.base"),
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'udfs.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
