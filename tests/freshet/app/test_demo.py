"""The demo: its pieces, and a shortened run of the whole loop (20,000 ratings)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from freshet.app.demo import DemoOptions, config_env, demo_config, run_demo, services
from freshet.app.demo_watch import MetricsTail
from freshet.config import Config, load_config


def test_children_get_the_demo_config_through_the_environment(tmp_path: Path) -> None:
    cfg = demo_config(Config(), "127.0.0.1:1", 1234, tmp_path)
    assert load_config(path=None, environ=config_env(cfg)) == cfg
    assert cfg.model.slots[0].name == "user_id" and len(cfg.model.slots) == 6
    assert not cfg.serving.log_impressions and cfg.train.order == "event_time"
    assert [s.name for s in services(cfg, tmp_path)] == ["serve", "join", "train"]


def test_the_signals_demo_gives_its_model_a_slot_per_signal_and_the_server_them(
        tmp_path: Path) -> None:
    from server.signals import SignalFeed

    cfg = demo_config(Config(), "127.0.0.1:1", 1234, tmp_path, signals=True)
    assert load_config(path=None, environ=config_env(cfg)) == cfg
    names = [s.name for s in cfg.model.slots]
    assert names == ["user_id", "item_id", "genre", "gender", "age", "occupation",
                     *Config().stats.signals]
    assert {s.optimizer.learning_rate for s in cfg.model.slots[6:]} == {0.01}
    feed = SignalFeed.for_model(cfg)  # what the server and the producer both read
    assert feed is not None and tuple(feed.spec.signals) == tuple(Config().stats.signals)
    assert SignalFeed.for_model(demo_config(Config(), "127.0.0.1:1", 1, tmp_path)) is None


def test_metrics_tail_pairs_a_windows_figures() -> None:
    tail = MetricsTail(Config())
    for name, value, labels in [
        ("auc", 0.7, {"window": "1"}), ("logloss", 0.6, {"window": "1"}),
        ("trained_examples", 2000, {"final": "false"}),
        ("progressive_auc", 0.71, {"final": "false"}),
        ("progressive_auc", 0.99, {"final": "true"}),  # end-of-input figures: ignored
    ]:
        tail.take({"job": "train", "name": name, "value": value, "labels": labels})
    tail.take({"job": "join", "name": "auc", "value": 0.1, "labels": {"window": "9"}})
    assert [(w["auc"], w["trained"], w["cumulative_auc"]) for w in tail.windows] == [
        (0.7, 2000, 0.71)]


def test_short_demo_runs_the_loop_and_writes_the_report(tmp_path: Path) -> None:
    cfg = dataclasses.replace(load_config(path=None, environ={}), work_dir=str(tmp_path))
    code = run_demo(cfg, DemoOptions(limit=20_000, settle_s=8.0, max_wait_s=90.0))
    report = tmp_path / "demo" / "report.md"
    assert code == 0
    text = report.read_text()
    assert "A ranking from the live server" in text and "| 10 |" in text
    # The served AUC from the scores logged with the impressions (joiner -> trainer ->
    # metrics topic) agrees with the demo's own computation from its requests.
    logged = re.search(r"served AUC, from the scores logged.*?\| \*\*([0-9.]+)\*\*", text)
    own = re.search(r"computed by the demo from its own requests.*?\| ([0-9.]+) \|", text)
    assert logged and own, text
    assert abs(float(logged.group(1)) - float(own.group(1))) <= 0.005
    for png in ("demo_auc.png", "demo_freshness.png", "demo_tables.png"):
        assert (tmp_path / "demo" / png).stat().st_size > 1000
    logs = tmp_path / "demo" / "logs"
    assert {p.name for p in logs.glob("*.log")} >= {"serve.log", "join.log", "train.log"}
