"""Serving side of the parameter server: what a ranking process holds and how it
keeps it fresh.

- :mod:`ps.serving.state`: tables + dense model with per-update atomic visibility;
- :mod:`ps.serving.store`: incremental, atomic saves (RocksDB) with the loader's position;
- :mod:`ps.serving.scoring`: pooling + dense forward for a request;
- :mod:`ps.serving.demotion`, :mod:`ps.serving.metrics`; the Kafka feeds are in ``server/``.

``docs/serving.md`` explains the design; ``jobs/serve.py`` is the HTTP process.
"""

from ps.serving.state import DenseModel, ServingState, View
from ps.serving.store import Position, ServingStore

__all__ = [
    "DenseModel",
    "Position",
    "ServingState",
    "ServingStore",
    "View",
]
