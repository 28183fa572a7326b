"""Adding a table or optimizer kind: checked first, then registered.

The registries themselves live in :mod:`ps.config` (``TableConfig.kinds``,
``OptimizerConfig.kinds``), which must not load NumPy; registering through here runs
the conformance checks of :mod:`ps.checks` on the new kind with each of its
``check_params``, and a kind that fails one is not registered.

Examples
--------
>>> from dataclasses import dataclass, field
>>> from ps.config import HashedTableConfig, table_kinds
>>> @register_table
... @dataclass(frozen=True)
... class TinyHashedConfig(HashedTableConfig):
...     rows: int = 128
...     kind: str = field(default="tiny-hashed", init=False, repr=False)
>>> "tiny-hashed" in table_kinds()
True
>>> _ = TableConfig.kinds.pop("tiny-hashed")  # leave the registry as it was
"""

from __future__ import annotations

from typing import TypeVar

from ps.checks import check_optimizer, check_table
from ps.config import OptimizerConfig, TableConfig, add_kind

K = TypeVar("K", bound=type)


def register_table(cls: K) -> K:
    """Check the table kind ``cls`` (a dataclass subclass of :class:`TableConfig`
    with a ``kind``) with :func:`~ps.checks.check_table`, then register it."""
    for params in cls.check_params:
        check_table(cls(**params))
    return add_kind(TableConfig, cls)


def register_optimizer(cls: K) -> K:
    """Check the optimizer kind ``cls`` with :func:`~ps.checks.check_optimizer`, then
    register it. Its ``code`` names a branch of :func:`ps.optimizers.step`."""
    for params in cls.check_params:
        check_optimizer(cls(**params))
    return add_kind(OptimizerConfig, cls)
