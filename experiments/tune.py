"""``freshet tune``: a small walk-forward grid over a replay range, in-process.

    freshet tune [--from T1] [--to T2] [--out tuned.toml] [--sparse-lr 0.05,0.1,0.2]
                 [--first-order-scale 1,5] [--dense-lr 0.001,0.003] [--micro-batch 32,128]

Reads the examples-topic messages of the range (as ``freshet replay`` selects them),
sorts them into event-time order and trains the configured model on them once per
setting of the grid, with the trainer the Flink job runs, scoring every example before
learning it (walk-forward). It prints a table as it goes (progressive AUC over the
range and over its last fifth, log loss, examples/s) and writes the best setting by
AUC to a TOML file that ``freshet`` takes as its config (``--config`` or
``FRESHET_CONFIG``), or whose sections you copy into ``freshet.toml``. The defaults are
always in the grid, so the setting written is at least as good as them on the range.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freshet.config import Config
from freshet.topics import ExampleBatch
from ps import evaluation


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of the grid."""

    sparse_lr: float
    first_order_scale: float
    dense_lr: float
    micro_batch: int

    def apply(self, cfg: Config) -> Config:
        slots = [dataclasses.replace(s, optimizer=dataclasses.replace(
            s.optimizer, learning_rate=self.sparse_lr)) for s in cfg.model.slots]
        model = dataclasses.replace(cfg.model, slots=slots, dense_learning_rate=self.dense_lr,
                                    first_order_scale=self.first_order_scale)
        return cfg.replace(model=model,
                           train=dataclasses.replace(cfg.train, micro_batch=self.micro_batch))

    @staticmethod
    def of(cfg: Config) -> Setting:
        """The setting ``cfg`` has (its first slot's learning rate)."""
        return Setting(cfg.model.slots[0].optimizer.learning_rate, cfg.model.first_order_scale,
                       cfg.model.dense_learning_rate, cfg.train.micro_batch)


def grid(cfg: Config, sparse_lr: Sequence[float], scale: Sequence[float],
         dense_lr: Sequence[float], micro_batch: Sequence[int]) -> list[Setting]:
    """Every combination, with ``cfg``'s own setting first (and once)."""
    own = Setting.of(cfg)
    points = [Setting(*p) for p in itertools.product(sparse_lr, scale, dense_lr, micro_batch)]
    return [own, *[p for p in points if p != own]]


def range_rows(cfg: Config, from_ms: int | None, to_ms: int | None) -> list[dict[str, Any]]:
    """The example rows of the range's messages, in event-time order."""
    from freshet import kafka
    from jobs.replay import time_range
    from udfs.hold import event_key

    r = time_range(cfg, from_ms, to_ms)
    rows: list[dict[str, Any]] = []
    topic = cfg.topics.name("examples")
    for m in kafka.read(cfg, topic, idle_s=1.0, start=r.start):
        if m.offset() < r.stop.get(m.partition(), 0):
            try:
                batch_rows = ExampleBatch.rows_from_json(m.value())
                ExampleBatch.from_rows(batch_rows)  # malformed messages are left out
            except Exception:  # noqa: BLE001 - SchemaError and friends: not training data
                continue
            rows.extend(batch_rows)
    rows.sort(key=event_key)
    return rows


def evaluate(cfg: Config, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Walk-forward figures of ``cfg`` over ``rows`` (in order): AUC over all and over the
    last fifth, log loss, examples/s."""
    from experiments.walkforward import walk_forward

    step = cfg.train.micro_batch
    batches = [ExampleBatch.from_rows(rows[a:a + step]) for a in range(0, len(rows), step)]
    t = time.perf_counter()
    run = walk_forward(batches, cfg.model, cfg.train)
    seconds = time.perf_counter() - t
    tail = len(run.labels) * 4 // 5
    z = run.online.astype(np.float64)
    loss = float(np.mean(np.maximum(z, 0) - z * run.labels + np.log1p(np.exp(-np.abs(z)))))
    return {"auc": run.auc(), "auc_last_fifth": evaluation.auc(z[tail:], run.labels[tail:]),
            "logloss": loss, "examples_per_s": len(rows) / max(seconds, 1e-9)}


def to_toml(cfg: Config, setting: Setting, note: str) -> str:
    """The ``[model]`` and ``[train]`` settings of ``setting.apply(cfg)`` as TOML."""
    tuned = setting.apply(cfg)

    def value(v: Any) -> str:
        if isinstance(v, dict):  # a slot's policy: an inline table, its kind first
            items = sorted(v.items(), key=lambda kv: kv[0] != "kind")
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in items) + "}"
        return json.dumps(v)  # strings, numbers and booleans read back the same in TOML

    lines = [f"# {line}" for line in note.splitlines()] + ["", "[model]"]
    m = dataclasses.asdict(tuned.model)
    for k in ("model_id", "kind", "hidden", "dense_learning_rate", "first_order_scale"):
        lines.append(f"{k} = {value(m[k])}")
    for slot in m["slots"]:
        lines += ["", "[[model.slots]]"] + [f"{k} = {value(v)}" for k, v in slot.items()
                                            if v is not None]  # None: TOML has no null
    lines += ["", "[train]", f"micro_batch = {tuned.train.micro_batch}", ""]
    return "\n".join(lines)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The command's options (``freshet tune``)."""
    ap.add_argument("--from", dest="from_time", help="ISO time or epoch ms (default: beginning)")
    ap.add_argument("--to", dest="to_time", help="ISO time or epoch ms, exclusive (default: end)")
    ap.add_argument("--out", default="tuned.toml", help="where to write the best setting")
    ap.add_argument("--sparse-lr", default="0.05,0.1,0.2", help="slots' learning rates")
    ap.add_argument("--first-order-scale", default="1,5")
    ap.add_argument("--dense-lr", default="0.001,0.003")
    ap.add_argument("--micro-batch", default="32,128")


def main(cfg: Config, args: argparse.Namespace) -> int:
    """Run the grid; print the table; write the best setting. Returns the exit code."""
    from jobs.replay import parse_time

    rows = range_rows(cfg, parse_time(args.from_time), parse_time(args.to_time))
    labels = sum(1 for r in rows if r.get("label") == 1)
    if not rows or labels in (0, len(rows)):
        print(f"freshet tune: the range holds {len(rows):,} examples ({labels:,} positive); "
              "the grid needs both labels", file=sys.stderr)
        return 1
    points = grid(cfg, _floats(args.sparse_lr), _floats(args.first_order_scale),
                  _floats(args.dense_lr), [int(x) for x in _floats(args.micro_batch)])
    print(f"tuning on {len(rows):,} examples ({labels:,} positive), {len(points)} settings, "
          "walk-forward in event-time order", flush=True)
    header = (f"{'sparse lr':>9} {'1st-order':>9} {'dense lr':>9} {'batch':>5} | "
              f"{'AUC':>6} {'last 1/5':>8} {'log loss':>8} {'ex/s':>7}")
    print(header, flush=True)
    results = []
    for k, p in enumerate(points):
        r = evaluate(p.apply(cfg), rows)
        results.append((p, r))
        mark = "  (current)" if k == 0 else ""
        print(f"{p.sparse_lr:9g} {p.first_order_scale:9g} {p.dense_lr:9g} {p.micro_batch:5d} | "
              f"{r['auc']:6.4f} {r['auc_last_fifth']:8.4f} {r['logloss']:8.4f} "
              f"{r['examples_per_s']:7,.0f}{mark}", flush=True)
    best, best_r = max(results, key=lambda pr: pr[1]["auc"])
    current = results[0][1]["auc"]
    note = (f"Written by `freshet tune` on {len(rows):,} examples: walk-forward AUC "
            f"{best_r['auc']:.4f} against {current:.4f} for the settings it started from.\n"
            f"Use with `freshet --config {args.out} ...` or FRESHET_CONFIG={args.out}.")
    Path(args.out).write_text(to_toml(cfg, best, note))
    print(f"best: sparse lr {best.sparse_lr:g}, first-order scale {best.first_order_scale:g}, "
          f"dense lr {best.dense_lr:g}, micro-batch {best.micro_batch}: AUC "
          f"{best_r['auc']:.4f} (current settings {current:.4f}); written to {args.out}",
          flush=True)
    print(json.dumps({"best": dataclasses.asdict(best), **{k: round(v, 4) for k, v in
                                                           best_r.items()},
                      "current_auc": round(current, 4), "examples": len(rows)}), flush=True)
    return 0

