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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import orjson

from freshet.errors import FreshetError

SCHEMA_VERSION = 1

# The header a ranking server puts on the impressions it logs, valued with its own
# process's ID: its signal feed folds them when it logs them and skips them on the topic.
ORIGIN_HEADER = "freshet-origin"

# Logical topic name -> what it carries. Physical names are prefixed by the config.
TOPICS: dict[str, str] = {
    "features": "Impression events logged at serving time, one per (request_id, item_id) shown",
    "actions": "User actions (click, like, finish) on an impression",
    "examples": "Labelled training examples from the joiner, in batches",
    "params": "Parameter deltas (Arrow IPC): sparse rows often, dense weights rarely",
    "metrics": "Progressive evaluation and job metrics (JSON)",
    "dead_letters": "Inputs that could not be processed, with the raw payload and a reason",
    "signals": "The statistics job's changelog: each entity's signal state after each event",
    "features_signals": "Impressions with their point-in-time signal slots (the replay's features)",
}

ACTION_TYPES: tuple[str, ...] = ("click", "like", "finish")


class SchemaError(FreshetError, ValueError):
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
        obj = orjson.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise SchemaError(f"not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise SchemaError("not a JSON object")
    v = obj.get("v", SCHEMA_VERSION)
    if v != SCHEMA_VERSION:
        raise SchemaError(f"v: unsupported schema version {v!r}")
    return obj


SERVED_FIELDS = ("served_score", "model_seq", "table_version")


def _served(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The optional served fields, checked as the joiner checks them (parse.sql)."""
    out: dict[str, Any] = {}
    score = obj.get("served_score")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float) or not (
                0.0 <= score <= 1.0):
            raise SchemaError("served_score: not a number in [0, 1]")
        out["served_score"] = float(score)
    for name in SERVED_FIELDS[1:]:
        v = obj.get(name)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
                raise SchemaError(f"{name}: not a non-negative 64-bit integer")
            out[name] = v
    return out


def _slots(obj: Mapping[str, Any]) -> dict[str, list[int]]:
    slots = _field(obj, "slots", dict)
    out: dict[str, list[int]] = {}
    for name, ids in slots.items():
        # type() is: a JSON integer decodes to exactly int, and a bool is not one
        if type(ids) is not list or not all(type(i) is int for i in ids):
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
    ``served_score`` (the probability serving returned), ``model_seq`` (the dense
    model's sequence number) and ``table_version`` (sparse updates applied) say what
    the item was ranked with; None when it was not scored by Freshet's server.
    """

    topic: ClassVar[str] = "features"
    request_id: str
    item_id: int
    user_id: int
    ts: int  # event time, milliseconds since the epoch
    slots: dict[str, list[int]] = field(default_factory=dict)
    served_score: float | None = None
    model_seq: int | None = None
    table_version: int | None = None

    def key(self) -> bytes:
        return self.request_id.encode()

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items()
                if v is not None or k not in SERVED_FIELDS}

    @classmethod
    def from_json(cls, raw: bytes | str) -> Impression:
        o = _parse(raw)
        return cls(
            request_id=_field(o, "request_id", str),
            item_id=_field(o, "item_id", int),
            user_id=_field(o, "user_id", int),
            ts=_field(o, "ts", int),
            slots=_slots(o),
            **_served(o),
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
    The served fields are the impression's (:class:`Impression`).
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
    served_score: float | None = None
    model_seq: int | None = None
    table_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items()
                if v is not None or k not in SERVED_FIELDS}


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


@dataclass
class ExampleBatch:
    """A columnar mini-batch of examples: what a training operator works on.

    On the ``examples`` topic a message is ``{"v": 1, "examples": [Example, ...]}``;
    a plain single Example object is read as a batch of one. Each slot is stored as
    CSR: ``ids`` (int64) and ``offsets`` (int64, length n + 1), so example ``i`` has
    ``ids[offsets[i]:offsets[i + 1]]``.

    Examples
    --------
    >>> raw = encode_examples([
    ...     Example("a", 1, 2, 10, 1, click=1, slots={"genre": [5, 6]}),
    ...     Example("b", 3, 2, 11, 0, sample_rate=0.5, slots={"genre": []}),
    ... ])
    >>> b = ExampleBatch.from_json(raw)
    >>> len(b), b.label.tolist(), b.sample_rate.tolist()
    (2, [1.0, 0.0], [1.0, 0.5])
    >>> ids, offsets = b.slots["genre"]
    >>> ids.tolist(), offsets.tolist()
    ([5, 6], [0, 2, 2])
    """

    request_id: list[str]
    item_id: np.ndarray
    user_id: np.ndarray
    ts: np.ndarray
    label: np.ndarray  # float32, 0 or 1
    sample_rate: np.ndarray  # float32
    actions: dict[str, np.ndarray]  # action type -> int8 column
    slots: dict[str, tuple[np.ndarray, np.ndarray]]
    served_score: np.ndarray | None = None  # float64, nan where not served; None: none was

    def __len__(self) -> int:
        return len(self.request_id)

    def take(self, index: np.ndarray) -> ExampleBatch:
        """The examples at ``index`` (in that order), as a new batch.

        Examples
        --------
        >>> b = ExampleBatch.from_rows([
        ...     {"request_id": "a", "item_id": 1, "user_id": 2, "ts": 10, "label": 1,
        ...      "slots": {"genre": [5, 6]}},
        ...     {"request_id": "b", "item_id": 3, "user_id": 2, "ts": 11, "label": 0,
        ...      "slots": {"genre": [7]}}])
        >>> t = b.take(np.array([1, 0, 1]))
        >>> t.request_id, t.slots["genre"][0].tolist(), t.slots["genre"][1].tolist()
        (['b', 'a', 'b'], [7, 5, 6, 7], [0, 1, 3, 4])
        """
        index = np.asarray(index, np.int64)
        slots = {}
        for name, (ids, offsets) in self.slots.items():
            starts, ends = offsets[index], offsets[index + 1]
            lengths = ends - starts
            new_offsets = np.zeros(len(index) + 1, np.int64)
            np.cumsum(lengths, out=new_offsets[1:])
            # position k of the output reads ids[starts[row] + (k - new_offsets[row])]
            row = np.repeat(np.arange(len(index)), lengths)
            slots[name] = (ids[starts[row] + np.arange(new_offsets[-1]) - new_offsets[row]],
                           new_offsets)
        return ExampleBatch(
            request_id=[self.request_id[i] for i in index.tolist()],
            item_id=self.item_id[index], user_id=self.user_id[index], ts=self.ts[index],
            label=self.label[index], sample_rate=self.sample_rate[index],
            actions={a: v[index] for a, v in self.actions.items()}, slots=slots,
            served_score=None if self.served_score is None else self.served_score[index])

    @classmethod
    def from_json(cls, raw: bytes | str) -> ExampleBatch:
        return cls.from_rows(cls.rows_from_json(raw))

    @staticmethod
    def rows_from_json(raw: bytes | str) -> list[Any]:
        """A message's example rows, decoded but not checked (:meth:`from_rows` checks)."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise SchemaError(f"not JSON: {e}") from e
        rows = obj.get("examples") if isinstance(obj, dict) and "examples" in obj else [obj]
        if not isinstance(rows, list):
            raise SchemaError("examples: expected a list")
        return rows

    @classmethod
    def from_rows(cls, rows: list[Any]) -> ExampleBatch:
        try:
            slot_names = sorted({k for r in rows for k in _row_slots(r)})
            slot_lists: dict[str, list[list[int]]] = {s: [] for s in slot_names}
            for r in rows:
                rs = _row_slots(r)
                for s in slot_names:
                    slot_lists[s].append(rs.get(s, []))
            slots = {}
            for s, lists in slot_lists.items():
                lengths = np.fromiter((len(x) for x in lists), np.int64, len(lists))
                offsets = np.zeros(len(lists) + 1, np.int64)
                np.cumsum(lengths, out=offsets[1:])
                ids = np.fromiter((i for x in lists for i in x), np.int64, int(offsets[-1]))
                slots[s] = (ids, offsets)
            return cls(
                request_id=[str(r["request_id"]) for r in rows],
                item_id=np.array([r["item_id"] for r in rows], np.int64),
                user_id=np.array([r["user_id"] for r in rows], np.int64),
                ts=np.array([r["ts"] for r in rows], np.int64),
                label=np.array([r["label"] for r in rows], np.float32),
                sample_rate=np.array([r.get("sample_rate", 1.0) for r in rows], np.float32),
                actions={a: np.array([r.get(a, 0) or 0 for r in rows], np.int8)
                         for a in ACTION_TYPES},
                slots=slots,
                served_score=_served_scores(rows),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SchemaError(f"malformed example batch: {e!r}") from e


def _served_scores(rows: list[Any]) -> np.ndarray | None:
    scores = [r.get("served_score") for r in rows]
    if all(s is None for s in scores):
        return None
    return np.array([np.nan if s is None else float(s) for s in scores], np.float64)


def _row_slots(row: Mapping[str, Any]) -> Mapping[str, list[int]]:
    slots = row.get("slots") or {}
    # The SQL joiner may carry slots as JSON text rather than a nested object.
    return orjson.loads(slots) if isinstance(slots, str) else slots


def encode_examples(examples: list[Example]) -> bytes:
    """One ``examples`` topic message holding a batch."""
    return encode_rows([e.to_dict() for e in examples])


def example_messages(examples: Sequence[Example], batch_size: int = 512
                     ) -> Iterator[tuple[int, bytes]]:
    """``examples`` as ``examples`` topic messages of ``batch_size``, as the joiner
    batches them: ``(timestamp_ms, value)`` each, the timestamp its last example's.

    Examples
    --------
    >>> exs = [Example(f"r{i}", 1, 2, 10 * i, 0) for i in range(5)]
    >>> [(ts, len(ExampleBatch.from_json(v))) for ts, v in example_messages(exs, 2)]
    [(10, 2), (30, 2), (40, 1)]
    """
    for i in range(0, len(examples), batch_size):
        chunk = list(examples[i : i + batch_size])
        yield chunk[-1].ts, encode_examples(chunk)


def encode_rows(rows: list[Any]) -> bytes:
    """One ``examples`` message from decoded example rows (:meth:`ExampleBatch.rows_from_json`)."""
    return orjson.dumps({"v": SCHEMA_VERSION, "examples": rows})
