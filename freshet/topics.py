"""Topic names and the events that travel on them: the one place that knows both.

Every event is a JSON object with a schema version ``v``; ``docs/events.md`` documents
them. Parameter deltas on ``params`` are Arrow IPC (see ``ps.delta``), not JSON.

Examples
--------
>>> imp = Impression(request_id="r1", item_id=7, user_id=3, ts=1000,
...                  slots={"user_id": [3], "item_id": [7]})
>>> Impression.from_json(imp.to_json()) == imp
True
>>> Action.from_json(b'{"v":1,"request_id":"r1","item_id":7,"user_id":3,"ts":5,"action":"wink"}')
Traceback (most recent call last):
...
freshet.topics.SchemaError: action: 'wink' is not one of ('click', 'like', 'finish')
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

SCHEMA_VERSION = 1

# Logical topic name -> what it carries. Physical names are prefixed by the config.
TOPICS: dict[str, str] = {
    "features": "Impression events logged at serving time, one per (request_id, item_id) shown",
    "actions": "User actions (click, like, finish) on an impression",
    "examples": "Labelled training examples from the joiner, in batches",
    "params": "Parameter deltas (Arrow IPC): sparse rows often, dense weights rarely",
    "metrics": "Progressive evaluation and job metrics (JSON)",
    "dead_letters": "Inputs that could not be processed, with the raw payload and a reason",
}

ACTION_TYPES: tuple[str, ...] = ("click", "like", "finish")


class SchemaError(ValueError):
    """An event does not match its schema; the message says which field and why."""


def _field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise SchemaError(f"{name}: missing")
    value = obj[name]
    # bool is an int in Python; an ID or timestamp given as true/false is a mistake.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise SchemaError(f"{name}: expected {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise SchemaError(f"{name}: expected {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _parse(raw: bytes | str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise SchemaError(f"not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise SchemaError("not a JSON object")
    v = obj.get("v", SCHEMA_VERSION)
    if v != SCHEMA_VERSION:
        raise SchemaError(f"v: unsupported schema version {v!r}")
    return obj


def _slots(obj: Mapping[str, Any]) -> dict[str, list[int]]:
    slots = _field(obj, "slots", dict)
    out: dict[str, list[int]] = {}
    for name, ids in slots.items():
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise SchemaError(f"slots.{name}: expected a list of integer IDs")
        out[name] = ids
    return out


@dataclass(frozen=True)
class Event:
    """Common JSON encoding of the events."""

    topic: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"v": SCHEMA_VERSION, **asdict(self)}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class Impression(Event):
    """Features of one item shown for one request (topic ``features``).

    ``slots`` maps a feature group (a slot, e.g. ``genre``) to its integer IDs.
    """

    topic: ClassVar[str] = "features"
    request_id: str
    item_id: int
    user_id: int
    ts: int  # event time, milliseconds since the epoch
    slots: dict[str, list[int]] = field(default_factory=dict)

    def key(self) -> bytes:
        return self.request_id.encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Impression:
        o = _parse(raw)
        return cls(
            request_id=_field(o, "request_id", str),
            item_id=_field(o, "item_id", int),
            user_id=_field(o, "user_id", int),
            ts=_field(o, "ts", int),
            slots=_slots(o),
        )


@dataclass(frozen=True)
class Action(Event):
    """A user action on an impression (topic ``actions``)."""

    topic: ClassVar[str] = "actions"
    request_id: str
    item_id: int
    user_id: int
    ts: int
    action: str

    def key(self) -> bytes:
        return self.request_id.encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Action:
        o = _parse(raw)
        action = _field(o, "action", str)
        if action not in ACTION_TYPES:
            raise SchemaError(f"action: {action!r} is not one of {ACTION_TYPES}")
        return cls(
            request_id=_field(o, "request_id", str),
            item_id=_field(o, "item_id", int),
            user_id=_field(o, "user_id", int),
            ts=_field(o, "ts", int),
            action=action,
        )


@dataclass(frozen=True)
class Example(Event):
    """A labelled training example (one row of an ``examples`` batch).

    ``label`` is 1 when any action matched. ``sample_rate`` is the probability with
    which an example of this label was kept, for the log-odds correction in training.
    """

    topic: ClassVar[str] = "examples"
    request_id: str
    item_id: int
    user_id: int
    ts: int
    label: int
    click: int = 0
    like: int = 0
    finish: int = 0
    sample_rate: float = 1.0
    slots: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetter(Event):
    """An input that could not be processed (topic ``dead_letters``)."""

    topic: ClassVar[str] = "dead_letters"
    source: str  # logical topic or component the payload came from
    reason: str
    payload: str  # the raw input, as text (bytes are decoded with replacement)
    ts: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass(frozen=True)
class Metric(Event):
    """One measured figure (topic ``metrics``)."""

    topic: ClassVar[str] = "metrics"
    job: str
    name: str
    value: float
    ts: int = field(default_factory=lambda: int(time.time() * 1000))
    labels: dict[str, str] = field(default_factory=dict)
