"""Freshet's parameter server library: collisionless embedding tables (after Monolith).

Start with :class:`EmbeddingCollection`; ``docs/ps.md`` explains the design.
"""

from ps.batch import SlotRows, from_batch, from_ipc, to_batch, to_ipc
from ps.collection import EmbeddingCollection
from ps.filters import AdmissionFilter, CountMinSketch
from ps.optimizers import FTRL, SGD, Adagrad, make_optimizer
from ps.slot import EmbeddingSlot
from ps.table import EMPTY_ID, CuckooTable, HashedTable, RowStore, Table

__all__ = [
    "EMPTY_ID",
    "FTRL",
    "SGD",
    "Adagrad",
    "AdmissionFilter",
    "CountMinSketch",
    "CuckooTable",
    "EmbeddingCollection",
    "EmbeddingSlot",
    "HashedTable",
    "RowStore",
    "SlotRows",
    "Table",
    "from_batch",
    "from_ipc",
    "make_optimizer",
    "to_batch",
    "to_ipc",
]
