"""Freshet's parameter server library: collisionless embedding tables (after Monolith).

Start with :class:`EmbeddingCollection`; ``docs/ps.md`` explains the design.

The names below are imported on first use: ``freshet.config`` imports
:mod:`ps.config`, which runs this file, and every command and job client loads the
config, so this must not pull in numba, llvmlite and pyarrow (about 0.4 s) for them.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {  # name -> the module that defines it
    **dict.fromkeys(("SlotRows", "from_batch", "from_ipc", "to_batch", "to_ipc"), "ps.batch"),
    "EmbeddingCollection": "ps.collection",
    **dict.fromkeys(("AdmissionFilter", "CountMinSketch"), "ps.filters"),
    **dict.fromkeys(("FTRL", "SGD", "Adagrad", "Optimizer"), "ps.optimizers"),
    "EmbeddingSlot": "ps.slot",
    **dict.fromkeys(("EMPTY_ID", "CuckooTable", "HashedTable", "RowStore", "Table"), "ps.table"),
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'ps' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
