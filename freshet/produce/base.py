"""What an event source is, and the checks every source passes.

A source turns some input (a data set, a generator, a user's log file) into
:class:`~freshet.topics.Impression` and :class:`~freshet.topics.Action` events in
event-time order, which :func:`freshet.produce.sender.send` puts on Kafka. Each
source is an :class:`EventSource` subclass in its own module under
``freshet/produce/``; ``freshet.produce.registry`` lists them, runs :func:`check_source`
on each as it is registered, and ``freshet produce <name>`` reads the registry.

The checks (River's ``checks`` shape: small functions, each over a small instance's
events, yielded by :func:`yield_checks`):

- events come in non-decreasing event time (``ts``);
- every event round-trips through its schema (``to_json`` then ``from_json``);
- every action refers to an impression (same ``request_id`` and ``item_id``) that came
  before it, and is not earlier than it in event time;
- every impression carries exactly the slots the source declares.

Examples
--------
>>> from freshet.topics import Action, Impression
>>> class Two(EventSource):
...     name = "two"
...     help = "an impression and its click"
...     slots = ("user_id",)
...     @classmethod
...     def from_args(cls, args, cfg): return cls()
...     @classmethod
...     def example(cls): return cls()
...     def events(self, rejects=None):
...         yield Impression("r", 1, 2, 10, {"user_id": [2]})
...         yield Action("r", 1, 2, 12, "click")
>>> check_source(Two())
>>> [check.__name__ for check in yield_checks(Two())][:2]
['check_not_empty', 'check_event_time_order']
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from freshet.config import Config
from freshet.errors import FreshetError
from freshet.topics import Action, Impression

Event = Impression | Action


class SourceError(FreshetError, ValueError):
    """A source cannot be built from what it was given (a bad path, mapping or option)."""


class SourceCheckError(FreshetError, AssertionError):
    """A source broke one of the checks every source must pass."""


@dataclass(frozen=True)
class Rejected:
    """An input record a source could not turn into events."""

    line: int  # 1-based line (or record) number in the input
    reason: str
    raw: str  # the record as read


@dataclass
class Rejects:
    """The records a source rejected: counted by reason, the first ``keep`` kept for the
    report, and each passed to ``sink`` (e.g. a dead-letter producer) as it is found.

    Examples
    --------
    >>> r = Rejects(keep=1)
    >>> r.add(3, "ts: not a number", "a,b,x")
    >>> r.add(7, "ts: not a number", "c,d,y")
    >>> r.count, r.by_reason, [x.line for x in r.first]
    (2, Counter({'ts: not a number': 2}), [3])
    >>> print(r.summary("log.csv"))
    2 malformed records in log.csv (skipped), by reason:
      2  ts: not a number
    the first:
      line 3: ts: not a number
        a,b,x
    """

    sink: Callable[[Rejected], None] | None = None
    keep: int = 5
    count: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    first: list[Rejected] = field(default_factory=list)

    def add(self, line: int, reason: str, raw: str) -> None:
        rejected = Rejected(line, reason, raw)
        self.count += 1
        self.by_reason[reason] += 1
        if len(self.first) < self.keep:
            self.first.append(rejected)
        if self.sink is not None:
            self.sink(rejected)

    def summary(self, where: str) -> str:
        """What was rejected: the count, the reasons by count, the first few records."""
        lines = [f"{self.count:,} malformed records in {where} (skipped), by reason:"]
        lines += [f"  {n:,}  {reason}" for reason, n in self.by_reason.most_common(10)]
        if len(self.by_reason) > 10:
            lines.append(f"  ... and {len(self.by_reason) - 10} other reasons")
        lines.append("the first:")
        for r in self.first:
            lines += [f"  line {r.line}: {r.reason}", f"    {r.raw[:200]}"]
        return "\n".join(lines)


class EventSource(ABC):
    """A named stream of impressions and actions in event-time order.

    A subclass sets ``name`` (its ``freshet produce`` subcommand) and ``help``, declares
    ``slots`` (the slot names every impression carries; a property when they depend on
    the instance), and implements :meth:`from_args`, :meth:`example` and
    :meth:`events`.
    """

    name: ClassVar[str]
    help: ClassVar[str]

    @property
    @abstractmethod
    def slots(self) -> tuple[str, ...]:
        """The slot names every impression of this source carries."""

    @classmethod  # noqa: B027 (a source without options adds none)
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the source's own options to its ``freshet produce <name>`` parser."""

    @classmethod
    @abstractmethod
    def from_args(cls, args: argparse.Namespace, cfg: Config) -> EventSource:
        """The source the parsed command line asks for, for the model ``cfg`` configures
        (a source bucketises its numeric slots' values); :class:`SourceError` if it
        can't."""

    @classmethod
    @abstractmethod
    def example(cls) -> EventSource:
        """A small instance, quick to run and needing nothing downloaded: what the
        checks run on when the source is registered."""

    @abstractmethod
    def events(self, rejects: Rejects | None = None) -> Iterator[Event]:
        """Impressions and actions in non-decreasing event time. A record that cannot
        become an event is added to ``rejects`` (when given), never dropped unsaid."""

    def describe(self) -> str:
        """One line for the console before producing."""
        return f"producing from {self.name} ..."

    def origin(self) -> str:
        """Where the events come from, as a dead letter's ``source`` names it."""
        return self.name


def check_not_empty(source: EventSource, events: Sequence[Event]) -> None:
    """The example has impressions and actions, so the other checks test something."""
    kinds = {type(e) for e in events}
    if kinds != {Impression, Action}:
        raise SourceCheckError(f"{source.name}: its example must give impressions and "
                               f"actions; it gave {sorted(k.__name__ for k in kinds)}")


def check_event_time_order(source: EventSource, events: Sequence[Event]) -> None:
    """Events come in non-decreasing event time."""
    for i, (a, b) in enumerate(zip(events, events[1:], strict=False)):
        if b.ts < a.ts:
            raise SourceCheckError(f"{source.name}: event {i + 1} (ts {b.ts}) comes after "
                                   f"event {i} (ts {a.ts}): not in event-time order")


def check_schema_round_trip(source: EventSource, events: Sequence[Event]) -> None:
    """Every event is valid for its topic's schema: it reads back equal from its JSON."""
    for i, ev in enumerate(events):
        if not isinstance(ev, Impression | Action):
            raise SourceCheckError(f"{source.name}: event {i} is a {type(ev).__name__}, "
                                   "not an Impression or Action")
        try:
            back = type(ev).from_json(ev.to_json())
        except (ValueError, TypeError) as e:
            raise SourceCheckError(f"{source.name}: event {i} is not schema-valid: {e}") from e
        if back != ev:
            raise SourceCheckError(f"{source.name}: event {i} does not round-trip through "
                                   f"JSON: {ev!r} read back as {back!r}")


def check_actions_follow_impressions(source: EventSource, events: Sequence[Event]) -> None:
    """Every action refers to an impression (its join key: request and item) that came
    before it in the stream, and is not earlier than it in event time."""
    shown: dict[tuple[str, int], int] = {}
    for i, ev in enumerate(events):
        key = (ev.request_id, ev.item_id)
        if isinstance(ev, Impression):
            shown.setdefault(key, ev.ts)
        elif key not in shown:
            raise SourceCheckError(f"{source.name}: action {i} ({ev.action} on request "
                                   f"{ev.request_id!r}, item {ev.item_id}) has no earlier "
                                   "impression")
        elif ev.ts < shown[key]:
            raise SourceCheckError(f"{source.name}: action {i} (ts {ev.ts}) is earlier than "
                                   f"its impression (ts {shown[key]})")


def check_declared_slots(source: EventSource, events: Sequence[Event]) -> None:
    """Every impression carries exactly the slots the source declares."""
    declared = set(source.slots)
    for i, ev in enumerate(events):
        if isinstance(ev, Impression) and set(ev.slots) != declared:
            raise SourceCheckError(f"{source.name}: impression {i} carries slots "
                                   f"{sorted(ev.slots)}; the source declares "
                                   f"{sorted(declared)}")


CHECKS = (check_not_empty, check_event_time_order, check_schema_round_trip,
          check_actions_follow_impressions, check_declared_slots)


def yield_checks(source: EventSource) -> Iterator[Callable[[EventSource, Sequence[Event]], None]]:
    """The checks that ``source`` must pass, each ``check(source, events)``."""
    yield from CHECKS


def check_source(source: EventSource) -> None:
    """Run every check on ``source``'s events; :class:`SourceCheckError` on the first
    that fails (and on a record the source rejected: an example has none)."""
    rejects = Rejects()
    events = list(source.events(rejects))
    if rejects.count:
        raise SourceCheckError(f"{source.name}: its example rejected records:\n"
                               + rejects.summary(source.name))
    for check in yield_checks(source):
        check(source, events)
