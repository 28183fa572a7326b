"""Benchmark of the online joiner in steady state, against a copy-only SQL job.

    python -m benchmarks.join [--impressions N] [--warmup F] [--bad N] [--repeat N]

Starts an embedded broker and, at the config's parallelism (window 10 s, sampling off
unless ``--sample-rate``), runs three bounded jobs one after another in the same
mini-cluster JVM, each on its own topics:

1. **MovieLens exact counts**: the MovieLens-100K serving log (100,000 impressions,
   76,576 actions; ``--repeat`` copies) plus ``--bad`` malformed records per topic,
   through the joiner. Checks ``examples == expected_examples`` (positives,
   negatives, dead letters by reason) and reports the checkpoint size. It runs first
   and so is also the JVM's warm-up: it pays most of the JIT compilation of the
   joiner's and the Kafka clients' code.
2. **Copy-only baseline** (``sql/passthrough.sql``: both topics copied, no parsing) over
   the synthetic stream below.
3. **The joiner** over the same synthetic stream (``freshet.produce.synthetic``,
   ``--impressions`` impressions, 910,000 by default: ~1.01M events with their
   clicks). Its event times start at now, 1,000 impressions per second of event time,
   each click 2 s after its impression (within the 10 s window), so every impression
   gives one example and the positives are the impressions with a click; the output is
   checked against those counts too.

**How rates are measured.** A consumer thread in this process (``Arrivals``) reads the
job's output topics while it runs and notes ``time.monotonic()`` when each record
arrives, counting outputs per record: one per copied record or dead letter, the
examples inside each examples message. Kafka timestamps are not used: the examples
messages carry as timestamp the event time the joiner has decided up to, not a wall
clock. Steady state runs from the arrival that brings the job's output to
``--warmup`` (default 0.15) of its total to the arrival of its last record; the job's
start-up, planning and first ``warmup`` of its output are excluded. The events
processed in that span are taken as ``events * (outputs in the span / all outputs)``:
each job's output follows its input in step (every impression gives one example, in
event-time order, the watermark holding back ~15 s of event time, ~1.6% of the
stream). So ``events_per_s = events * span_fraction / span_s`` and ``examples_per_s =
examples in the span / span_s``. ``*_outputs_per_5s`` lists the outputs that arrived in
each 5 s from the job's submission, to see where steady state begins.

**CPU.** ``ThreadCpu`` samples ``/proc`` every 0.25 s for this process's child JVM (the
mini-cluster): the process's CPU time and each thread's. ``cpu_us_per_event`` is the
JVM's process CPU over the steady-state span (linearly interpolated between samples)
divided by the events processed in it (the same for the copy job:
``copy_cpu_us_per_event``). ``joiner_cpu_s`` splits that CPU by thread group
(``THREAD_GROUPS``: a chained task's thread is named after its first operator), and
``joiner_cpu_us_per_event`` gives each group per event. ``bench_process_cpu_s`` is this
process's own CPU in the same span (the consumer thread and its Kafka client), which
competes for the same two cores.

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from confluent_kafka import KafkaException, TopicPartition

from benchmarks.proc import stat
from freshet import kafka
from freshet.broker import EmbeddedBroker
from freshet.config import Config, load_config
from freshet.data.movielens import Rating, load_ratings
from freshet.flink import checkpoint_root
from freshet.produce import movielens, synthetic
from freshet.produce.sender import send
from freshet.topics import Action, ExampleBatch, Impression
from jobs.join import JOINER_SQL, PASSTHROUGH_SQL, Bounds, keeps_negative, run

BAD_RECORDS = (b"not json", b'{"request_id": "x", "item_id": "7"}', b"[1, 2]")
INPUTS = ("features", "actions")


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
    for topic in INPUTS:
        for i in range(bad):
            p.produce(cfg.topics.name(topic), BAD_RECORDS[i % len(BAD_RECORDS)])
    assert p.flush(30) == 0
    rate = cfg.joiner.negative_sample_rate
    negatives = sum(
        1 for rid, item in impressions if rid not in positives and keeps_negative(rid, item, rate)
    )
    return stats.events + 2 * bad, len(positives), negatives


def produce_synthetic(cfg: Config, spec: synthetic.SyntheticSpec) -> dict[str, int]:
    """Produce the synthetic stream; its event count and expected examples.

    Every impression gives one example (a negative is kept when ``keeps_negative``
    says so); it is a positive when one of its actions falls in ``[ts, ts + window]``.
    """
    window_ms = round(cfg.joiner.window_s * 1000)
    shown: dict[str, tuple[int, int]] = {}  # request id -> (item, ts)
    positives: set[str] = set()
    outside = 0

    def note(ev: object) -> None:
        nonlocal outside
        if isinstance(ev, Impression):
            shown[ev.request_id] = (ev.item_id, ev.ts)
        elif isinstance(ev, Action):
            item, ts = shown[ev.request_id]
            if item == ev.item_id and ts <= ev.ts <= ts + window_ms:
                positives.add(ev.request_id)
            else:
                outside += 1

    stats = send(cfg, synthetic.events(spec), progress=sys.stderr, progress_every_s=10.0,
                 on_event=note)
    rate = cfg.joiner.negative_sample_rate
    negatives = sum(1 for rid, (item, _) in shown.items() if rid not in positives
                    and (rate >= 1.0 or keeps_negative(rid, item, rate)))
    return {"events": stats.events, "impressions": stats.impressions,
            "actions": stats.actions, "positives": len(positives), "negatives": negatives,
            "unmatched_actions": outside, "produce_s": round(stats.seconds, 1)}


def outputs(cfg: Config, topic: str, start: dict[int, int]) -> list[tuple[int, bytes]]:
    """(Kafka timestamp ms, value) of every record after ``start``."""
    return [
        (m.timestamp()[1], m.value())
        for m in kafka.read(cfg, cfg.topics.name(topic), idle_s=2.0, start=start)
    ]


def reasons(dead: Iterable[tuple[int, bytes]]) -> dict[str, int]:
    return dict(Counter(json.loads(v)["reason"].split(":")[0] for _, v in dead))


def one(_: bytes) -> int:
    return 1


def examples_in(value: bytes) -> int:
    """Examples in one examples-topic message (each row starts with its request id)."""
    return value.count(b'{"request_id":')


def positives_in(value: bytes) -> int:
    return value.count(b',"label":1,')


class Arrivals(threading.Thread):
    """Wall-clock arrival of a job's output records, read while the job runs.

    ``topics``: physical topic -> (start offsets, outputs in a record). Each
    ``consume`` call's records are noted at the time it returned, as
    (``time.monotonic()``, outputs); ``positives`` counts ``label 1`` examples.
    """

    def __init__(self, cfg: Config, topics: dict[str, tuple[dict[int, int],
                 Callable[[bytes], int]]]) -> None:
        super().__init__(daemon=True)
        self.consumer = kafka.consumer(cfg, group=f"freshet-arrivals-{time.time_ns()}",
                                       **{"enable.partition.eof": False,
                                          "fetch.wait.max.ms": 20})
        self.count = {t: c for t, (_, c) in topics.items()}
        self.consumer.assign([TopicPartition(t, p, o) for t, (start, _) in topics.items()
                              for p, o in start.items()])
        self.ends = {t: dict(start) for t, (start, _) in topics.items()}
        self.times: list[float] = []
        self.cumulative: list[int] = []  # outputs arrived up to and including times[i]
        self.by_topic: Counter[str] = Counter()
        self.positives = 0
        self.last_arrival = time.monotonic()
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        total = 0
        try:
            while not self._halt.is_set():
                batch = self.consumer.consume(5000, timeout=0.05)
                if not batch:
                    continue
                now = time.monotonic()
                for m in batch:
                    if m.error() is not None:
                        raise KafkaException(m.error())
                    t, v = m.topic(), m.value()
                    n = self.count[t](v)
                    total += n
                    self.by_topic[t] += n
                    if self.count[t] is examples_in:
                        self.positives += positives_in(v)
                    self.ends[t][m.partition()] = m.offset() + 1
                self.times.append(now)
                self.cumulative.append(total)
                self.last_arrival = now
        except BaseException as e:  # reported by finish()
            self.error = e
        finally:
            self.consumer.close()

    def finish(self, idle_s: float = 3.0) -> None:
        """Stop once nothing has arrived for ``idle_s`` (the job has already ended)."""
        while time.monotonic() - self.last_arrival < idle_s and self.is_alive():
            time.sleep(0.1)
        self._halt.set()
        self.join()
        if self.error is not None:
            raise RuntimeError("reading the job's output failed") from self.error

    @property
    def total(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0

    def timeline(self, since: float, step_s: float = 5.0) -> list[int]:
        """Outputs arrived in each ``step_s`` from ``since`` (for reading the run)."""
        buckets: list[int] = []
        before = 0
        for t, cum in zip(self.times, self.cumulative, strict=True):
            k = max(0, int((t - since) // step_s))
            while len(buckets) <= k:
                buckets.append(0)
            buckets[k] += cum - before
            before = cum
        return buckets

    def steady(self, warmup: float) -> tuple[float, float, int]:
        """(start, end, outputs in between): from the arrival that brings the output to
        ``warmup`` of its total to the last arrival."""
        if not self.cumulative:
            raise RuntimeError("the job wrote nothing")
        i = bisect.bisect_left(self.cumulative, warmup * self.total)
        i = min(i, len(self.cumulative) - 1)
        return self.times[i], self.times[-1], self.total - self.cumulative[i]


class CheckpointWatch(threading.Thread):
    """Remembers the size of the newest completed checkpoint while a job runs.

    A bounded job deletes its checkpoints when it finishes, so the size is sampled
    during the run: the files of the job's checkpoint directory (with incremental
    RocksDB checkpoints and one retained, ``shared/`` holds exactly the SST files the
    newest checkpoint references) once a ``chk-N/_metadata`` newer than the watch
    exists (an earlier job's directory may still be there).
    """

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.bytes, self.checkpoints = root, 0, 0
        self.since = time.time()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):
            try:
                done = sorted((p for p in self.root.glob("*/chk-*/_metadata")
                               if p.stat().st_mtime >= self.since),
                              key=lambda p: p.stat().st_mtime)
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


# Mini-cluster JVM threads (Linux truncates names to 15 characters) -> what they do.
# A chained task's thread is named after its first operator; the joiner's chains
# (thread names seen with jcmd Thread.print while it ran):
#   Source: features_raw -> Calc -> Correlate (parse) -> Calc -> bridge -> (Calc, Calc)
#   Source: actions_raw -> ... (the same for actions)
#   IntervalJoin -> Calc;  Deduplicate -> Calc
#   ConstraintEnforcer -> TableToDataStream -> (examples only,
#       bridge -> Calc -> dead_letters_sink Writer/Committer)
#   batch examples (io.freshet.udf.ExampleBatcher) -> examples_sink Writer/Committer
# The copy-only job: Source: features_copy / Source: actions_copy, copy_sink Writer.
THREAD_GROUPS = (
    ("IntervalJoin", "interval join (RocksDB)"),
    ("Deduplicate", "deduplication (RocksDB)"),
    ("Source: featur", "features: Kafka read + parse + event time + bridge"),
    ("Source: action", "actions: Kafka read + parse + event time + bridge"),
    ("Source Data Fe", "Kafka source fetchers"),
    ("ConstraintEnfo", "output bridge + dead-letter sink"),
    ("batch examples", "batching (ExampleBatcher, RocksDB list) + examples sink"),
    ("copy_sink", "copy: Kafka sink writer"),
    ("kafka-producer", "Kafka producer network threads"),
    ("rocksdb:", "RocksDB flush/compaction"),
    ("C1 CompilerThr", "JIT compilers"),
    ("C2 CompilerThr", "JIT compilers"),
    ("GC Thread", "garbage collection"),
    ("G1 ", "garbage collection"),
    ("Thread-", "py4j gateway (planning, job submission)"),
)


def group_of(name: str) -> str:
    return next((g for prefix, g in THREAD_GROUPS if name.startswith(prefix)), "other")


class ThreadCpu(threading.Thread):
    """CPU seconds of this process's child JVM (the mini-cluster), per thread, over time.

    Samples ``/proc/PID/stat`` and ``/proc/PID/task/*/stat`` every ``every_s``; a
    thread keeps its last value after it ends. ``between(t0, t1)`` gives the CPU used
    between two ``time.monotonic()`` instants, linearly interpolated between samples:
    the JVM's process total (which includes threads that have ended) and per group.
    """

    def __init__(self, every_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.names: dict[str, str] = {}  # tid -> thread name
        self._last: dict[str, float] = {}  # tid -> CPU s
        self.samples: list[tuple[float, float, float, dict[str, float]]] = []
        self._done = threading.Event()
        self._lock = threading.Lock()

    def sample(self) -> None:
        jvm = 0.0
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                st = stat(proc / "stat")
                if st.ppid != os.getpid() or (proc / "exe").resolve().name != "java":
                    continue
                jvm += st.cpu_s
                for task in (proc / "task").iterdir():
                    thread = stat(task / "stat")
                    self.names[task.name] = thread.name
                    self._last[task.name] = thread.cpu_s
            except (OSError, ValueError):
                continue
        me = stat(Path("/proc/self/stat")).cpu_s
        with self._lock:
            self.samples.append((time.monotonic(), jvm, me, dict(self._last)))

    def run(self) -> None:
        while not self._done.wait(self.every_s):
            self.sample()

    def _at(self, t: float) -> tuple[float, float, dict[str, float]]:
        with self._lock:
            samples = list(self.samples)
        times = [s[0] for s in samples]
        i = bisect.bisect_left(times, t)
        if i == 0:
            return samples[0][1], samples[0][2], samples[0][3]
        if i >= len(samples):
            return samples[-1][1], samples[-1][2], samples[-1][3]
        (ta, ja, ma, a), (tb, jb, mb, b) = samples[i - 1], samples[i]
        f = (t - ta) / (tb - ta) if tb > ta else 1.0
        threads = {tid: a.get(tid, 0.0) + f * (cpu - a.get(tid, 0.0)) for tid, cpu in b.items()}
        return ja + f * (jb - ja), ma + f * (mb - ma), threads

    def between(self, t0: float, t1: float) -> tuple[float, float, dict[str, float]]:
        """(JVM CPU s, this process's CPU s, JVM CPU s per thread group) in [t0, t1]."""
        j0, m0, a = self._at(t0)
        j1, m1, b = self._at(t1)
        groups: Counter[str] = Counter()
        for tid, cpu in b.items():
            groups[group_of(self.names.get(tid, ""))] += cpu - a.get(tid, 0.0)
        return j1 - j0, m1 - m0, {g: round(v, 2) for g, v in groups.most_common() if v >= 0.005}

    def stop(self) -> None:
        self._done.set()
        self.join()


def measured_run(cfg: Config, cpu: ThreadCpu, files: tuple[str, ...], job_name: str,
                 bounds: Bounds, outputs_of: dict[str, tuple[dict[int, int],
                 Callable[[bytes], int]]]) -> tuple[Arrivals, CheckpointWatch, float, float]:
    """Run a bounded job while reading its output; (arrivals, checkpoints, submit, end)."""
    arrivals = Arrivals(cfg, outputs_of)
    arrivals.start()
    watch = CheckpointWatch(checkpoint_root(cfg, job_name))
    watch.start()
    t0 = time.monotonic()
    run(cfg, bounds, files=files, job_name=job_name)
    t1 = time.monotonic()
    watch.stop()
    arrivals.finish()
    print(f"{job_name}: {arrivals.total} outputs, job {t1 - t0:.1f}s", file=sys.stderr,
          flush=True)
    return arrivals, watch, t0, t1


def steady_figures(arr: Arrivals, cpu: ThreadCpu, events: int, warmup: float,
                   t_submit: float) -> dict[str, object]:
    """Steady-state rates and CPU of one job (see the module docstring)."""
    s0, s1, outs = arr.steady(warmup)
    span = s1 - s0
    fraction = outs / arr.total
    span_events = events * fraction
    jvm, me, groups = cpu.between(s0, s1)
    return {
        "events_per_s": span_events / span if span > 0 else 0.0,
        "outputs_per_s": outs / span if span > 0 else 0.0,
        "cpu_us_per_event": jvm / span_events * 1e6 if span_events else 0.0,
        "jvm_cpu_s": jvm, "bench_process_cpu_s": me, "cpu_s": groups,
        "cpu_us_per_event_by_group": {g: round(v / span_events * 1e6, 2)
                                      for g, v in groups.items()},
        "span_s": span, "span_events": span_events, "span_outputs": outs,
        "steady_from_s": s0 - t_submit, "first_output_s": arr.times[0] - t_submit,
        "last_output_s": s1 - t_submit, "cores_busy": jvm / span if span > 0 else 0.0,
        "outputs_per_5s": arr.timeline(t_submit),
    }


def topics_cfg(cfg: Config, prefix: str) -> Config:
    c = dataclasses.replace(cfg, topics=dataclasses.replace(cfg.topics, prefix=prefix))
    kafka.create_topics(c)
    return c


def movielens_part(cfg: Config, cpu: ThreadCpu, bad: int, repeat: int,
                   warmup: float) -> dict[str, object]:
    """The MovieLens replay through the joiner: exact counts and the checkpoint size."""
    cfg = topics_cfg(cfg, "bench-ml.")
    events, expected_pos, expected_neg = produce(cfg, bad, repeat)
    stop = {t: kafka.end_offsets(cfg, cfg.topics.name(t)) for t in INPUTS}
    print(f"movielens: produced {events} events; input ends {stop}", file=sys.stderr,
          flush=True)
    examples_t, dead_t = cfg.topics.name("examples"), cfg.topics.name("dead_letters")
    arr, watch, t0, t1 = measured_run(
        cfg, cpu, JOINER_SQL, "freshet-join-movielens", Bounds(stop=stop),
        {examples_t: ({p: 0 for p in kafka.partitions(cfg, examples_t)}, examples_in),
         dead_t: ({p: 0 for p in kafka.partitions(cfg, dead_t)}, one)})
    batches = outputs(cfg, "examples", {})
    dead = outputs(cfg, "dead_letters", {})
    labels = [float(x) for _, v in batches for x in ExampleBatch.from_json(v).label]
    st = steady_figures(arr, cpu, events, warmup, t0)
    return {
        "events": events,
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
        # The newest checkpoint taken during the replay (none if it ran < 1 interval).
        "checkpoint_bytes": watch.bytes,
        "movielens_events_per_s": round(st["events_per_s"]),
        "movielens_cpu_us_per_event": round(st["cpu_us_per_event"], 1),
        "movielens_first_output_s": round(st["first_output_s"], 1),
        "movielens_job_wall_s": round(t1 - t0, 1),
        "repeat": repeat,
    }


def synthetic_part(cfg: Config, cpu: ThreadCpu, impressions: int,
                   warmup: float) -> dict[str, object]:
    """The copy-only job, then the joiner, over one synthetic stream: steady state."""
    cfg = topics_cfg(cfg, "bench-syn.")
    spec = synthetic.SyntheticSpec(impressions=impressions)
    if spec.action_delay_ms > cfg.joiner.window_s * 1000:
        raise ValueError("the synthetic clicks would fall outside the join window")
    expect = produce_synthetic(cfg, spec)
    events = expect["events"]
    stop = {t: kafka.end_offsets(cfg, cfg.topics.name(t)) for t in INPUTS}
    if sum(sum(s.values()) for s in stop.values()) != events:
        raise RuntimeError(f"input topics hold {stop}, not {events} events")
    print(f"synthetic: produced {expect}; input ends {stop}", file=sys.stderr, flush=True)
    bounds = Bounds(stop=stop)
    examples_t, dead_t = cfg.topics.name("examples"), cfg.topics.name("dead_letters")
    start = {p: 0 for p in kafka.partitions(cfg, examples_t)}

    copy, _, c0, c1 = measured_run(cfg, cpu, PASSTHROUGH_SQL, "freshet-copy", bounds,
                                   {examples_t: (start, one)})
    if copy.total != events:
        raise RuntimeError(f"the copy wrote {copy.total} records, not {events}")
    cst = steady_figures(copy, cpu, events, warmup, c0)

    arr, watch, j0, j1 = measured_run(
        cfg, cpu, JOINER_SQL, "freshet-join", bounds,
        {examples_t: (copy.ends[examples_t], examples_in),
         dead_t: ({p: 0 for p in kafka.partitions(cfg, dead_t)}, one)})
    jst = steady_figures(arr, cpu, events, warmup, j0)
    examples = arr.by_topic[examples_t]
    s0, s1, _ = arr.steady(warmup)
    # Examples in the steady span (dead letters are counted apart; none are expected).
    ex_span = jst["span_outputs"] * examples / arr.total if arr.total else 0
    job_jvm, _, job_groups = cpu.between(j0, j1)
    return {
        "events": events,
        "synthetic": {**expect, "impressions_per_s_event_time": spec.event_rate,
                      "action_delay_ms": spec.action_delay_ms},
        "events_per_s": round(jst["events_per_s"]),
        "examples_per_s": round(ex_span / jst["span_s"]) if jst["span_s"] > 0 else 0,
        "cpu_us_per_event": round(jst["cpu_us_per_event"], 1),
        "joiner_cpu_s": jst["cpu_s"],
        "joiner_cpu_us_per_event": jst["cpu_us_per_event_by_group"],
        "joiner_jvm_cpu_s": round(jst["jvm_cpu_s"], 2),
        "joiner_cores_busy": round(jst["cores_busy"], 2),
        "joiner_bench_process_cpu_s": round(jst["bench_process_cpu_s"], 2),
        "steady_span_s": round(jst["span_s"], 2),
        "steady_events": round(jst["span_events"]),
        "steady_from_s": round(jst["steady_from_s"], 1),
        "first_output_s": round(jst["first_output_s"], 1),
        "job_wall_s": round(j1 - j0, 1),
        "job_jvm_cpu_s": round(job_jvm, 1),
        "job_cpu_s": {g: round(v, 1) for g, v in job_groups.items() if v >= 0.05},
        "synthetic_examples": examples,
        "synthetic_expected_examples": expect["positives"] + expect["negatives"],
        "synthetic_positives": arr.positives,
        "synthetic_expected_positives": expect["positives"],
        "synthetic_dead_letters": arr.by_topic[dead_t],
        "synthetic_checkpoint_bytes": watch.bytes,
        "copy_events_per_s": round(cst["events_per_s"]),
        "copy_cpu_us_per_event": round(cst["cpu_us_per_event"], 1),
        "copy_cpu_s": cst["cpu_s"],
        "copy_jvm_cpu_s": round(cst["jvm_cpu_s"], 2),
        "copy_cores_busy": round(cst["cores_busy"], 2),
        "copy_bench_process_cpu_s": round(cst["bench_process_cpu_s"], 2),
        "copy_steady_span_s": round(cst["span_s"], 2),
        "copy_first_output_s": round(cst["first_output_s"], 1),
        "copy_job_wall_s": round(c1 - c0, 1),
        "joiner_outputs_per_5s": jst["outputs_per_5s"],
        "copy_outputs_per_5s": cst["outputs_per_5s"],
        "joiner_vs_copy": round(jst["events_per_s"] / cst["events_per_s"], 3)
        if cst["events_per_s"] else None,
    }


def benchmark(cfg: Config, bad: int, repeat: int = 1, impressions: int = 910_000,
              warmup: float = 0.15) -> dict[str, object]:
    t = time.monotonic()
    load = os.getloadavg()
    cpu = ThreadCpu()
    cpu.start()
    try:
        ml = movielens_part(cfg, cpu, bad, repeat, warmup)
        syn = synthetic_part(cfg, cpu, impressions, warmup)
    finally:
        cpu.stop()
    syn_events = syn.pop("events")
    return {
        "events_per_s": syn["events_per_s"],
        "cpu_us_per_event": syn["cpu_us_per_event"],
        "copy_events_per_s": syn["copy_events_per_s"],
        "copy_cpu_us_per_event": syn["copy_cpu_us_per_event"],
        "examples_per_s": syn["examples_per_s"],
        "examples": ml["examples"],
        "expected_examples": ml["expected_examples"],
        "checkpoint_bytes": ml["checkpoint_bytes"],
        "synthetic_events": syn_events,
        **{k: v for k, v in syn.items() if k not in ("events_per_s", "cpu_us_per_event")},
        "movielens": ml,
        "warmup_fraction": warmup,
        "parallelism": cfg.flink.parallelism,
        "negative_sample_rate": cfg.joiner.negative_sample_rate,
        "window_s": cfg.joiner.window_s,
        "load_average_start": [round(x, 2) for x in load],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "wall_s": round(time.monotonic() - t, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sample-rate", type=float, default=1.0, help="negative sampling rate")
    p.add_argument("--bad", type=int, default=500, help="malformed records per topic")
    p.add_argument("--repeat", type=int, default=1,
                   help="replay MovieLens this many times back to back (exact-count part)")
    p.add_argument("--impressions", type=int, default=910_000,
                   help="synthetic impressions (with their clicks: ~1.1 events each)")
    p.add_argument("--warmup", type=float, default=0.15,
                   help="fraction of a job's output before steady state starts")
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
        result = benchmark(cfg, args.bad, args.repeat, args.impressions, args.warmup)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
