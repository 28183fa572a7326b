"""Benchmark of the online joiner against a SQL passthrough, on the MovieLens replay.

Starts an embedded broker, produces the MovieLens-100K serving log (100,000 impressions,
76,576 actions) plus malformed records, then runs, at the config's parallelism:

1. the passthrough (``sql/passthrough.sql``: both topics copied, no parsing);
2. the joiner (``sql/`` joiner files), bounded at the produced end offsets;
3. the passthrough again, then the parse-only baseline (``sql/parse_only.sql``: the
   joiner's sources and parsing, no join, no state). Both run in a JVM that has now
   compiled their code, so they compare with each other, not with the first two
   (the first job in a JVM pays most of the JIT compilation: a warm passthrough ran
   1.2-1.6x faster than the cold one). ``parse_only_ratio`` bounds what any joiner
   that parses every record can reach against a passthrough. They run after the
   joiner so that its figure is measured as it always was.

Rates are input events over the span from a job's first to its last output record
(Kafka timestamps), so the ~10 s job start-up is excluded from both; ``first_output_s``
is from job submission to the joiner's first output. The last line printed is JSON.

``joiner_cpu_s`` says where the joiner's CPU went (the mini-cluster JVM's threads, by
operator). ``--repeat N`` replays MovieLens N times back to back: the job's fixed costs
(planning, JIT compilation: ~15 CPU s) then weigh less against the per-event ones.

Run: ``python -m benchmarks.join [--sample-rate R] [--bad N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from benchmarks.proc import stat
from freshet import kafka
from freshet.broker import EmbeddedBroker
from freshet.config import Config, load_config
from freshet.data.movielens import Rating, load_ratings
from freshet.produce import movielens
from freshet.produce.sender import send
from freshet.topics import Action, ExampleBatch
from jobs.join import JOINER_SQL, PARSE_ONLY_SQL, PASSTHROUGH_SQL, Bounds, keeps_negative, run

BAD_RECORDS = (b"not json", b'{"request_id": "x", "item_id": "7"}', b"[1, 2]")


def replay(repeat: int) -> list[Rating]:
    """MovieLens-100K ``repeat`` times back to back, each copy after the previous one in
    event time (so request ids and windows never collide across copies)."""
    ratings = load_ratings()
    span = ratings[-1].ts - ratings[0].ts + 86_400_000
    return [dataclasses.replace(r, ts=r.ts + k * span) for k in range(repeat) for r in ratings]


def produce(cfg: Config, bad: int, repeat: int = 1) -> tuple[int, int, int]:
    """Produce the replay (``repeat`` copies) and ``bad`` malformed records per topic;
    return (events, expected positives, expected negatives kept)."""
    positives: set[str] = set()
    impressions: list[tuple[str, int]] = []

    def note(ev: object) -> None:
        if isinstance(ev, Action):
            positives.add(ev.request_id)
        else:
            impressions.append((ev.request_id, ev.item_id))  # type: ignore[attr-defined]

    stats = send(cfg, movielens.events(replay(repeat)), progress=None, on_event=note)
    p = kafka.producer(cfg)
    for topic in ("features", "actions"):
        for i in range(bad):
            p.produce(cfg.topics.name(topic), BAD_RECORDS[i % len(BAD_RECORDS)])
    assert p.flush(30) == 0
    rate = cfg.joiner.negative_sample_rate
    negatives = sum(
        1 for rid, item in impressions if rid not in positives and keeps_negative(rid, item, rate)
    )
    return stats.events + 2 * bad, len(positives), negatives


def outputs(cfg: Config, topic: str, start: dict[int, int]) -> list[tuple[int, bytes]]:
    """(Kafka timestamp ms, value) of every record after ``start``."""
    return [
        (m.timestamp()[1], m.value())
        for m in kafka.read(cfg, cfg.topics.name(topic), idle_s=2.0, start=start)
    ]


def reasons(dead: list[tuple[int, bytes]]) -> dict[str, int]:
    return dict(Counter(json.loads(v)["reason"].split(":")[0] for _, v in dead))


def span_rate(events: int, stamps: list[int]) -> float:
    span = (max(stamps) - min(stamps)) / 1000 if stamps else 0.0
    return events / span if span > 0 else 0.0


class CheckpointWatch(threading.Thread):
    """Remembers the size of the newest completed checkpoint while a job runs.

    A bounded job deletes its checkpoints when it finishes, so the size is sampled
    during the run: the files of the job's checkpoint directory (with incremental
    RocksDB checkpoints and one retained, ``shared/`` holds exactly the SST files the
    newest checkpoint references) once a ``chk-N/_metadata`` exists.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.bytes, self.checkpoints = root, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):
            try:
                done = sorted(self.root.glob("*/chk-*/_metadata"), key=lambda p: p.stat().st_mtime)
                if done:
                    job = done[-1].parent.parent
                    chks = list(job.glob("chk-*"))
                    size = sum(f.stat().st_size for d in [job / "shared", job / "taskowned",
                               done[-1].parent] if d.exists() for f in d.rglob("*") if f.is_file())
                    self.bytes, self.checkpoints = size, max(self.checkpoints, len(chks))
            except FileNotFoundError:  # deleted while we looked
                continue

    def stop(self) -> None:
        self._done.set()
        self.join()


def baseline_rate(cfg: Config, bounds: Bounds, files: tuple[str, ...], name: str,
                  events: int) -> float:
    """Run a baseline job that writes one examples record per input event; its rate."""
    start = kafka.end_offsets(cfg, cfg.topics.name("examples"))
    t0 = time.time()
    run(cfg, bounds, files=files, job_name=f"freshet-{name}")
    out = outputs(cfg, "examples", start)
    if len(out) != events:
        raise RuntimeError(f"{name} wrote {len(out)} records, not {events}")
    print(f"{name}: {len(out)} records in {time.time() - t0:.1f}s", file=sys.stderr)
    return span_rate(events, [ts for ts, _ in out])


def benchmark(cfg: Config, bad: int, repeat: int = 1) -> dict[str, object]:
    events, expected_pos, expected_neg = produce(cfg, bad, repeat)
    stop = {t: kafka.end_offsets(cfg, cfg.topics.name(t)) for t in ("features", "actions")}
    bounds = Bounds(stop=stop)
    print(f"produced {events} events; input ends {stop}", file=sys.stderr, flush=True)

    passthrough_rate = baseline_rate(cfg, bounds, PASSTHROUGH_SQL, "passthrough", events)

    after_copy = kafka.end_offsets(cfg, cfg.topics.name("examples"))
    watch = CheckpointWatch(cfg.path(cfg.flink.checkpoint_dir))
    watch.start()
    cpu = ThreadCpu()
    cpu.start()
    cpu.mark()
    t0 = time.time()
    run(cfg, bounds, files=JOINER_SQL)
    wall = time.time() - t0
    cpu_s = cpu.delta()
    cpu.stop()
    watch.stop()
    batches = outputs(cfg, "examples", after_copy)
    dead = outputs(cfg, "dead_letters", {})
    labels = [float(x) for _, v in batches for x in ExampleBatch.from_json(v).label]
    stamps = [ts for ts, _ in batches + dead]
    first = min(ts for ts, _ in batches) / 1000 - t0 if batches else float("nan")

    warm = {name: baseline_rate(cfg, bounds, files, f"{name}-warm", events)
            for name, files in (("passthrough", PASSTHROUGH_SQL), ("parse_only", PARSE_ONLY_SQL))}
    return {
        "events": events,
        "events_per_s": round(span_rate(events, stamps)),
        "examples": len(labels),
        "expected_examples": expected_pos + expected_neg,
        "positives": int(sum(labels)),
        "expected_positives": expected_pos,
        "negatives": len(labels) - int(sum(labels)),
        "expected_negatives": expected_neg,
        "dead_letters": len(dead),
        "dead_letter_reasons": reasons(dead),
        "expected_dead_letters": 2 * bad,
        "batches": len(batches),
        "first_output_s": round(first, 1),
        "job_wall_s": round(wall, 1),
        "passthrough_events_per_s": round(passthrough_rate),
        # Both in a warm JVM (see the module docstring): the parse-only job against a
        # passthrough under the same conditions.
        "warm_passthrough_events_per_s": round(warm["passthrough"]),
        "parse_only_events_per_s": round(warm["parse_only"]),
        "parse_only_ratio": round(warm["parse_only"] / warm["passthrough"], 3),
        "parallelism": cfg.flink.parallelism,
        "negative_sample_rate": cfg.joiner.negative_sample_rate,
        # The newest checkpoint taken during the replay (none if it ran < 1 interval).
        "checkpoint_bytes": watch.bytes,
        "repeat": repeat,
        # Where the joiner's CPU went: mini-cluster JVM threads, grouped (THREAD_GROUPS).
        "joiner_cpu_s": cpu_s,
    }


# Mini-cluster JVM threads (Linux truncates names to 15 characters) -> what they do.
# A chained task's thread is named after its first operator.
THREAD_GROUPS = (
    ("IntervalJoin", "interval join (RocksDB)"),
    ("Source: featur", "features: read + parse"),
    ("Source: action", "actions: read + parse"),
    ("Source Data Fe", "Kafka fetchers"),
    ("Deduplicate", "deduplication (RocksDB)"),
    ("ConstraintEnfo", "output bridge + local batching"),
    ("GlobalWindowAg", "batching + Kafka sink"),
    ("kafka-producer", "Kafka producers"),
    ("rocksdb:", "RocksDB flush/compaction"),
    ("C1 CompilerThr", "JIT compilers"),
    ("C2 CompilerThr", "JIT compilers"),
    ("GC Thread", "garbage collection"),
)


class ThreadCpu(threading.Thread):
    """CPU seconds of this process's child JVM (the mini-cluster), per thread group.

    Samples ``/proc/PID/task/*/stat`` every 0.2 s, so threads that end with the job are
    counted up to their last sample. ``delta()`` gives the CPU used since ``mark()``.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.last: dict[str, tuple[str, float]] = {}  # tid -> (thread name, CPU s)
        self.base: dict[str, tuple[str, float]] = {}
        self._done = threading.Event()

    def sample(self) -> None:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if stat(proc / "stat").ppid != os.getpid() or \
                        (proc / "exe").resolve().name != "java":
                    continue
                for task in (proc / "task").iterdir():
                    thread = stat(task / "stat")
                    self.last[task.name] = (thread.name, thread.cpu_s)
            except (OSError, ValueError):
                continue

    def run(self) -> None:
        while not self._done.wait(0.2):
            self.sample()

    def mark(self) -> None:
        self.sample()
        self.base = dict(self.last)

    def delta(self) -> dict[str, float]:
        self.sample()
        groups: Counter[str] = Counter()
        for tid, (name, cpu) in self.last.items():
            used = cpu - self.base.get(tid, (name, 0.0))[1]
            group = next((g for prefix, g in THREAD_GROUPS if name.startswith(prefix)), "other")
            groups[group] += used
        return {g: round(v, 1) for g, v in groups.most_common() if v >= 0.05}

    def stop(self) -> None:
        self._done.set()
        self.join()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sample-rate", type=float, default=1.0, help="negative sampling rate")
    p.add_argument("--bad", type=int, default=500, help="malformed records per topic")
    p.add_argument("--repeat", type=int, default=1,
                   help="replay MovieLens this many times back to back (steady state)")
    args = p.parse_args(argv)
    base = load_config(path=None)  # FRESHET__... variables still apply
    with (
        tempfile.TemporaryDirectory(prefix="freshet-bench-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "kafka.log") as broker,
    ):
        cfg = dataclasses.replace(
            base,
            work_dir=tmp,
            kafka=dataclasses.replace(base.kafka, bootstrap=broker.bootstrap),
            joiner=dataclasses.replace(
                base.joiner, window_s=10.0, negative_sample_rate=args.sample_rate
            ),
        )
        kafka.create_topics(cfg)
        result = benchmark(cfg, args.bad, args.repeat)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
