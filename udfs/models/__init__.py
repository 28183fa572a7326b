"""The dense parts of the models: one :class:`~udfs.models.base.Architecture` per ``model.kind``.

Each model is one module here (``deepfm.py``, ``lr.py``, ...) holding one class that
owns its Keras build (for the trainer), its NumPy forward (for serving) and its
weights' names; :mod:`udfs.models.registry` lists them by kind. ``base.py`` says what
a model must provide.

This package sits at the bottom of the layers with ``ps`` (``tests/test_layers.py``):
``freshet.config`` validates ``model.kind`` against the registry, and serving scores
with the NumPy forwards, so nothing here imports the project but its root exception
(:mod:`freshet.errors`), and TensorFlow is
imported only when a Keras model is built. This file imports only the registry, which
needs neither NumPy nor TensorFlow (the config checks ``model.kind`` at every load);
what a model must provide is in :mod:`udfs.models.base`.
"""

from __future__ import annotations

from udfs.models.registry import UnknownModelKind, architecture, model_kinds, numpy_forward

__all__ = ["UnknownModelKind", "architecture", "model_kinds", "numpy_forward"]
