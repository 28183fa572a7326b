"""Helpers of the fault tests that run Freshet's commands as users do: a config file,
``freshet <command>`` as a child process (its own process group, output in a log), and
what the examples topic holds, read committed.

The tests get them as the ``faults`` fixture (``faults.cli(...)``, ``faults.joined(cfg)``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from freshet.config import Config
from freshet.supervise import Service


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        # TOML has no null: a None (e.g. a slot's table: the trainer's) is left out.
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()
                               if x is not None) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def write_toml(cfg: Config, path: Path) -> Path:
    """``cfg`` as a ``freshet.toml`` (every key), for ``freshet --config``."""
    data = dataclasses.asdict(cfg)
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(name: str, args: list[str], toml: Path, log_dir: Path) -> Service:
    """``freshet --config TOML <args>`` started as a child process (log: ``<name>.log``)."""
    return Service(name, [sys.executable, "-m", "freshet.app.cli", "--config", str(toml), *args],
                   log_dir=log_dir).start()


@dataclass
class Joined:
    """What the examples topic holds (committed records only)."""

    rows: list[dict] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> Counter[str]:
        return Counter(r["request_id"] for r in self.rows)

    @property
    def positives(self) -> int:
        return sum(1 for r in self.rows if r["label"] == 1)

    @property
    def negatives(self) -> int:
        return sum(1 for r in self.rows if r["label"] == 0)

    def twice(self) -> list[str]:
        return sorted(r for r, n in self.ids.items() if n > 1)

    def fingerprint(self) -> int:
        return fingerprint(r["request_id"] for r in self.rows)


def joined(cfg: Config, idle_s: float = 1.0) -> Joined:
    from freshet import kafka
    from freshet.topics import ExampleBatch

    out = Joined()
    for m in kafka.read(cfg, cfg.topics.name("examples"), idle_s=idle_s):
        out.rows += ExampleBatch.rows_from_json(m.value())
    return out


def dead_letters(cfg: Config) -> list[dict]:
    from freshet import kafka

    return [json.loads(m.value())
            for m in kafka.read(cfg, cfg.topics.name("dead_letters"), idle_s=1.0)]


def fingerprint(request_ids: Iterable[str]) -> int:
    """The trainer's ledger fingerprint (:class:`udfs.trainer.Ledger`) of ``request_ids``."""
    from udfs.trainer import Ledger

    ledger = Ledger()
    ledger.add(list(request_ids))
    return ledger.fingerprint


def end_markers(cfg: Config, ts: int) -> int:
    """One malformed record per partition of features and actions, stamped ``ts``: the
    online joiner takes a bad record's Kafka timestamp as its event time, so these move
    its watermark past the last windows (as the demo ends a replay). Returns how many
    (each becomes a dead letter)."""
    from freshet import kafka

    p, n = kafka.producer(cfg), 0
    for topic in ("features", "actions"):
        name = cfg.topics.name(topic)
        for part in kafka.partitions(cfg, name):
            p.produce(name, b"end-of-stream marker", partition=part, timestamp=ts)
            n += 1
    assert p.flush(10) == 0
    return n


def wait_for(what: Callable[[], Any], timeout_s: float, why: str,
             services: Iterable[Service] = (), every_s: float = 1.0) -> Any:
    """Poll ``what`` until it returns something true; fail with the logs' tails when a
    service exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    services = list(services)
    while True:
        got = what()
        if got:
            return got
        for s in services:
            assert s.running, f"{s.name} exited ({s.process.returncode}):\n{s.log_tail(60)}"
        assert time.monotonic() < deadline, f"timed out: {why}\n" + "\n".join(
            f"--- {s.name}:\n{s.log_tail(30)}" for s in services)
        time.sleep(every_s)


@pytest.fixture
def faults() -> SimpleNamespace:
    """The helpers above, for the tests in this directory."""
    return SimpleNamespace(write_toml=write_toml, cli=cli, joined=joined,
                           dead_letters=dead_letters, fingerprint=fingerprint,
                           end_markers=end_markers, wait_for=wait_for)
