"""`freshet broker`, `freshet topics` and `freshet produce movielens`, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from freshet import kafka
from freshet.config import load_config
from freshet.data.movielens import load_ratings


def _freshet(*args: str) -> list[str]:
    return [sys.executable, "-m", "freshet.app.cli", *args]


def test_movielens_replay_through_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "FRESHET__WORK_DIR": str(tmp_path), "FRESHET__TOPICS__PREFIX": "cli."}
    broker = subprocess.Popen(_freshet("broker"), env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = broker.stdout.readline()
        assert line.startswith("broker ready: bootstrap 127.0.0.1:"), line
        bootstrap = json.loads((tmp_path / "broker.json").read_text())["bootstrap"]
        assert bootstrap in line

        out = subprocess.run(_freshet("topics"), env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "cli.features: created (4 partitions)" in out.stdout

        t = time.monotonic()
        out = subprocess.run(_freshet("produce", "movielens"), env=env, capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr
        assert "produced" in out.stderr  # progress output
        print(f"produce movielens took {time.monotonic() - t:.1f}s")

        cfg = load_config(path=None, environ=env)
        impressions = [json.loads(m.value()) for m in kafka.read(cfg, "cli.features")]
        actions = [json.loads(m.value()) for m in kafka.read(cfg, "cli.actions")]
        ratings = load_ratings()
        assert len(impressions) == len(ratings) == 100_000
        assert len({i["request_id"] for i in impressions}) == 100_000
        kinds = Counter(a["action"] for a in actions)
        assert kinds["click"] == sum(r.rating >= 4 for r in ratings) == 55_375
        assert kinds["like"] == sum(r.rating == 5 for r in ratings)
        clicked = {a["request_id"] for a in actions if a["action"] == "click"}
        assert len(clicked) == kinds["click"]
        # Every action refers to an impression and comes after it in event time.
        by_id = {i["request_id"]: i for i in impressions}
        assert all(a["ts"] > by_id[a["request_id"]]["ts"] for a in actions)
    finally:
        broker.send_signal(signal.SIGTERM)
        rest, _ = broker.communicate(timeout=20)
    assert broker.returncode == 0
    assert "broker stopped" in rest
    assert not (tmp_path / "broker.json").exists()
