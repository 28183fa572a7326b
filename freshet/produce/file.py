"""Replay a user's own impression/action log: JSON lines or CSV, with a column mapping.

    freshet produce file log.csv --mapping mapping.toml

The mapping (a TOML or JSON file, or inline JSON) names the columns; ``docs/events.md``
("Replaying your own log") documents every key. In short:

- ``user``, ``item``, ``timestamp`` (columns) and ``timestamp_unit`` (``s``, ``ms`` or
  ``iso``: ISO-8601, UTC unless it says otherwise) are required;
- ``request_id``: the column of the request; without one, each row is its own request
  (``<file name>:<line>``);
- ``action``: the column of the action name (``click``, ``like``, ``finish``; several
  joined by ``action_separator``, default ``|``). An empty cell (or ``none``, ``null``)
  means no action;
- ``action_rows``: how impression rows and action rows are told apart. ``false`` (the
  default): every row is an impression, and its action cell, when set, gives the
  actions ``action_delay_ms`` (default 0) after it. ``true``: a row with an empty
  action is an impression, a row with one is an action at its own timestamp on the
  impression with the same ``request_id`` and ``item`` (so ``request_id`` is needed);
- ``slots``: column -> slot name, or column -> ``{slot, separator, ids}``. Integer
  values are kept as IDs; other strings are hashed with the stable
  :func:`~freshet.data.movielens.feature_id` of ``"<slot>=<value>"`` (MovieLens'
  hash); ``ids = "hash"`` hashes integers too, ``ids = "int"`` rejects anything else.
  A ``separator`` splits a multi-valued cell (a JSON list needs none). An empty or
  missing cell is an empty slot. User and item IDs follow the same rule.
- ``format`` (``csv`` or ``jsonl``; default from the file's extension) and
  ``delimiter`` (CSV; default ``,``, tab for ``.tsv``).

Events come out in event-time order: the file is read whole and sorted (stably;
impressions before actions at the same millisecond), so it must fit in memory, at
about 1 KB per row. A row that cannot become events is never dropped unsaid: it is
added to the caller's :class:`~freshet.produce.base.Rejects` with its line number and
reason (``freshet produce`` prints a summary and dead-letters each one).

Examples
--------
>>> log = '''req,user,movie,time,event,genres
... r1,7,m1,1700000000,click,Drama|War
... r2,8,m2,1700000001,,Comedy
... r3,x,m2,bad,,
... '''
>>> mapping = Mapping.from_dict({
...     "request_id": "req", "user": "user", "item": "movie", "timestamp": "time",
...     "timestamp_unit": "s", "action": "event", "action_delay_ms": 500,
...     "slots": {"user": "user_id", "genres": {"slot": "genre", "separator": "|"}}})
>>> rejects = Rejects()
>>> evs = list(FileSource(mapping, text=log, fmt="csv").events(rejects))
>>> [(type(e).__name__, e.request_id, e.ts) for e in evs]
[('Impression', 'r1', 1700000000000), ('Action', 'r1', 1700000000500), \
('Impression', 'r2', 1700000001000)]
>>> evs[0].user_id, len(evs[0].slots["genre"]), evs[0].item_id == feature_id("item_id=m1")
(7, 2, True)
>>> [(r.line, r.reason) for r in rejects.first]
[(4, 'timestamp: bad is not a number of seconds')]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from freshet.config import Config
from freshet.data.movielens import feature_id
from freshet.errors import FreshetError
from freshet.produce.base import Event, EventSource, Rejects, SourceError
from freshet.topics import ACTION_TYPES, Action, Impression
from ps.config import SlotConfig

FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "jsonl"}
TIMESTAMP_UNITS = ("s", "ms", "iso")
ID_RULES = ("auto", "int", "hash")
NO_ACTION = ("", "none", "null")  # an action cell holding one of these: no action
KEYS = ("format", "delimiter", "request_id", "user", "item", "timestamp",
        "timestamp_unit", "action", "action_separator", "action_rows", "action_delay_ms",
        "slots")
SLOT_KEYS = ("slot", "separator", "ids")
SCAN_ROWS = 1000  # JSON lines whose keys are the columns the mapping is checked against

_INT = re.compile(r"[+-]?\d+")
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fail(message: str) -> SourceError:
    return SourceError(f"mapping: {message}")


@dataclass(frozen=True)
class SlotColumn:
    """A column read into a slot: its IDs split by ``separator``, kept or hashed by
    ``ids`` (``auto``: integers kept, other strings hashed)."""

    column: str
    slot: str
    separator: str | None = None
    ids: str = "auto"


@dataclass(frozen=True)
class Mapping:
    """Which column of a log is what (see the module's docstring for each key)."""

    user: str
    item: str
    timestamp: str
    timestamp_unit: str
    request_id: str | None = None
    action: str | None = None
    action_separator: str = "|"
    action_rows: bool = False
    action_delay_ms: int = 0
    slots: tuple[SlotColumn, ...] = ()
    format: str | None = None
    delimiter: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mapping:
        """A mapping from its TOML/JSON table; :class:`SourceError` names a wrong key.

        Examples
        --------
        >>> Mapping.from_dict({"user": "u", "item": "i", "timestamp": "t"})
        Traceback (most recent call last):
        ...
        freshet.produce.base.SourceError: mapping: timestamp_unit: missing (one of s, ms, iso)
        >>> Mapping.from_dict({"user": "u", "item": "i", "timestamp": "t",
        ...                    "timestamp_unit": "s", "slot": {}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        freshet.produce.base.SourceError: mapping: unknown key 'slot'; known: format, ...
        """
        if not isinstance(d, dict):
            raise _fail(f"expected a table of keys, got {type(d).__name__}")
        unknown = [k for k in d if k not in KEYS]
        if unknown:
            raise _fail(f"unknown key {unknown[0]!r}; known: {', '.join(KEYS)}")
        for key in ("user", "item", "timestamp"):
            if key not in d:
                raise _fail(f"{key}: missing (the name of the {key} column)")
        if "timestamp_unit" not in d:
            raise _fail(f"timestamp_unit: missing (one of {', '.join(TIMESTAMP_UNITS)})")
        for key in ("user", "item", "timestamp", "request_id", "action", "delimiter",
                    "action_separator"):
            if key in d and not (isinstance(d[key], str) and d[key]):
                raise _fail(f"{key}: expected a non-empty string, got {d[key]!r}")
        _choice("timestamp_unit", d["timestamp_unit"], TIMESTAMP_UNITS)
        if "format" in d:
            _choice("format", d["format"], FORMATS)
        rows = d.get("action_rows", False)
        if not isinstance(rows, bool):
            raise _fail(f"action_rows: expected true or false, got {rows!r}")
        if rows and "request_id" not in d:
            raise _fail("action_rows = true needs request_id: an action row is matched to "
                        "its impression by request and item")
        if rows and "action" not in d:
            raise _fail("action_rows = true needs action: the column that tells action rows "
                        "from impression rows")
        delay = d.get("action_delay_ms", 0)
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise _fail(f"action_delay_ms: expected a non-negative integer, got {delay!r}")
        if rows and "action_delay_ms" in d:
            raise _fail("action_delay_ms applies to actions on impression rows; with "
                        "action_rows = true each action row has its own timestamp")
        slots = d.get("slots", {})
        if not isinstance(slots, dict):
            raise _fail(f"slots: expected a table of column = slot, got {slots!r}")
        columns = tuple(_slot_column(col, spec) for col, spec in slots.items())
        seen: dict[str, str] = {}
        for c in columns:
            if c.slot in seen:
                raise _fail(f"slots: slot {c.slot!r} is given by two columns, "
                            f"{seen[c.slot]!r} and {c.column!r}")
            seen[c.slot] = c.column
        return cls(user=d["user"], item=d["item"], timestamp=d["timestamp"],
                   timestamp_unit=d["timestamp_unit"], request_id=d.get("request_id"),
                   action=d.get("action"), action_separator=d.get("action_separator", "|"),
                   action_rows=rows, action_delay_ms=delay, slots=columns,
                   format=d.get("format"), delimiter=d.get("delimiter"))

    def columns(self) -> dict[str, str]:
        """Mapping key -> the column it names."""
        out = {k: getattr(self, k) for k in ("request_id", "user", "item", "timestamp",
                                              "action") if getattr(self, k)}
        out.update({f"slots.{c.column}": c.column for c in self.slots})
        return out


def _choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(f"{key}: {value!r} is not one of {', '.join(choices)}")


def _slot_column(column: str, spec: object) -> SlotColumn:
    where = f"slots.{column}"
    if isinstance(spec, str) and spec:
        return SlotColumn(column, spec)
    if not isinstance(spec, dict):
        raise _fail(f"{where}: expected a slot name or a table {{slot = ..., separator = "
                    f"..., ids = ...}}, got {spec!r}")
    unknown = [k for k in spec if k not in SLOT_KEYS]
    if unknown:
        raise _fail(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(SLOT_KEYS)}")
    slot = spec.get("slot")
    if not (isinstance(slot, str) and slot):
        raise _fail(f"{where}.slot: expected the slot's name, got {slot!r}")
    sep = spec.get("separator")
    if sep is not None and not (isinstance(sep, str) and sep):
        raise _fail(f"{where}.separator: expected a non-empty string, got {sep!r}")
    ids = spec.get("ids", "auto")
    _choice(f"{where}.ids", ids, ID_RULES)
    return SlotColumn(column, slot, sep, ids)


def load_mapping(spec: str) -> Mapping:
    """The mapping in ``spec``: inline JSON (it starts with ``{``), or a ``.toml`` or
    ``.json`` file.

    Examples
    --------
    >>> m = load_mapping('{"user": "u", "item": "i", "timestamp": "t", '
    ...                  '"timestamp_unit": "ms", "slots": {"u": "user_id"}}')
    >>> m.timestamp_unit, m.slots
    ('ms', (SlotColumn(column='u', slot='user_id', separator=None, ids='auto'),))
    """
    text = spec.strip()
    if text.startswith("{"):
        try:
            return Mapping.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise _fail(f"inline JSON is not valid: {e}") from e
    path = Path(spec)
    if not path.is_file():
        raise _fail(f"no such file {spec!r} (give a .toml or .json file, or inline JSON)")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        else:
            data = json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise _fail(f"{path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {e}") from e
    return Mapping.from_dict(data)


class _Bad(FreshetError, ValueError):
    """A row that cannot become events; the message is the reason."""


class FileSource(EventSource):
    """``freshet produce file PATH --mapping M``: a log file replayed (module docstring).

    ``text`` stands in for the file's content (tests, :meth:`example`); ``fmt`` for the
    mapping's ``format``.
    """

    name = "file"
    help = "replay your own impression/action log (JSON lines or CSV) with a column mapping"

    def __init__(self, mapping: Mapping, path: str | Path | None = None,
                 text: str | None = None, fmt: str | None = None,
                 progress: TextIO | None = None,
                 numeric: Sequence[SlotConfig] = ()) -> None:
        if (path is None) == (text is None):
            raise SourceError("give the log's path or its text")
        self.mapping = mapping
        # Slots whose cells are numbers, each replaced by its bucket's ID (boundaries).
        self.numeric = {s.name: s for s in numeric if s.numeric}
        self.path = None if path is None else Path(path)
        self._text = text
        self.progress = progress
        suffix = self.path.suffix.lower() if self.path else ""
        self.format = fmt or mapping.format or EXTENSIONS.get(suffix)
        if self.format not in FORMATS:
            raise _fail(f"format: cannot tell it from the name {str(self.path)!r}; say "
                        "format = \"csv\" or \"jsonl\" in the mapping")
        self.delimiter = mapping.delimiter or ("\t" if suffix == ".tsv" else ",")
        if self.path is not None and not self.path.is_file():
            raise SourceError(f"no such file: {self.path}")
        self._check_columns()

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(c.slot for c in self.mapping.slots)

    def origin(self) -> str:
        return f"file:{self.path}" if self.path else "file:<text>"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", help="the log: JSON lines (.jsonl) or CSV (.csv, .tsv)")
        parser.add_argument("--mapping", required=True, metavar="M",
                            help="which column is what: a .toml or .json file, or inline "
                            "JSON (docs/events.md, 'Replaying your own log')")

    @classmethod
    def from_args(cls, args: argparse.Namespace, cfg: Config) -> FileSource:
        return cls(load_mapping(args.mapping), path=args.path, progress=sys.stderr,
                   numeric=cfg.model.slots)

    @classmethod
    def example(cls) -> FileSource:
        lines = [{"req": f"q{i // 2}", "u": f"user{i % 3}", "i": i % 4, "t": 1000 * i,
                  "a": "click" if i % 3 == 0 else "", "tags": ["x", i % 2]}
                 for i in range(8)]
        mapping = Mapping.from_dict({
            "request_id": "req", "user": "u", "item": "i", "timestamp": "t",
            "timestamp_unit": "ms", "action": "a", "action_delay_ms": 1500,
            "slots": {"u": "user_id", "i": "item_id", "tags": "tag"}})
        return cls(mapping, text="\n".join(json.dumps(x) for x in lines) + "\n", fmt="jsonl")

    def describe(self) -> str:
        return f"replaying {self.path} ({self.format}) ..."

    def _open(self) -> TextIO:
        if self._text is not None:
            return io.StringIO(self._text)
        # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first
        # column's name; surrogateescape: a row that is not UTF-8 is rejected, not the file.
        assert self.path is not None
        return open(self.path, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def _check_columns(self) -> None:
        """Every column the mapping names is in the file (CSV: its header; JSON lines:
        the keys of its first :data:`SCAN_ROWS` objects)."""
        with self._open() as f:
            if self.format == "csv":
                header = next(csv.reader(f, delimiter=self.delimiter), None)
                if not header:
                    raise SourceError(f"{self.origin()}: empty file (a CSV log needs a header)")
                have = list(header)
            else:
                have, seen = [], set()
                for n, line in enumerate(f):
                    if n >= SCAN_ROWS:
                        break
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    for k in obj if isinstance(obj, dict) else ():
                        if k not in seen:
                            seen.add(k)
                            have.append(k)
        for key, column in self.mapping.columns().items():
            if column not in have:
                where = "" if self.format == "csv" else f" (in its first {SCAN_ROWS} rows)"
                raise _fail(f"{key}: unknown column {column!r}; {self.origin()} has "
                            f"columns{where}: {', '.join(have) or '(none)'}")

    def _records(self) -> Iterator[tuple[int, dict[str, Any] | None, str, str | None]]:
        """``(line, row, raw, error)`` for each record of the file."""
        with self._open() as f:
            if self.format == "csv":
                reader = csv.reader(f, delimiter=self.delimiter)
                header = next(reader)
                for cells in reader:
                    raw = self.delimiter.join(cells)
                    if not cells:
                        continue
                    if len(cells) != len(header):
                        yield (reader.line_num, None, raw,
                               f"expected {len(header)} fields, got {len(cells)}")
                    else:
                        yield reader.line_num, dict(zip(header, cells, strict=True)), raw, None
            else:
                for n, line in enumerate(f, 1):
                    raw = line.rstrip("\r\n")
                    if not raw.strip():
                        continue
                    try:
                        obj = json.loads(raw)
                    except json.JSONDecodeError as e:  # the reason without its position
                        yield n, None, raw, f"not JSON ({e.msg})"
                        continue
                    if not isinstance(obj, dict):
                        yield n, None, raw, "not a JSON object"
                    else:
                        yield n, obj, raw, None

    def events(self, rejects: Rejects | None = None) -> Iterator[Event]:
        rejects = Rejects() if rejects is None else rejects
        m = self.mapping
        timed: list[tuple[int, int, int, Event]] = []  # (ts, impression 0 / action 1, seq)
        shown: dict[tuple[str, int], tuple[int, int]] = {}  # join key -> (ts, line)
        action_rows: list[tuple[int, str, Action]] = []
        start = last = time.monotonic()
        rows = 0
        name = self.path.name if self.path else "text"
        for line, row, raw, error in self._records():
            rows += 1
            if self.progress is not None and time.monotonic() - last >= 2.0:
                last = time.monotonic()
                print(f"  read {rows:,} rows of {name}", file=self.progress, flush=True)
            try:
                if error is not None:
                    raise _Bad(error)
                if _not_utf8(raw):
                    raise _Bad("not UTF-8")
                assert row is not None
                ts = _timestamp(row.get(m.timestamp), m.timestamp_unit)
                user = _one_id(row.get(m.user), "user_id", "user")
                item = _one_id(row.get(m.item), "item_id", "item")
                rid = _request_id(row, m, name, line)
                actions = _actions(row.get(m.action) if m.action else None, m.action_separator)
                if m.action_rows and actions:
                    if len(actions) > 1:
                        raise _Bad("action: an action row holds one action")
                    action_rows.append((line, raw, Action(rid, item, user, ts, actions[0])))
                    continue
                slots = {c.slot: _slot_ids(row.get(c.column), c) if c.slot not in self.numeric
                         else _buckets(row.get(c.column), c, self.numeric[c.slot])
                         for c in m.slots}
                key = (rid, item)
                if key in shown:
                    raise _Bad(f"duplicate impression of request {rid!r}, item {item} "
                               f"(first at line {shown[key][1]})")
            except _Bad as e:
                rejects.add(line, str(e), raw)
                continue
            shown[key] = (ts, line)
            timed.append((ts, 0, line, Impression(rid, item, user, ts, slots)))
            for kind in actions:
                timed.append((ts + m.action_delay_ms, 1, line,
                              Action(rid, item, user, ts + m.action_delay_ms, kind)))
        for line, raw, action in action_rows:
            seen = shown.get((action.request_id, action.item_id))
            if seen is None:
                rejects.add(line, f"action with no impression row of request "
                            f"{action.request_id!r}, item {action.item_id}", raw)
            elif action.ts < seen[0]:
                rejects.add(line, f"action earlier than its impression (line {seen[1]})", raw)
            else:
                timed.append((action.ts, 1, line, action))
        timed.sort(key=lambda t: t[:3])
        if self.progress is not None:
            print(f"  read {rows:,} rows of {name} in {time.monotonic() - start:.1f}s: "
                  f"{len(timed):,} events, {rejects.count:,} malformed rows",
                  file=self.progress, flush=True)
        for t in timed:
            yield t[3]


def _not_utf8(raw: str) -> bool:
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _timestamp(value: object, unit: str) -> int:
    """Milliseconds since the epoch."""
    if _blank(value):
        raise _Bad("timestamp: missing")
    if unit == "iso":
        if not isinstance(value, str):
            raise _Bad(f"timestamp: {value!r} is not an ISO-8601 time")
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Bad(f"timestamp: {value} is not an ISO-8601 time") from None
        dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        ms = (dt - _EPOCH) // timedelta(milliseconds=1)
    else:
        scale = 1000 if unit == "s" else 1
        words = "seconds" if unit == "s" else "milliseconds"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _Bad(f"timestamp: {value!r} is not a number of {words}")
        if isinstance(value, int) or (isinstance(value, str) and _INT.fullmatch(value.strip())):
            ms = int(value) * scale
        else:
            try:
                f = float(value)
            except ValueError:
                raise _Bad(f"timestamp: {value} is not a number of {words}") from None
            if f != f or f in (float("inf"), float("-inf")):
                raise _Bad(f"timestamp: {value} is not a number of {words}")
            ms = round(f * scale)
    if ms < 0 or ms > _INT64[1]:
        raise _Bad(f"timestamp: {value} is out of range (before 1970 or too large)")
    return ms


def _id(value: object, slot: str, ids: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Bad(f"{what}: {value!r} is not an ID (an integer or a string)")
    if isinstance(value, str):
        value = value.strip()
        if ids == "hash" or not _INT.fullmatch(value):
            if ids == "int":
                raise _Bad(f"{what}: {value!r} is not an integer")
            return feature_id(f"{slot}={value}")
        value = int(value)
    elif ids == "hash":
        return feature_id(f"{slot}={value}")
    if not _INT64[0] <= value <= _INT64[1]:
        raise _Bad(f"{what}: {value} is out of the int64 range")
    return value


def _buckets(value: object, c: SlotColumn, slot: SlotConfig) -> list[int]:
    """A numeric slot's cell: numbers (split like IDs), each as its bucket's ID."""
    what = f"slots.{c.column}"
    if _blank(value):
        return []
    numbers = []
    for part in _parts(value, c):
        try:
            number = float(part.strip()) if isinstance(part, str) else part
            numbers.append(slot.bucket([number])[0])
        except ValueError:
            raise _Bad(f"{what}: {part!r} is not a number (slot {slot.name} is numeric, "
                       f"boundaries {slot.boundaries})") from None
    return numbers


def _one_id(value: object, slot: str, what: str) -> int:
    if _blank(value):
        raise _Bad(f"{what}: missing")
    return _id(value, slot, "auto", what)


def _parts(value: object, c: SlotColumn) -> list[Any]:
    """A cell's values: a JSON list as it is, a string split by the column's separator."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and c.separator:
        return value.split(c.separator)
    return [value]


def _slot_ids(value: object, c: SlotColumn) -> list[int]:
    what = f"slots.{c.column}"
    if _blank(value):
        return []
    parts = _parts(value, c)
    if isinstance(value, str):  # an ID cell skips empty parts ("a||b")
        parts = [p for p in parts if p.strip()]
    return [_id(p, c.slot, c.ids, what) for p in parts]


def _request_id(row: dict[str, Any], m: Mapping, name: str, line: int) -> str:
    if m.request_id is None:
        return f"{name}:{line}"
    value = row.get(m.request_id)
    if _blank(value):
        raise _Bad("request_id: missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Bad(f"request_id: {value!r} is not a string or an integer")
    return str(value).strip()


def _actions(value: object, separator: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise _Bad(f"action: {value!r} is not an action name")
    kinds = [k.strip() for k in value.split(separator)]
    kinds = [k for k in kinds if k.lower() not in NO_ACTION]
    for k in kinds:
        if k not in ACTION_TYPES:
            raise _Bad(f"action: {k!r} is not one of {', '.join(ACTION_TYPES)}")
    return kinds
