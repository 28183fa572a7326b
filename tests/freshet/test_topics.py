import json

import pytest

from freshet.topics import Action, DeadLetter, Impression, SchemaError


def test_impression_round_trip() -> None:
    imp = Impression("r", 1, 2, 3, {"genre": [4, 5]})
    assert Impression.from_json(imp.to_json()) == imp
    assert json.loads(imp.to_json())["v"] == 1


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"v":2}', "unsupported schema version"),
        (
            b'{"request_id":"r","item_id":"7","user_id":1,"ts":1,"slots":{}}',
            "item_id: expected int",
        ),
        (b'{"request_id":"r","item_id":7,"user_id":true,"ts":1,"slots":{}}', "user_id: expected"),
        (b'{"request_id":"r","item_id":7,"user_id":1,"slots":{}}', "ts: missing"),
        (b'{"request_id":"r","item_id":7,"user_id":1,"ts":1,"slots":{"g":[1.5]}}', "slots.g"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_malformed_impressions_raise_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason):
        Impression.from_json(payload)


def test_action_type_is_checked() -> None:
    ok = Action("r", 1, 2, 3, "like")
    assert Action.from_json(ok.to_json()) == ok
    with pytest.raises(SchemaError, match="action"):
        Action.from_json(ok.to_json().replace(b"like", b"poke"))


def test_dead_letter_keeps_payload_and_reason() -> None:
    d = json.loads(DeadLetter(source="features", reason="why", payload="raw").to_json())
    assert (d["source"], d["reason"], d["payload"]) == ("features", "why", "raw")


def test_freshet_topics_adds_partitions_when_the_config_asks_for_more(cfg) -> None:
    """``create_topics`` (what ``freshet topics`` runs) grows an existing topic to the
    configured count, keeps its records, and never shrinks one."""
    import dataclasses

    from freshet import kafka

    name = cfg.topics.name("actions")
    have = len(kafka.partitions(cfg, name))
    p = kafka.producer(cfg)
    p.produce(name, b"kept", partition=0)
    assert p.flush(10) == 0
    more = dataclasses.replace(cfg.topics, partitions={**cfg.topics.partitions,
                                                       "actions": have + 2})
    grown = dataclasses.replace(cfg, topics=more)
    assert kafka.create_topics(grown)[name] == f"grown from {have}"
    assert len(kafka.partitions(cfg, name)) == have + 2
    assert [m.value() for m in kafka.read(cfg, name, idle_s=0.5)] == [b"kept"]
    assert kafka.create_topics(grown)[name] == "exists"
    assert kafka.create_topics(cfg)[name] == f"exists with {have + 2} partitions"
    assert len(kafka.partitions(cfg, name)) == have + 2
