"""What every registered event source must do, checked for each source in the registry.

The list of sources is the registry (``sources()``), never a list kept here: a source
is checked the moment it is registered, and here each check runs on its own so a
failure names the source and the check. Each check is also shown to fail: a source
planted with the fault it looks for is refused by ``register_source``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from freshet.config import Config, load_config
from freshet.produce.base import (
    CHECKS,
    Event,
    EventSource,
    Rejects,
    SourceCheckError,
    SourceError,
    yield_checks,
)
from freshet.produce.registry import register_source, source, sources
from freshet.topics import Action, Impression

CFG = load_config(path=None, environ={})


@pytest.fixture(params=sorted(sources()))
def src(request: pytest.FixtureRequest) -> EventSource:
    return sources()[request.param].example()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_every_source_passes_every_check(src: EventSource, check) -> None:
    assert check in list(yield_checks(src))
    check(src, list(src.events()))


def test_every_source_has_a_cli_subcommand_with_its_options() -> None:
    from freshet.app.cli import parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    produce = sub.choices["produce"]
    by_source = next(a for a in produce._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(by_source.choices) == sorted(sources())


def test_the_cli_keeps_the_existing_flags() -> None:
    from freshet.app.cli import parser

    a = parser().parse_args(["produce", "movielens", "--speed", "10", "--action-delay-ms", "1"])
    assert (a.source, a.speed, a.rate, source(a.source).from_args(a, CFG).action_delay_ms) == (
        "movielens", 10.0, 0.0, 1)
    a = parser().parse_args(["produce", "synthetic", "--impressions", "5", "--seed", "2",
                             "--rate", "100", "--shift-at", "0.3", "--p-new-user", "0.1",
                             "--p-new-item", "0.2"])
    spec = source(a.source).from_args(a, CFG).spec
    assert (spec.impressions, spec.seed, spec.shift_at, spec.p_new_user, spec.p_new_item,
            spec.action_delay_ms, a.rate) == (5, 2, 0.3, 0.1, 0.2, 2000, 100.0)


class Planted(EventSource):
    """A good source; subclasses plant one fault each."""

    name = "planted"
    help = "a test source"
    slots = ("user_id",)

    @classmethod
    def from_args(cls, args: argparse.Namespace, cfg: Config) -> EventSource:
        return cls()

    @classmethod
    def example(cls) -> EventSource:
        return cls()

    def stream(self) -> list[Event]:
        return [Impression("r1", 1, 2, 10, {"user_id": [2]}),
                Impression("r2", 1, 3, 20, {"user_id": [3]}),
                Action("r1", 1, 2, 30, "click")]

    def events(self, rejects: Rejects | None = None) -> Iterator[Event]:
        yield from self.stream()


class OutOfOrder(Planted):
    def stream(self) -> list[Event]:
        s = super().stream()
        return [s[1], s[0], s[2]]


class Invalid(Planted):
    def stream(self) -> list[Event]:
        return [*super().stream(), Action("r2", 1, 3, 40, "wink")]


class Orphan(Planted):
    def stream(self) -> list[Event]:
        return [*super().stream(), Action("r9", 1, 3, 40, "click")]


class ActionOnAnotherItem(Planted):
    def stream(self) -> list[Event]:
        return [*super().stream(), Action("r2", 5, 3, 40, "click")]


class UndeclaredSlot(Planted):
    def stream(self) -> list[Event]:
        return [*super().stream(), Impression("r3", 1, 2, 50, {"user_id": [2], "genre": [1]})]


class Empty(Planted):
    def stream(self) -> list[Event]:
        return super().stream()[:2]


class Rejecting(Planted):
    def events(self, rejects: Rejects | None = None) -> Iterator[Event]:
        if rejects is not None:
            rejects.add(1, "bad", "x")
        yield from self.stream()


@pytest.mark.parametrize(("cls", "message"), [
    (OutOfOrder, "event 1 (ts 10) comes after event 0 (ts 20)"),
    (Invalid, "event 3 is not schema-valid: action: 'wink'"),
    (Orphan, "action 3 (click on request 'r9', item 1) has no earlier impression"),
    (ActionOnAnotherItem, "action 3 (click on request 'r2', item 5) has no earlier impression"),
    (UndeclaredSlot, "impression 3 carries slots ['genre', 'user_id']"),
    (Empty, "its example must give impressions and actions"),
    (Rejecting, "its example rejected records"),
])
def test_registering_a_faulty_source_fails_its_check(cls: type[Planted], message: str) -> None:
    with pytest.raises(SourceCheckError, match=re.escape(message)):
        register_source(cls)
    assert "planted" not in sources()


def test_a_good_source_registers_once_and_its_name_is_its_own() -> None:
    try:
        assert register_source(Planted) is Planted and source("planted") is Planted
        register_source(Planted)  # again: the same class, no error

        class Other(Planted):
            pass

        with pytest.raises(SourceError, match="source name 'planted' is taken by Planted"):
            register_source(Other)
    finally:
        from freshet.produce import registry

        registry._SOURCES.pop("planted", None)
