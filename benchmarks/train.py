"""Training benchmark on MovieLens-100K in time order: quality and speed, one run.

    python -m benchmarks.train [--parallelism 1,2] [--micro-batch 32] [--message-examples 512]

Produces the ratings as examples-topic messages (``--message-examples`` per message,
512 by default; one partition so the stream stays in time order) on an embedded
broker, then measures

- the Flink training job (``jobs.train``) end to end from the examples topic, at each
  parallelism: progressive AUC/logloss (from its metrics) and examples/s (between the
  first and last evaluation window, so job start and TensorFlow import are excluded;
  ``job_wall_s`` includes them);
- the same training code (``udfs.shard.ShardWorker``: decode, train, state, sync) as a
  plain Python loop over the same messages;
- logistic regression and item popularity, progressively, on the same stream.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from freshet.config import Config, SyncConfig, TrainConfig, load_config
from freshet.data import movielens
from freshet.data.movielens import SLOTS, model_configs
from freshet.topics import example_messages

WINDOW = 5120  # examples per progressive-evaluation window (10 messages of 512)


def produce(cfg: Config, messages: list[tuple[int, bytes]]) -> dict[int, int]:
    from freshet import kafka

    p = kafka.producer(cfg)
    topic = cfg.topics.name("examples")
    for ts, value in messages:
        p.produce(topic, value, partition=0, timestamp=ts)
        p.poll(0)
    assert p.flush(30) == 0
    return kafka.end_offsets(cfg, topic)


def run_flink(cfg: Config, stop: dict[int, int]) -> dict[str, Any]:
    """Run the training job over the topic up to ``stop``; read back its metrics."""
    from freshet import kafka
    from jobs.train import build
    from udfs.shard import merged_auc

    t = time.monotonic()
    build(cfg, start={p: 0 for p in stop}, stop=stop).execute("bench-train")
    wall = time.monotonic() - t
    metrics = [json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("metrics"), 1.0)]
    final = [m for m in metrics if m["labels"].get("final") == "true"]
    hists = [json.loads(m["labels"]["histogram"]) for m in final if m["name"] == "eval_histogram"]
    trained = [m for m in metrics if m["name"] == "trained_examples"]
    windows = sorted((m for m in trained if m["labels"]["final"] == "false"), key=lambda m: m["ts"])
    examples = sum(m["value"] for m in final if m["name"] == "trained_examples")
    loss = sum(h["loss"] for h in hists)
    rate = None
    if len(windows) >= 2:
        # Examples trained between the first and last window report (all shards).
        first, last = windows[0]["ts"], windows[-1]["ts"]
        done_first = WINDOW * cfg.train.parallelism  # every shard's first window
        span = max(last - first, 1) / 1000
        rate = (sum(m["value"] for m in _last_per_shard(windows)) - done_first) / span
    subtasks = sorted(int(m["labels"]["subtask"]) for m in final
                      if m["name"] == "trained_examples")
    return {"examples": int(examples), "auc": merged_auc(hists), "logloss": loss / examples,
            "examples_per_s": rate, "job_wall_s": wall, "subtasks": subtasks}


def _last_per_shard(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for m in windows:
        last[m["labels"]["shard"]] = m
    return list(last.values())


def run_inprocess(cfg: Config, messages: list[bytes]) -> dict[str, Any]:
    from udfs.shard import ShardWorker
    from udfs.shard_state import MemoryState

    w = ShardWorker(cfg, 0, MemoryState())
    w.process(messages[0])  # warm-up outside the clock: tf.function trace, numba
    w = ShardWorker(cfg, 0, MemoryState())
    t = time.perf_counter()
    for m in messages:
        w.process(m)
    w.finish()
    dt = time.perf_counter() - t
    ev = w.trainer.eval
    return {"examples": ev.count, "auc": ev.auc(), "logloss": ev.logloss(),
            "examples_per_s": ev.count / dt}


def popularity_auc(messages: list[bytes]) -> float:
    import numpy as np

    from freshet.topics import ExampleBatch
    from ps.evaluation import auc
    from udfs.popularity import ItemPopularity

    pop, scores, labels = ItemPopularity(), [], []
    for m in messages:
        b = ExampleBatch.from_json(m)
        scores.append(pop.score_then_learn(b.item_id, b.label))
        labels.append(b.label)
    return auc(np.concatenate(scores), np.concatenate(labels))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--parallelism", default="1,2", help="comma-separated Flink runs")
    ap.add_argument("--micro-batch", type=int, default=TrainConfig().micro_batch)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N ratings")
    ap.add_argument("--message-examples", type=int, default=512,
                    help="examples per examples-topic message (the trainer's batch per call)")
    args = ap.parse_args(argv)

    from freshet.broker import EmbeddedBroker
    from freshet.kafka import create_topics
    exs = movielens.examples()
    if args.limit:
        exs = exs[: args.limit]
    if args.message_examples < 1:
        ap.error("--message-examples must be at least 1")
    msgs = list(example_messages(exs, batch_size=args.message_examples))
    deepfm, lr = model_configs(args.dim)
    work = Path(tempfile.mkdtemp(prefix="freshet-bench-train-"))
    base = load_config(path=None)  # FRESHET__* overrides apply
    train = dataclasses.replace(base.train, micro_batch=args.micro_batch,
                                eval_window_examples=WINDOW)
    cfg = dataclasses.replace(base, work_dir=str(work), model=deepfm, train=train,
                              sync=SyncConfig(sparse_sync_interval_s=1.0))
    # The messages are in event-time order on one partition, so arrival order is event
    # time here; the trainer's label says which order it scored in.
    result: dict[str, Any] = {"dataset": "movielens-100k", "slots": len(SLOTS), "dim": args.dim,
                              "order": cfg.train.order, "messages_in_event_time_order": True,
                              "bundle_time_ms": cfg.train.bundle_time_ms,
                              "micro_batch": args.micro_batch,
                              "message_examples": args.message_examples,
                              "message_batch": args.message_examples,
                              "messages": len(msgs)}

    payloads = [v for _, v in msgs]
    inproc = run_inprocess(cfg, payloads)
    inproc_lr = run_inprocess(dataclasses.replace(cfg, model=lr), payloads)
    result["auc_popularity"] = popularity_auc(payloads)

    runs = {}
    with EmbeddedBroker(log_path=work / "kafka.log") as broker:
        for p in [int(x) for x in args.parallelism.split(",")]:
            c = dataclasses.replace(
                cfg,
                kafka=dataclasses.replace(cfg.kafka, bootstrap=broker.bootstrap),
                topics=dataclasses.replace(cfg.topics, prefix=f"b{uuid.uuid4().hex[:6]}."),
                train=dataclasses.replace(cfg.train, parallelism=p),
            )
            create_topics(c)
            stop = produce(c, msgs)
            runs[p] = run_flink(c, stop)
            print(json.dumps({"parallelism": p, **runs[p]}), flush=True)

    first = min(runs)
    result.update({
        "examples": runs[first]["examples"],
        "examples_per_s": runs[first]["examples_per_s"],
        "inprocess_examples_per_s": inproc["examples_per_s"],
        "auc": runs[first]["auc"],
        "logloss": runs[first]["logloss"],
        "auc_inprocess": inproc["auc"],
        "auc_lr": inproc_lr["auc"],
        "auc_popularity": result["auc_popularity"],
        "lr_examples_per_s": inproc_lr["examples_per_s"],
        "parallelism": first,
        "job_wall_s": runs[first]["job_wall_s"],
    })
    for p, r in runs.items():
        if p != first:
            result.update({f"auc_p{p}": r["auc"], f"examples_p{p}": r["examples"],
                           f"examples_per_s_p{p}": r["examples_per_s"],
                           f"job_wall_s_p{p}": r["job_wall_s"],
                           f"subtasks_p{p}": r["subtasks"]})
    result["cpus"] = os.cpu_count()
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
    return result


if __name__ == "__main__":
    main()
