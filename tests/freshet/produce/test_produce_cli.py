"""`freshet produce file` says what went wrong: a wrong mapping exits 2 naming the key,
a file whose every row is malformed exits 1 after dead-lettering each row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freshet import kafka
from freshet.app import cli
from freshet.app.demo import config_env
from freshet.config import Config

MAPPING = json.dumps({"user": "user", "item": "item", "timestamp": "ts",
                      "timestamp_unit": "s"})


def _use(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in config_env(cfg).items():
        monkeypatch.setenv(k, v)


def test_a_wrong_mapping_exits_2_naming_the_key_and_the_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user,item,time\n1,2,3\n")
    code = cli.main(["--config", "/nonexistent.toml", "produce", "file", str(log),
                     "--mapping", MAPPING])
    assert code == 2
    assert (f"freshet produce file: mapping: timestamp: unknown column 'ts'; file:{log} has "
            "columns: user, item, time") in capsys.readouterr().err


def test_a_file_of_malformed_rows_exits_1_and_dead_letters_each(
        cfg: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user,item,ts\n1,2,soon\n,2,5\n")
    _use(cfg, monkeypatch)
    code = cli.main(["--config", "/nonexistent.toml", "produce", "file", str(log),
                     "--mapping", MAPPING])
    captured = capsys.readouterr()
    assert code == 1
    assert "nothing produced: all 2 records were malformed" in captured.err
    assert "  1  timestamp: soon is not a number of seconds\n" in captured.err
    assert "impressions=0 actions=0 by_action={} events_per_s=0 malformed=2" in captured.out
    dead = [json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("dead_letters"), 1.0)]
    assert sorted((d["source"], d["reason"], d["payload"]) for d in dead) == [
        (f"file:{log}", "line 2: timestamp: soon is not a number of seconds", "1,2,soon"),
        (f"file:{log}", "line 3: user: missing", ",2,5")]
