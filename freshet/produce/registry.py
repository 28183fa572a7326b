"""The event sources by name: the one list of them, each checked as it is registered.

``freshet produce <name>`` has one subcommand per registered source, with the
source's own options. :func:`register_source` runs every check of
:func:`freshet.produce.base.check_source` on the source's small :meth:`example
<freshet.produce.base.EventSource.example>` before accepting it, so a source that
emits events out of order, or invalid ones, is refused at once rather than found out
by the joiner. ``tests/freshet/produce/test_conformance.py`` runs the checks over
:func:`sources`, never over a list of its own.

Examples
--------
>>> sorted(sources())
['file', 'movielens', 'synthetic']
>>> source("synthetic").name
'synthetic'
>>> source("kafka")
Traceback (most recent call last):
...
freshet.produce.base.SourceError: unknown source 'kafka'; known: file, movielens, synthetic
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeVar

from freshet.produce.base import EventSource, SourceError, check_source
from freshet.produce.file import FileSource
from freshet.produce.movielens import MovieLensSource
from freshet.produce.synthetic import SyntheticSource

S = TypeVar("S", bound=type[EventSource])

_SOURCES: dict[str, type[EventSource]] = {}


def register_source(cls: S) -> S:
    """Add ``cls`` under its ``name``, after its example passes every check (usable
    as a class decorator). Raises :class:`~freshet.produce.base.SourceCheckError` for
    a failed check and :class:`~freshet.produce.base.SourceError` for a name taken by
    another class."""
    if not (isinstance(cls, type) and issubclass(cls, EventSource)):
        raise SourceError(f"{cls!r} is not an EventSource subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise SourceError(f"{cls.__qualname__} has no name")
    if _SOURCES.get(name, cls) is not cls:
        raise SourceError(f"source name {name!r} is taken by {_SOURCES[name].__qualname__}")
    check_source(cls.example())
    _SOURCES[name] = cls
    return cls


def sources() -> Mapping[str, type[EventSource]]:
    """Every registered source by name (read-only)."""
    return MappingProxyType(_SOURCES)


def source(name: str) -> type[EventSource]:
    """The source registered as ``name``."""
    if name not in _SOURCES:
        raise SourceError(f"unknown source {name!r}; known: {', '.join(sorted(_SOURCES))}")
    return _SOURCES[name]


for _cls in (FileSource, MovieLensSource, SyntheticSource):
    register_source(_cls)
