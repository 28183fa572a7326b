"""A user's own log end to end through the CLI: `freshet broker`, `freshet topics`,
`freshet produce file ... --mapping ...`, `freshet join --bounded`, `freshet replay`.

The log is the synthetic stream written as one JSON line per impression (its click
in a column), shuffled, with malformed lines among them. The joiner must make exactly
one example per good impression, positive exactly when its row has a click, and the
replay must train every one; each malformed line is dead-lettered with its line number.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from freshet import kafka
from freshet.config import load_config
from freshet.produce.synthetic import SyntheticSpec, events

IMPRESSIONS = 3000
BAD_LINES = {  # line number in the file -> content
    7: "not json",
    100: json.dumps({"request": "bad-1", "user": 1, "item": 2, "time": 1, "clicked": "wink",
                     "genre": 0}),
    1500: json.dumps({"request": "bad-2", "item": 2, "time": 1, "clicked": "", "genre": 0}),
}
MAPPING = """\
request_id = "request"
user = "user"
item = "item"
timestamp = "time"
timestamp_unit = "ms"
action = "clicked"
action_delay_ms = 2000

[slots]
user = "user_id"
item = "item_id"
genre = "genre"
"""


def _freshet(*args: str) -> list[str]:
    return [sys.executable, "-m", "freshet.app.cli", *args]


def write_log(path: Path) -> set[str]:
    """The log file; returns the request IDs whose row has a click."""
    spec = SyntheticSpec(impressions=IMPRESSIONS, seed=7, start_ms=1_700_000_000_000)
    evs = list(events(spec))
    clicked = {e.request_id for e in evs if e.topic == "actions"}
    rows = [json.dumps({"request": e.request_id, "user": e.user_id, "item": e.item_id,
                        "time": e.ts, "genre": e.slots["genre"][0],
                        "clicked": "click" if e.request_id in clicked else ""})
            for e in evs if e.topic == "features"]
    random.Random(0).shuffle(rows)  # the source sorts by event time
    for line in sorted(BAD_LINES):
        rows.insert(line - 1, BAD_LINES[line])
    path.write_text("\n".join(rows) + "\n")
    return clicked


def test_a_log_file_through_produce_join_and_replay(tmp_path: Path) -> None:
    log, mapping = tmp_path / "log.jsonl", tmp_path / "mapping.toml"
    clicked = write_log(log)
    mapping.write_text(MAPPING)
    env = {**os.environ, "FRESHET__WORK_DIR": str(tmp_path / "work"),
           "FRESHET__TOPICS__PREFIX": "file.", "FRESHET__FLINK__PARALLELISM": "1",
           "FRESHET__TRAIN__PARALLELISM": "1"}
    broker = subprocess.Popen(_freshet("broker"), env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert broker.stdout is not None
        assert broker.stdout.readline().startswith("broker ready")

        def freshet(*args: str) -> subprocess.CompletedProcess[str]:
            out = subprocess.run(_freshet(*args), env=env, capture_output=True, text=True,
                                 timeout=600)
            assert out.returncode == 0, f"freshet {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
            return out

        freshet("topics")
        out = freshet("produce", "file", str(log), "--mapping", str(mapping))
        assert (f"impressions={IMPRESSIONS} actions={len(clicked)} "
                f"by_action={{'click': {len(clicked)}}}") in out.stdout
        assert "malformed=3" in out.stdout
        assert f"3 malformed records in file:{log} (skipped), by reason:" in out.stderr
        assert "  line 7: not JSON (Expecting value)\n    not json\n" in out.stderr

        cfg = load_config(path=None, environ=env)
        dead = [json.loads(m.value()) for m in kafka.read(cfg, "file.dead_letters", 1.0)]
        by_line = {int(d["reason"].split(":")[0].removeprefix("line ")): d for d in dead}
        assert len(dead) == len(by_line) == len(BAD_LINES)
        assert {n: (d["source"], d["payload"]) for n, d in by_line.items()} == {
            n: (f"file:{log}", text) for n, text in BAD_LINES.items()}
        assert {d["reason"] for d in dead} >= {
            "line 100: action: 'wink' is not one of click, like, finish",
            "line 1500: user: missing"}

        out = freshet("join", "--bounded")
        negatives = IMPRESSIONS - len(clicked)
        assert (f"joined: {IMPRESSIONS:,} examples ({len(clicked):,} positives, "
                f"{negatives:,} negatives)") in out.stdout
        labels: Counter[str] = Counter()
        positives = set()
        for m in kafka.read(cfg, "file.examples", idle_s=2.0):
            for r in json.loads(m.value())["examples"]:
                labels[r["request_id"]] += 1
                if r["label"]:
                    positives.add(r["request_id"])
        assert len(labels) == IMPRESSIONS and set(labels.values()) == {1}
        assert positives == clicked

        out = freshet("replay")
        assert f"trained {IMPRESSIONS:,} examples" in out.stdout
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.communicate(timeout=30)
    assert broker.returncode == 0
