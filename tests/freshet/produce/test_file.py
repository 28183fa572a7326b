"""The log-file source: JSON lines and CSV through a column mapping, in event-time order,
with every malformed row counted and named, and a wrong mapping refused at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freshet.data.movielens import feature_id
from freshet.produce.base import Rejects, SourceError, check_source
from freshet.produce.file import FileSource, Mapping, load_mapping
from freshet.topics import Action, Impression
from ps.config import SlotConfig

BASE = {"request_id": "req", "user": "user", "item": "item", "timestamp": "ts",
        "timestamp_unit": "ms"}


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def run(text: str, fmt: str, **mapping: object) -> tuple[list, Rejects]:
    rejects = Rejects(keep=100)
    src = FileSource(Mapping.from_dict({**BASE, **mapping}), text=text, fmt=fmt)
    return list(src.events(rejects)), rejects


def test_jsonl_rows_become_impressions_and_delayed_actions_in_event_time_order() -> None:
    rows = [  # deliberately out of order in the file
        {"req": "b", "user": 2, "item": "m9", "ts": 5000, "act": "click|like", "g": "x|y"},
        {"req": "a", "user": "u1", "item": 7, "ts": 1000, "act": "", "g": ["x", 3]},
        {"req": "c", "user": 3, "item": 7, "ts": 5500, "act": None},
    ]
    evs, rejects = run(jsonl(rows), "jsonl", action="act", action_delay_ms=1000,
                       slots={"user": "user_id", "g": {"slot": "genre", "separator": "|"}})
    assert rejects.count == 0
    assert [(type(e).__name__, e.request_id, e.ts) for e in evs] == [
        ("Impression", "a", 1000), ("Impression", "b", 5000), ("Impression", "c", 5500),
        ("Action", "b", 6000), ("Action", "b", 6000)]
    a, b, c = evs[:3]
    assert a.user_id == feature_id("user_id=u1") and a.item_id == 7  # strings hashed
    assert a.slots == {"user_id": [feature_id("user_id=u1")], "genre": [feature_id("genre=x"), 3]}
    assert b.item_id == feature_id("item_id=m9")
    assert b.slots["genre"] == [feature_id("genre=x"), feature_id("genre=y")]
    assert c.slots == {"user_id": [3], "genre": []}  # a missing column: an empty slot
    assert [e.action for e in evs[3:]] == ["click", "like"]


def test_csv_action_rows_join_their_impression_by_request_and_item() -> None:
    text = ("req,user,item,ts,kind,tags\n"
            "r2,1,20,3000,click,\n"          # an action row before its impression's row
            "r1,1,10,1000,,a;b\n"
            "r2,1,20,2000,none,c\n"
            "r1,1,10,1000,like,\n"           # same millisecond: after the impression
            "r3,1,30,9000,click,\n"          # no impression of r3
            "r1,1,11,4000,click,\n"          # r1 was shown item 10, not 11
            "r4,1,40,5000,,\n"
            "r4,1,40,4000,finish,\n")        # earlier than its impression
    evs, rejects = run(text, "csv", action="kind", action_rows=True,
                       slots={"tags": {"slot": "tag", "separator": ";", "ids": "hash"}})
    assert [(type(e).__name__, e.request_id, e.ts) for e in evs] == [
        ("Impression", "r1", 1000), ("Action", "r1", 1000), ("Impression", "r2", 2000),
        ("Action", "r2", 3000), ("Impression", "r4", 5000)]
    assert evs[0].slots == {"tag": [feature_id("tag=a"), feature_id("tag=b")]}
    assert sorted((r.line, r.reason) for r in rejects.first) == [
        (6, "action with no impression row of request 'r3', item 30"),
        (7, "action with no impression row of request 'r1', item 11"),
        (9, "action earlier than its impression (line 8)")]
    check_source_like(evs)


def check_source_like(evs: list) -> None:
    assert all(a.ts <= b.ts for a, b in zip(evs, evs[1:], strict=False))
    for e in evs:
        assert type(e).from_json(e.to_json()) == e


@pytest.mark.parametrize(("unit", "value", "ms"), [
    ("s", 1700000000, 1_700_000_000_000), ("s", "1700000000.25", 1_700_000_000_250),
    ("ms", "1700000000123", 1_700_000_000_123), ("ms", 12.6, 13),
    ("iso", "2023-11-14T22:13:20Z", 1_700_000_000_000),
    ("iso", "2023-11-14T23:13:20.5+01:00", 1_700_000_000_500),
    ("iso", "2023-11-14 22:13:20", 1_700_000_000_000),  # no zone: UTC
])
def test_timestamp_units(unit: str, value: object, ms: int) -> None:
    evs, rejects = run(jsonl([{"req": "r", "user": 1, "item": 2, "ts": value}]), "jsonl",
                       timestamp_unit=unit)
    assert rejects.count == 0 and [e.ts for e in evs] == [ms]


def test_rows_without_request_ids_are_each_their_own_request() -> None:
    text = "user,item,ts,clicked\n1,2,10,click\n1,3,10,\n"
    mapping = Mapping.from_dict({"user": "user", "item": "item", "timestamp": "ts",
                                 "timestamp_unit": "s", "action": "clicked"})
    evs = list(FileSource(mapping, text=text, fmt="csv").events())
    assert [e.request_id for e in evs] == ["text:2", "text:3", "text:2"]


def test_malformed_rows_are_counted_with_line_and_reason_and_the_rest_go_through() -> None:
    good = {"req": "ok", "user": 1, "item": 2, "ts": 100, "act": "click", "n": "5"}
    lines = [json.dumps(good), "not json", "[1, 2]", "",
             json.dumps({**good, "req": "b1", "ts": "soon"}),
             json.dumps({**good, "req": "b2", "user": None}),
             json.dumps({**good, "req": "b3", "act": "wink"}),
             json.dumps({**good, "req": "b4", "item": True}),
             json.dumps({**good, "req": "b5", "n": "five"}),
             json.dumps({**good, "req": "b6", "ts": -5}),
             json.dumps(good),  # the same request and item again
             json.dumps({**good, "req": "b7", "item": 2**64})]
    evs, rejects = run("\n".join(lines) + "\n", "jsonl", action="act",
                       slots={"n": {"slot": "n", "ids": "int"}})
    assert [type(e).__name__ for e in evs] == ["Impression", "Action"]
    reasons = [(r.line, r.reason) for r in rejects.first]
    assert [line for line, _ in reasons] == [2, 3, 5, 6, 7, 8, 9, 10, 11, 12]
    assert reasons[0][1] == "not JSON (Expecting value)"
    assert reasons[1:] == [
        (3, "not a JSON object"), (5, "timestamp: soon is not a number of milliseconds"),
        (6, "user: missing"), (7, "action: 'wink' is not one of click, like, finish"),
        (8, "item: True is not an ID (an integer or a string)"),
        (9, "slots.n: 'five' is not an integer"),
        (10, "timestamp: -5 is out of range (before 1970 or too large)"),
        (11, "duplicate impression of request 'ok', item 2 (first at line 1)"),
        (12, f"item: {2**64} is out of the int64 range")]
    assert rejects.count == 10 and rejects.first[1].raw == "[1, 2]"


def test_csv_rows_with_the_wrong_field_count_or_bad_bytes_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"\xef\xbb\xbfreq,user,item,ts\n"  # a byte-order mark: not in "req"
                     b"r1,1,2,10\nr2,1,2\nr3,1,2,10,extra\nr4,\xff,2,10\nr5,1,2,11\n")
    rejects = Rejects()
    src = FileSource(Mapping.from_dict(BASE), path=path)
    assert [e.request_id for e in src.events(rejects)] == ["r1", "r5"]
    assert [(r.line, r.reason) for r in rejects.first] == [
        (3, "expected 4 fields, got 3"), (4, "expected 4 fields, got 5"), (5, "not UTF-8")]


def test_a_mapping_naming_a_column_the_file_lacks_fails_at_load(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("req,user,item,time\nr,1,2,3\n")
    with pytest.raises(SourceError, match=r"mapping: timestamp: unknown column 'ts'; "
                       r".*log.csv has columns: req, user, item, time"):
        FileSource(Mapping.from_dict(BASE), path=path)
    jl = tmp_path / "log.jsonl"
    jl.write_text(jsonl([{"req": "r", "user": 1, "item": 2, "ts": 3}]))
    with pytest.raises(SourceError, match=r"slots.genre: unknown column 'genre'.* "
                       r"\(in its first 1000 rows\): req, user, item, ts"):
        FileSource(Mapping.from_dict({**BASE, "slots": {"genre": "genre"}}), path=jl)


@pytest.mark.parametrize(("mapping", "message"), [
    ({"timestmp": "ts"}, "mapping: unknown key 'timestmp'; known: format, "),
    ({"timestamp_unit": "us"}, "mapping: timestamp_unit: 'us' is not one of s, ms, iso"),
    ({"user": 3}, "mapping: user: expected a non-empty string, got 3"),
    ({"format": "parquet"}, "mapping: format: 'parquet' is not one of csv, jsonl"),
    ({"action_rows": True}, "mapping: action_rows = true needs action"),
    ({"action_delay_ms": -1}, "mapping: action_delay_ms: expected a non-negative integer"),
    ({"slots": {"g": {"slot": "genre", "sep": "|"}}},
     "mapping: slots.g: unknown key 'sep'; known: slot, separator, ids"),
    ({"slots": {"g": {"slot": "genre", "ids": "float"}}},
     "mapping: slots.g.ids: 'float' is not one of auto, int, hash"),
    ({"slots": {"a": "genre", "b": "genre"}},
     "mapping: slots: slot 'genre' is given by two columns, 'a' and 'b'"),
    ({"slots": ["genre"]}, "mapping: slots: expected a table of column = slot"),
])
def test_a_wrong_mapping_fails_at_load_naming_the_key(mapping: dict, message: str) -> None:
    with pytest.raises(SourceError) as e:
        Mapping.from_dict({**BASE, **mapping})
    assert str(e.value).startswith(message), str(e.value)


def test_missing_keys_name_themselves() -> None:
    with pytest.raises(SourceError, match="mapping: item: missing"):
        Mapping.from_dict({"user": "u", "timestamp": "t", "timestamp_unit": "s"})
    with pytest.raises(SourceError, match="action_rows = true needs request_id"):
        Mapping.from_dict({"user": "u", "item": "i", "timestamp": "t", "timestamp_unit": "s",
                           "action": "a", "action_rows": True})


def test_load_mapping_reads_toml_json_and_inline(tmp_path: Path) -> None:
    toml = tmp_path / "m.toml"
    toml.write_text('user = "u"\nitem = "i"\ntimestamp = "t"\ntimestamp_unit = "iso"\n'
                    '[slots]\ng = { slot = "genre", separator = "|" }\n')
    as_json = tmp_path / "m.json"
    as_json.write_text(json.dumps({"user": "u", "item": "i", "timestamp": "t",
                                   "timestamp_unit": "iso",
                                   "slots": {"g": {"slot": "genre", "separator": "|"}}}))
    assert load_mapping(str(toml)) == load_mapping(str(as_json)) == load_mapping(
        as_json.read_text())
    with pytest.raises(SourceError, match="mapping: no such file 'nope.toml'"):
        load_mapping("nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("user = \n")
    with pytest.raises(SourceError, match="bad.toml is not valid toml"):
        load_mapping(str(bad))
    with pytest.raises(SourceError, match="mapping: inline JSON is not valid"):
        load_mapping("{user: u}")


def test_the_format_comes_from_the_extension_or_the_mapping(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("req\tuser\titem\tts\nr\t1\t2\t3\n")
    with pytest.raises(SourceError, match="format: cannot tell it from the name"):
        FileSource(Mapping.from_dict(BASE), path=log)
    src = FileSource(Mapping.from_dict({**BASE, "format": "csv", "delimiter": "\t"}), path=log)
    assert [e.ts for e in src.events()] == [3]
    tsv = tmp_path / "log.tsv"
    tsv.write_text(log.read_text())
    assert [e.ts for e in FileSource(Mapping.from_dict(BASE), path=tsv).events()] == [3]


def test_the_file_source_passes_the_source_checks_on_a_real_file(tmp_path: Path) -> None:
    from freshet.produce.synthetic import SyntheticSpec, events

    path = tmp_path / "log.jsonl"
    write_log(path, list(events(SyntheticSpec(impressions=500, seed=3, start_ms=10**12))))
    src = FileSource(load_mapping(json.dumps(LOG_MAPPING)), path=path)
    check_source(src)
    assert sum(isinstance(e, Impression) for e in src.events()) == 500


# The synthetic stream as a user's log: one row per impression, its click in a column.
LOG_MAPPING = {"request_id": "request", "user": "user", "item": "item", "timestamp": "time",
               "timestamp_unit": "ms", "action": "clicked", "action_delay_ms": 2000,
               "slots": {"user": "user_id", "item": "item_id", "genre": "genre"}}


def write_log(path: Path, events: list) -> tuple[int, int]:
    """Write ``events`` (the synthetic stream) as a JSON-lines log for
    :data:`LOG_MAPPING`, in file order by request; returns (impressions, clicks)."""
    clicked = {e.request_id for e in events if isinstance(e, Action)}
    imps = [e for e in events if isinstance(e, Impression)]
    with open(path, "w") as f:
        for e in imps:
            f.write(json.dumps({"request": e.request_id, "user": e.user_id, "item": e.item_id,
                                "time": e.ts, "genre": e.slots["genre"][0],
                                "clicked": "click" if e.request_id in clicked else ""}) + "\n")
    return len(imps), len(clicked)


def test_the_example_in_docs_events_md_gives_what_it_shows(tmp_path: Path) -> None:
    import ast
    import re

    doc = (Path(__file__).resolve().parents[3] / "docs" / "events.md").read_text()
    part = doc[doc.index("## Replaying your own log"):]
    blocks = dict(re.findall(r"```(\w+)\n(.*?)```", part, re.S)[:3])
    (tmp_path / "clicks.csv").write_text(blocks["csv"])
    (tmp_path / "mapping.toml").write_text(blocks["toml"])
    rejects = Rejects()
    src = FileSource(load_mapping(str(tmp_path / "mapping.toml")), path=tmp_path / "clicks.csv")
    evs = list(src.events(rejects))
    kinds = [e.action for e in evs if isinstance(e, Action)]
    shown = re.search(r"impressions=(\d+) actions=(\d+) by_action=(\{.*?\})", blocks["console"])
    assert shown is not None
    assert (sum(isinstance(e, Impression) for e in evs), len(kinds)) == (
        int(shown[1]), int(shown[2]))
    assert {k: kinds.count(k) for k in sorted(set(kinds))} == ast.literal_eval(shown[3])
    assert rejects.summary("file:clicks.csv") in blocks["console"]
    assert evs[0].slots["genre"] == [feature_id("genre=Drama"), feature_id("genre=War")]


def test_a_numeric_slot_s_cells_become_bucket_ids_and_a_word_is_a_malformed_row() -> None:
    price = SlotConfig("price", boundaries=[10.0, 50.0])
    text = ("req,user,item,ts,price\n"
            "a,1,7,1000,4.5\n"
            "b,1,8,2000,10\n"
            "c,1,9,3000,cheap\n"
            "d,1,6,4000,120\n"
            "e,1,5,5000,\n")
    rejects = Rejects(keep=10)
    src = FileSource(Mapping.from_dict({**BASE, "slots": {"price": "price", "item": "item_id"}}),
                     text=text, fmt="csv", numeric=[price, SlotConfig("item_id")])
    evs = list(src.events(rejects))
    assert [(e.request_id, e.slots["price"], e.slots["item_id"]) for e in evs] == [
        ("a", [0], [7]), ("b", [1], [8]), ("d", [2], [6]), ("e", [], [5])]
    ((line, reason),) = [(r.line, r.reason) for r in rejects.first]
    assert line == 4 and "slots.price: 'cheap' is not a number (slot price is numeric" in reason
