"""Is the figure the route reports the model's? The full route against event time.

    python -m benchmarks.honest [--limit N] [--synthetic N]

For MovieLens-100K and the synthetic stream (new users and items, an interest shift),
on an embedded broker, as a user would run them:

1. produce the serving log (impressions and actions) to ``features`` and ``actions``;
2. ``freshet join --bounded``: the joiner over everything produced;
3. ``freshet replay``: the trainer over everything the joiner wrote (``jobs.replay``);
   ``route_auc_*`` is the progressive AUC it reports on the metrics topic;
4. in-process, the same examples read back from the topic, sorted into event-time
   order, through the same trainer (``experiments.walkforward``): ``eventtime_auc_*``.
   ``arrival_auc_*``: the same examples in the order the topic holds them, which is
   what a trainer scoring in arrival order reports.

``default_auc_movielens``: MovieLens-100K in time order with no configuration at all
(``Config()``), in-process. The figures of steps 3 and 4 are the trainer's histogram AUC
(2,048 logit bins, as on the metrics topic); ``default_auc_movielens`` is exact.

Bars: ``route_auc`` within 0.002 of ``eventtime_auc`` on both streams;
``default_auc_movielens >= 0.763``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from freshet import kafka
from freshet.broker import EmbeddedBroker
from freshet.config import Config, load_config
from freshet.produce.sender import send
from freshet.topics import Action, ExampleBatch, Impression

BAR_ROUTE = 0.002
BAR_DEFAULT = 0.763


def examples_in_topic_order(cfg: Config) -> list[dict[str, Any]]:
    """Every example row on the examples topic, in the order a trainer reads them."""
    return [r for m in kafka.read(cfg, cfg.topics.name("examples"), idle_s=2.0)
            for r in ExampleBatch.rows_from_json(m.value())]


def trainer_auc(cfg: Config, rows: list[dict[str, Any]]) -> float:
    """The trainer's progressive AUC over ``rows`` in the given order, in-process."""
    from experiments.walkforward import walk_forward

    step = cfg.train.micro_batch
    batches = [ExampleBatch.from_rows(rows[a:a + step]) for a in range(0, len(rows), step)]
    return walk_forward(batches, cfg.model, cfg.train).trainer.eval.auc()


def route(cfg: Config, events: Iterable[Impression | Action], name: str) -> dict[str, Any]:
    """Produce, join (bounded), replay; then the in-process figures of the same examples."""
    from jobs.join import current_bounds
    from jobs.join import run as join
    from jobs.metrics import read_metrics, summarize
    from jobs.replay import replay
    from udfs.hold import event_key

    kafka.create_topics(cfg)
    sent = send(cfg, events, progress=None)
    t = time.monotonic()
    join(cfg, current_bounds(cfg))
    join_s = time.monotonic() - t
    since = int(time.time() * 1000)
    t = time.monotonic()
    manifest = replay(cfg, None, None, cfg.path("snapshots/replay"))
    replay_s = time.monotonic() - t
    summary = summarize(read_metrics(cfg, since_ms=since))
    if summary is None:
        raise RuntimeError(f"{name}: the replay reported no final figures")
    rows = examples_in_topic_order(cfg)
    event_time = trainer_auc(cfg, sorted(rows, key=event_key))
    arrival = trainer_auc(cfg, rows)
    out = {
        f"events_{name}": sent.events, f"examples_{name}": len(rows),
        f"trained_{name}": summary.examples, f"late_{name}": summary.late,
        f"route_auc_{name}": round(summary.auc, 4), f"eventtime_auc_{name}": round(event_time, 4),
        f"arrival_auc_{name}": round(arrival, 4),
        f"route_minus_eventtime_{name}": round(summary.auc - event_time, 4),
        f"join_s_{name}": round(join_s, 1), f"replay_s_{name}": round(replay_s, 1),
        f"replay_messages_{name}": manifest.messages,
    }
    print(json.dumps(out), flush=True)
    return out


def default_auc_movielens(limit: int = 0) -> float:
    """MovieLens-100K in time order, no configuration at all, in-process (exact AUC)."""
    from experiments.streams import micro_batches, movielens_examples
    from experiments.walkforward import walk_forward

    cfg = Config()
    exs = movielens_examples(limit)
    return walk_forward(micro_batches(exs, cfg.train.micro_batch), cfg.model, cfg.train).auc()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="the first N MovieLens ratings only")
    ap.add_argument("--synthetic", type=int, default=100_000, help="synthetic impressions")
    args = ap.parse_args(argv)

    from freshet.data.movielens import load_ratings
    from freshet.produce import movielens
    from freshet.produce.synthetic import SyntheticSpec
    from freshet.produce.synthetic import events as synthetic_events

    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="freshet-bench-honest-"))
    base = load_config(path=None)  # FRESHET__* overrides apply, no freshet.toml
    ratings = load_ratings()
    ratings = ratings[: args.limit] if args.limit else ratings
    result: dict[str, Any] = {"benchmark": "honest", "parallelism": base.flink.parallelism}
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        for name, events in (
            ("movielens", movielens.events(ratings)),
            ("synthetic", synthetic_events(SyntheticSpec(impressions=args.synthetic))),
        ):
            cfg = dataclasses.replace(
                base, work_dir=str(work / name),
                kafka=dataclasses.replace(base.kafka, bootstrap=broker.bootstrap),
                topics=dataclasses.replace(base.topics, prefix=f"h{uuid.uuid4().hex[:6]}."))
            result.update(route(cfg, events, name))
    result["default_auc_movielens"] = round(default_auc_movielens(args.limit), 4)
    result["bars"] = {
        "route_within_0.002_movielens": abs(result["route_minus_eventtime_movielens"]) <= BAR_ROUTE,
        "route_within_0.002_synthetic": abs(result["route_minus_eventtime_synthetic"]) <= BAR_ROUTE,
        "default_auc_movielens_ge_0.763": result["default_auc_movielens"] >= BAR_DEFAULT,
    }
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
