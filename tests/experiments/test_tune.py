"""``freshet tune`` on a stream nobody tuned for: the synthetic one (new IDs, a shift)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from experiments.streams import synthetic_examples
from experiments.tune import Setting, evaluate, range_rows, to_toml
from freshet import kafka
from freshet.app import cli
from freshet.app.demo import config_env
from freshet.config import Config, load_config
from freshet.produce.synthetic import SyntheticSpec
from freshet.topics import encode_examples
from ps.config import AdmissionConfig, FTRLConfig, HashedTableConfig


def test_tune_writes_settings_at_least_as_good_as_the_defaults(
        cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    exs = synthetic_examples(SyntheticSpec(impressions=6000, seed=3, start_ms=1_700_000_000_000))
    p = kafka.producer(cfg)
    for a in range(0, len(exs), 500):  # out of event-time order inside the topic
        chunk = exs[a:a + 500][::-1]
        p.produce(cfg.topics.name("examples"), encode_examples(chunk), timestamp=chunk[0].ts)
    assert p.flush(30) == 0
    for k, v in config_env(cfg).items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "tuned.toml"
    assert cli.main(["--config", "/nonexistent.toml", "tune", "--out", str(out),
                     "--sparse-lr", "0.02,0.3", "--first-order-scale", "1,5",
                     "--dense-lr", "0.001", "--micro-batch", "32"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    assert printed.count(" | ") == 1 + 5  # the header and five settings: defaults + 2 x 2

    rows = range_rows(cfg, None, None)
    assert len(rows) == len(exs) and [r["ts"] for r in rows] == sorted(e.ts for e in exs)
    defaults = evaluate(cfg, rows)["auc"]  # the test's config is the defaults' model
    assert result["current_auc"] == pytest.approx(defaults, abs=1e-4)
    assert result["auc"] >= defaults
    tuned = load_config(out, environ={})  # the written file is a config freshet reads
    assert Setting.of(tuned) == Setting(**result["best"])
    rerun = dataclasses.replace(cfg, model=tuned.model, train=tuned.train)
    assert evaluate(rerun, rows)["auc"] == pytest.approx(result["auc"], abs=1e-4)


def test_the_written_settings_load_back_with_each_slots_policies(tmp_path: Path) -> None:
    """``tuned.toml`` writes each slot's policies as inline tables that load back whole."""
    base = Config()
    slots = [dataclasses.replace(s, optimizer=FTRLConfig(l1=0.1), admission=AdmissionConfig(2),
                                 table=HashedTableConfig(10) if s.name == "genre" else None)
             for s in base.model.slots]
    cfg = base.replace(model=dataclasses.replace(base.model, slots=slots))
    setting = Setting(0.2, 5.0, 0.001, 32)
    out = tmp_path / "tuned.toml"
    out.write_text(to_toml(cfg, setting, "a note"))
    assert 'optimizer = {kind = "ftrl", learning_rate = 0.2' in out.read_text()
    assert load_config(out, environ={}).model == setting.apply(cfg).model
