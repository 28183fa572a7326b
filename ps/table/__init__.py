"""Embedding tables: an index from int64 IDs to rows of a dense float32 arena.

- :class:`CuckooTable`: collisionless, bucketized cuckoo hashing (the default).
- :class:`HashedTable`: the fixed-size hashing-trick baseline (collisions allowed).
"""

from ps.table.base import Table
from ps.table.cuckoo import CuckooTable
from ps.table.hashed import HashedTable
from ps.table.rows import EMPTY_ID, RowStore

__all__ = ["EMPTY_ID", "CuckooTable", "HashedTable", "RowStore", "Table"]
