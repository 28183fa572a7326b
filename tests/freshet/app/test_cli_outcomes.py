"""The CLI says what happened: a run that trained or joined nothing exits non-zero and
names the cause; one that did prints the figures the metrics topic holds."""

from __future__ import annotations

import json

import pytest

from freshet import kafka
from freshet.app import cli
from freshet.app.demo import config_env
from freshet.config import Config
from freshet.produce import movielens
from freshet.topics import Impression


def _use(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``freshet ...`` in this process load ``cfg`` (as a deployment's env would)."""
    for k, v in config_env(cfg).items():
        monkeypatch.setenv(k, v)


def test_a_join_whose_every_event_is_dead_lettered_exits_non_zero_and_says_why(
        cfg: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A producer that leaves record timestamps to the broker: MovieLens' 1997 event
    # times are then years from the records' Kafka timestamps.
    p = kafka.producer(cfg)
    events = list(movielens.events())[:300]
    for ev in events:
        p.produce(cfg.topics.name(ev.topic), ev.to_json(), key=ev.key())
    assert p.flush(30) == 0
    _use(cfg, monkeypatch)
    assert cli.main(["--config", "/nonexistent.toml", "join", "--bounded"]) == 1
    err = capsys.readouterr().err
    assert f"all {len(events):,} events dead-lettered" in err
    assert "does the producer set record timestamps to event time?" in err


def test_a_replay_of_malformed_examples_exits_non_zero_and_says_why(
        cfg: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    p = kafka.producer(cfg)
    for k in range(3):
        p.produce(cfg.topics.name("examples"), json.dumps({"v": 1, "examples": [{"k": k}]}),
                  timestamp=1000 + k)
    assert p.flush(30) == 0
    _use(cfg, monkeypatch)
    assert cli.main(["--config", "/nonexistent.toml", "replay"]) == 1
    err = capsys.readouterr().err
    assert "all 3 messages were dead-lettered" in err and "malformed example batch" in err


def test_a_replay_of_an_empty_range_exits_non_zero(
        cfg: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _use(cfg, monkeypatch)
    assert cli.main(["--config", "/nonexistent.toml", "replay"]) == 1
    assert "the range holds no examples messages" in capsys.readouterr().err


def test_a_replay_prints_the_served_and_the_event_time_figures(
        cfg: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from freshet.topics import Example, encode_examples

    rows = [Example(f"r{i}", i % 7, i % 5, 1000 * i, int(i % 3 == 0),
                    slots={"user_id": [i % 5], "item_id": [i % 7]},
                    served_score=0.9 if i % 3 == 0 else 0.1) for i in range(400)]
    p = kafka.producer(cfg)
    for a in range(0, 400, 100):
        p.produce(cfg.topics.name("examples"), encode_examples(rows[a:a + 100]),
                  timestamp=rows[a + 99].ts)
    assert p.flush(30) == 0
    _use(cfg, monkeypatch)
    assert cli.main(["--config", "/nonexistent.toml", "replay"]) == 0
    out = capsys.readouterr().out
    assert "trained 400 examples" in out
    assert "served AUC 1.0000" in out and "over 400 scored impressions" in out
    assert "(event-time order)" in out


def test_impressions_name_what_serving_scored_them_with() -> None:
    imp = Impression("r", 1, 2, 3, {}, served_score=0.5, model_seq=4, table_version=5)
    assert Impression.from_json(imp.to_json()) == imp
    assert "served_score" not in Impression("r", 1, 2, 3).to_dict()
