"""``make demo``: the whole loop on the embedded broker, live figures, then a report.

1. start the embedded broker and create the topics;
2. start the server, the joiner and the trainer (``jobs.serve``, ``jobs.join``,
   ``jobs.train``: what ``freshet serve|join|train`` run) as child processes
   (:mod:`freshet.supervise`: own process group, log file each);
3. replay MovieLens-100K as a serving log (impressions + clicks/likes) at ``rate``
   events/s while polling the trainer's metrics and the server every ``poll_s``:
   events/s, progressive AUC, end-to-end freshness, served rows, ranking latency
   (:mod:`freshet.app.demo_watch`), and the served AUC: the live server scores upcoming
   ratings before they are sent (:mod:`freshet.app.demo_served`);
4. once the served model stops changing, rank 100 movies for one user on the live
   server and show the top ten;
5. stop every child and the broker (also on Ctrl-C or a failure, showing the failing
   child's log tail) and write ``<work_dir>/demo/report.md`` with PNG plots
   (:mod:`freshet.app.demo_report`).

The children get the demo's configuration as ``FRESHET__SECTION__KEY`` variables
(:func:`config_env`): the MovieLens DeepFM slots, a dense sync every 5 s (default
10 min) so the server scores with a trained model within the demo, and no logging of
the demo's own ranking requests as impressions (their wall-clock timestamps would
move the joiner's event time 28 years past the replay).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freshet.app.demo_report import DemoRun, write_report
from freshet.app.demo_served import ServedScores, rank_request, with_signals
from freshet.app.demo_watch import MetricsTail, Sample, SendLog, http
from freshet.broker import EmbeddedBroker, free_port
from freshet.config import Config
from freshet.data.movielens import (
    HISTORY_LR,
    SIGNAL_LR,
    default_model,
    load_ratings,
    signals_model,
    titles,
)
from freshet.kafka import end_offsets
from freshet.supervise import Service, ServiceError
from freshet.topics import Impression
from jobs.metrics import JoinWatch
from server.signals import SignalFeed


@dataclass(frozen=True)
class DemoOptions:
    rate: float = 2000.0  # events/s the replay is paced at (the joiner's pace here)
    # The first events go slower: the joiner's and the trainer's JVMs compile their hot
    # code in the first seconds of traffic, and at full pace on two cores the trainer
    # fell ~14,000 impressions (7-12 s of freshness) behind before it caught up.
    warmup_events: int = 10_000
    warmup_rate: float = 500.0
    limit: int = 0  # ratings to replay; 0: all 100,000
    poll_s: float = 1.0
    settle_s: float = 3.0  # all trained, and the served tables unchanged this long: done
    max_wait_s: float = 240.0  # at most this long after the replay
    ready_timeout_s: float = 180.0
    candidates: int = 100
    # The model also reads the fresh signals (``stats.signals``, docs/signals.md): the
    # server computes them from the topics, and the replay's impressions carry the ones
    # a live server would have logged with them.
    signals: bool = False


def demo_config(cfg: Config, bootstrap: str, port: int, state_dir: Path,
                signals: bool = False) -> Config:
    """The children's config: ``cfg`` with the demo's broker, port, model and syncs;
    ``signals``: the model also has a slot per ``stats.signals`` (learning slower than
    the ID slots, as ``freshet experiment fresh_signals`` found best)."""
    model = (signals_model("deepfm", cfg.stats.signals, signal_lr=SIGNAL_LR,
                           history_lr=HISTORY_LR) if signals else default_model())
    return dataclasses.replace(
        cfg, work_dir=str(state_dir),
        kafka=dataclasses.replace(cfg.kafka, bootstrap=bootstrap),
        flink=dataclasses.replace(cfg.flink, parallelism=1),
        model=model,
        sync=dataclasses.replace(cfg.sync, sparse_sync_interval_s=1.0,
                                 dense_sync_interval_s=5.0),
        # Event time runs ~1,100 ratings per wall second here, so negatives arrive
        # hundreds of ratings after their positives: train in event-time order (which
        # costs the positives the join window: 60 s of event time, a moment here).
        train=dataclasses.replace(cfg.train, parallelism=1, eval_window_examples=2000,
                                  order="event_time", max_hold_s=5.0),
        serving=dataclasses.replace(cfg.serving, port=port, log_impressions=False),
    )


def config_env(cfg: Config) -> dict[str, str]:
    """Every setting of ``cfg`` as ``FRESHET__SECTION__KEY`` variables.

    Examples
    --------
    >>> env = config_env(Config())
    >>> env["FRESHET__WORK_DIR"], env["FRESHET__FLINK__PARALLELISM"]
    ('.freshet', '2')
    >>> from freshet.config import load_config
    >>> load_config(path=None, environ=env) == Config()
    True
    """
    env = {}
    for key, value in dataclasses.asdict(cfg).items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            name = "FRESHET__" + key.upper() + (f"__{sub.upper()}" if sub else "")
            if isinstance(v, bool):
                env[name] = str(v).lower()
            elif isinstance(v, list | dict):
                env[name] = json.dumps(v)
            else:
                env[name] = str(v)
    return env


def services(cfg: Config, log_dir: Path) -> list[Service]:
    """The server, joiner and trainer with ``cfg`` in their environment.

    Started by the job modules' entry points, which ``freshet serve|join|train`` run
    on the mini-cluster too (the CLI adds guards for long-lived deployments).
    """
    env = config_env(cfg)
    return [Service(name, [sys.executable, "-m", f"jobs.{name}"], log_dir, env)
            for name in ("serve", "join", "train")]


def run_demo(cfg: Config, opts: DemoOptions | None = None) -> int:
    """Run the demo; returns the exit code (0: the loop worked and the report is written)."""
    opts = opts or DemoOptions()
    t0 = time.monotonic()
    root = cfg.path("demo")
    state, logs = root / "state", root / "logs"
    shutil.rmtree(state, ignore_errors=True)  # a fresh broker: old checkpoints don't apply
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    ratings = load_ratings()
    ratings = ratings[: opts.limit] if opts.limit else ratings
    run = DemoRun(logs=str(logs))
    code = 1
    previous = signal.signal(signal.SIGTERM, _interrupt)
    print(f"[demo] replaying {len(ratings):,} MovieLens ratings through broker, joiner, "
          f"trainer and server; logs in {logs}", flush=True)
    with EmbeddedBroker(log_path=logs / "kafka.log") as broker:
        dcfg = demo_config(cfg, broker.bootstrap, free_port(), state, opts.signals)
        procs = services(dcfg, logs)
        tail = MetricsTail(dcfg)
        try:
            code = _loop(dcfg, procs, tail, ratings, opts, run, t0)
        except KeyboardInterrupt:
            print("\n[demo] interrupted: stopping everything", flush=True)
            code = 130
        except ServiceError as e:
            print(f"[demo] a process failed: {e}", file=sys.stderr, flush=True)
            code = 1
        finally:
            tail.stop_event.set()
            for svc in reversed(procs):
                run.stats[f"stop_{svc.name}"] = _stopped(svc.stop())
            print("[demo] stopped: " + ", ".join(
                f"{s.name} ({run.stats[f'stop_{s.name}']})" for s in procs) + ", broker",
                flush=True)
            signal.signal(signal.SIGTERM, previous)
    run.stats["wall_s"] = time.monotonic() - t0
    if run.samples:
        report = write_report(root, run)
        print(f"[demo] report: {report} ({run.stats['wall_s']:.0f} s)", flush=True)
    return code


def _stopped(code: int | None) -> str:
    """How a child ended: SIGTERM (asked to stop), SIGKILL (had to be killed), ..."""
    if code is None:
        return "not started"
    return f"{signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _check(procs: list[Service]) -> None:
    for svc in procs:
        if not svc.running:
            code = svc.process.returncode if svc.process else "?"
            raise ServiceError(f"{svc.name} exited ({code}); log tail:\n{svc.log_tail(30)}")


def _loop(cfg: Config, procs: list[Service], tail: MetricsTail, ratings: list,
          opts: DemoOptions, run: DemoRun, t0: float) -> int:
    from freshet.kafka import create_topics
    from freshet.produce import movielens
    from freshet.produce.sender import send

    create_topics(cfg)
    print(f"[demo] broker {cfg.kafka.bootstrap}, topics created; starting serve, join, train",
          flush=True)
    for svc in procs:
        svc.start()
    port = cfg.serving.port
    while http(port, "/healthz")[0] == 0:  # the server answers (a model comes later)
        _check(procs)
        if time.monotonic() - t0 > opts.ready_timeout_s:
            raise ServiceError(f"serve: no answer after {opts.ready_timeout_s}s:\n"
                               f"{procs[0].log_tail()}")
        time.sleep(0.5)
    print(f"[demo] server up on port {port} after {time.monotonic() - t0:.0f}s", flush=True)
    _wait_until_consuming(cfg, procs, opts.ready_timeout_s - (time.monotonic() - t0))
    print(f"[demo] joiner and trainer consuming after {time.monotonic() - t0:.0f}s; "
          f"replaying at {opts.rate:,.0f} events/s (the first {opts.warmup_events:,} at "
          f"{opts.warmup_rate:,.0f}/s while the jobs warm up)", flush=True)
    tail.t0 = t0
    tail.start()
    sent = SendLog()
    stats: dict[str, Any] = {}
    impressions = [0]  # sent so far
    joined = JoinWatch(cfg, end_offsets(cfg, cfg.topics.name("examples")),
                       end_offsets(cfg, cfg.topics.name("dead_letters")), every_s=1e9)
    joined.start()

    served = ServedScores(ratings)
    feed = SignalFeed.for_model(cfg)  # the server's signals, fed by the producer (never started)
    if feed is not None:
        print(f"[demo] fresh signals on: {', '.join(feed.spec.signals)}", flush=True)

    def on_event(ev: Any) -> None:
        sent.record(ev.ts)
        impressions[0] += isinstance(ev, Impression)

    def produce() -> None:
        try:
            # Impressions the live server scored go out with their score (demo_served).
            replay = served.annotate(movielens.events(ratings))
            if feed is not None:  # and with the signals a live server would have logged
                replay = with_signals(replay, feed)
            warm = send(cfg, itertools.islice(replay, opts.warmup_events),
                        rate=opts.warmup_rate, progress=None, on_event=on_event)
            s = send(cfg, replay, rate=opts.rate, progress=None, on_event=on_event)
            stats.update(impressions=warm.impressions + s.impressions,
                         actions=warm.actions + s.actions, events_per_s=s.events_per_s)
            _end_of_replay(cfg, ratings[-1].ts)
        except Exception as e:  # noqa: BLE001 - reported by the main loop
            stats["error"] = repr(e)

    producer = threading.Thread(target=produce, daemon=True, name="producer")
    producer.start()
    users = _heavy_users(ratings)
    rng = np.random.default_rng(0)
    user_slots = {r.user_id: r.slots for r in ratings}
    item_slots = {r.item_id: r.slots for r in ratings}
    items = sorted(item_slots)

    def rank_body(user: int, cands: list[int]) -> dict[str, Any]:
        # shown=0: these rankings are not impressions (nothing of the replay was shown);
        # at the replay's time, not the wall clock's (the signals decay with event time)
        return rank_request(user_slots[user], {i: item_slots[i] for i in cands}, shown=0,
                            ts=sent.last[0] if sent.last else ratings[0].ts)

    def served_rank(body: dict[str, Any]) -> dict[str, Any] | None:
        code, out = http(port, "/rank", body)
        return out if code == 200 else None

    last_mark, replay_end = None, None
    last_version, version_change = None, time.monotonic()
    prev = (0, time.monotonic(), 0.0)
    rank_ms: list[float] = []
    behind = Behind()
    while True:
        time.sleep(opts.poll_s)
        _check(procs)
        if "error" in stats:
            raise ServiceError(f"producer failed: {stats['error']}")
        now = time.monotonic()
        _, status = http(port, "/status")
        status = status if isinstance(status, dict) else {}
        mark = status.get("watermark_ms")
        fresh = None
        if mark is not None and mark != last_mark:
            # Sampled when the served watermark moves: an idle stream has no freshness.
            sent_at = sent.sent_at(mark)
            fresh = max(0.0, now - sent_at) if sent_at is not None else None
            last_mark = mark
        ms = None
        if status.get("ready"):
            user = int(rng.choice(users))
            cands = [int(x) for x in rng.choice(items, opts.candidates, replace=False)]
            t = time.perf_counter()
            code, _ = http(port, "/rank", rank_body(user, cands))
            if code == 200:
                ms = (time.perf_counter() - t) * 1000
                rank_ms.append(ms)
            served.poll(served_rank)
        w = tail.latest()
        trained = w.get("trained")
        sample = Sample(now - t0, sent.count, (sent.count - prev[0]) / (now - prev[1]),
                        trained, w.get("cumulative_auc"),
                        sum(status["rows"].values()) if status.get("rows") else None,
                        status.get("table_version"), fresh, ms)
        sample.extra.update(served_auc=served.auc(), order=w.get("order", "arrival"),
                            logged_served_auc=w.get("served_auc"),
                            logged_served=w.get("served_examples"))
        if trained is not None and prev[2] is not None and trained != prev[2]:
            sample.extra["trained_per_s"] = (trained - prev[2]) / (now - prev[1])
        prev = (sent.count, now, trained if trained is not None else prev[2])
        sample.extra.update(joined=joined.examples, impressions=impressions[0])
        run.samples.append(sample)
        behind.note(now - t0, impressions[0], joined.examples, trained or 0)
        print(sample.line(), flush=True)
        if status.get("table_version") != last_version:
            last_version, version_change = status.get("table_version"), now
        if replay_end is None and not producer.is_alive():
            replay_end = now
            print(f"[demo] replay done: {stats.get('impressions', 0):,} impressions, "
                  f"{stats.get('actions', 0):,} actions; waiting until the trainer has "
                  f"trained them all and the server has applied it (at most "
                  f"{opts.max_wait_s:.0f} s)", flush=True)
        # Done: every impression trained, and the served tables unchanged for settle_s.
        done = replay_end is not None and (trained or 0) >= impressions[0] \
            and bool(status.get("ready")) and now - version_change >= opts.settle_s
        if done or (replay_end is not None and now - replay_end >= opts.max_wait_s):
            break
    joined.stop()
    run.stats.update(behind.summary(impressions[0], joined.examples, prev[2] or 0))
    print(f"[demo] {run.stats['stages']}", flush=True)
    run.windows = list(tail.windows)
    run.stats.update(stats, rate=opts.rate, rows=run.samples[-1].serving_rows,
                     ready_s=_ready_s(run.samples),
                     rank_p50_ms=round(float(np.median(rank_ms)), 1) if rank_ms else None,
                     served_auc=served.auc(), served_scored=served.scored,
                     served_unanswered=served.unanswered,
                     logged_served_auc=run.windows[-1].get("served_auc") if run.windows else None,
                     logged_served=run.windows[-1].get("served_examples") if run.windows else 0,
                     order=run.windows[-1].get("order") if run.windows else None,
                     served_auc_returning=served.auc(returning=True),
                     served_auc_new=served.auc(returning=False),
                     served_returning=int(sum(served.returning)),
                     signals=list(feed.spec.signals) if feed is not None else [])
    st = run.stats
    print(f"[demo] served AUC from the scores logged with the impressions: "
          f"{_fmt(st['logged_served_auc'])} over {st['logged_served'] or 0:,.0f} impressions "
          f"(the demo's own computation from its requests: {_fmt(st['served_auc'])} over "
          f"{st['served_scored']:,}; new users {_fmt(st['served_auc_new'])}, returning "
          f"{_fmt(st['served_auc_returning'])})", flush=True)
    if run.windows:
        w = run.windows[-1]
        print(f"[demo] trainer: {w.get('trained', 0):,.0f} examples, progressive AUC "
              f"({w.get('order', 'arrival')} order) {_fmt(w.get('cumulative_auc'))}", flush=True)
    _final_ranking(port, ratings, users[0], run, opts.candidates, items, rank_body)
    run.server_metrics = _server_metrics(port)
    return 0 if run.windows and run.top_items else 1


def _wait_until_consuming(cfg: Config, procs: list[Service], timeout_s: float) -> None:
    """Return once the joiner and the trainer have each answered a probe.

    The probes are malformed records, one on ``features`` and one on ``examples``:
    each job sends them to the dead-letter topic (with its reason) once it reads its
    input, and the trainer only after it has loaded TensorFlow. So the replay starts
    when nothing would make its first seconds wait.
    """
    import uuid

    from freshet import kafka

    marker = f"demo readiness probe {uuid.uuid4().hex[:8]}"
    p = kafka.producer(cfg)
    # Timestamped at the epoch's start: a probe must not move any watermark (the
    # trainer's is the examples' timestamps; the joiner falls back to it for bad input).
    p.produce(cfg.topics.name("features"), marker.encode(), timestamp=1)
    p.produce(cfg.topics.name("examples"), json.dumps({"v": 1, "examples": marker}).encode(),
              timestamp=1)
    p.flush(10)
    waiting = {"features": "join", "examples": "train"}
    deadline = time.monotonic() + max(timeout_s, 10.0)
    while waiting:
        for m in kafka.read(cfg, cfg.topics.name("dead_letters"), idle_s=1.0):
            dead = json.loads(m.value())
            if marker in dead.get("payload", ""):
                waiting.pop(dead.get("source"), None)
        _check(procs)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(sorted(waiting.values()))
            raise ServiceError(f"{names}: not consuming after {timeout_s:.0f}s (no answer to "
                               "a readiness probe); see its log")


def _end_of_replay(cfg: Config, last_ts: int) -> None:
    """Move the joiner's watermark past the replay's last window.

    Online, a window closes when later events move the watermark past it; at the end of
    a replay nothing later comes, and the last impressions' negatives would wait. One
    malformed record per partition of both topics, stamped after the last window
    (the joiner takes a bad record's Kafka timestamp as its event time), closes them;
    the joiner dead-letters the markers with their reason.
    """
    from freshet import kafka

    ts = last_ts + int((cfg.joiner.window_s + cfg.joiner.out_of_orderness_s) * 1000) + 1000
    p = kafka.producer(cfg)
    for topic in ("features", "actions"):
        name = cfg.topics.name(topic)
        for part in kafka.partitions(cfg, name):
            p.produce(name, b"demo end-of-replay marker", partition=part, timestamp=ts)
    p.flush(10)


class Behind:
    """How far the joiner and the trainer fell behind the producer, poll by poll."""

    def __init__(self) -> None:
        self.worst = (0, 0.0)  # (impressions not yet trained, at demo second)

    def note(self, t: float, produced: int, joined: int, trained: float) -> None:
        lag = produced - int(trained)
        if lag > self.worst[0]:
            self.worst = (lag, t)

    def summary(self, produced: int, joined: int, trained: float) -> dict[str, Any]:
        trained = int(trained)
        text = (f"stages: produced {produced:,} impressions, joined {joined:,} examples, "
                f"trained {trained:,}; the trainer was at most {self.worst[0]:,} impressions "
                f"behind the producer (at {self.worst[1]:.0f} s)")
        if trained < produced:
            text += (f". IT FELL BEHIND: {produced - trained:,} impressions were not trained "
                     f"by the end ({produced - joined:,} not joined yet)")
        return {"produced": produced, "joined": joined, "trained_all": trained >= produced,
                "max_behind": self.worst[0], "max_behind_at_s": round(self.worst[1], 1),
                "stages": text}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _heavy_users(ratings: list) -> list[int]:
    """Users by number of ratings, most first."""
    ids, counts = np.unique([r.user_id for r in ratings], return_counts=True)
    return [int(u) for u in ids[np.argsort(-counts, kind="stable")]]


def _ready_s(samples: list[Sample]) -> float | None:
    ready = [s.t for s in samples if s.rank_ms is not None]
    return round(ready[0], 1) if ready else None


def _final_ranking(port: int, ratings: list, user: int, run: DemoRun, n: int,
                   items: list[int], rank_body: Callable[[int, list[int]], dict[str, Any]]
                   ) -> None:
    """Rank ``n`` of ``items`` for ``user`` (those they rated, then others) and keep the
    top 10; ``rank_body`` builds the request."""
    names = titles()
    mine = {r.item_id: r.rating for r in ratings if r.user_id == user}
    others = [i for i in items if i not in mine]
    rng = np.random.default_rng(1)
    half = min(n // 2, len(mine))
    cands = [int(i) for i in rng.choice(sorted(mine), half, replace=False)]
    cands += [int(i) for i in rng.choice(others, n - half, replace=False)]
    code, out = http(port, "/rank", rank_body(user, cands))
    if code != 200:
        print(f"[demo] ranking request failed: {code} {out}", flush=True)
        return
    run.user = {"user_id": user, "ratings": len(mine)}
    run.top_items = [{"item_id": it["item_id"], "title": names.get(it["item_id"], "?"),
                      "score": it["score"], "rating": mine.get(it["item_id"])}
                     for it in out["items"][:10]]
    print(f"[demo] top 10 of {n} movies for user {user} ({len(mine)} ratings; half the "
          "candidates are movies they rated):", flush=True)
    for i, it in enumerate(run.top_items):
        rating = f"rated {it['rating']}" if it["rating"] else "not rated"
        print(f"  {i + 1:2d}. {it['title'][:50]:50s} {it['score']:.3f}  ({rating})", flush=True)


def _server_metrics(port: int) -> dict[str, Any]:
    """A few of the server's Prometheus figures (means of its histograms)."""
    from prometheus_client.parser import text_string_to_metric_families

    code, text = http(port, "/metrics")
    if code != 200 or not isinstance(text, str):
        return {}
    out: dict[str, Any] = {}
    for fam in text_string_to_metric_families(text):
        sums = {s.name: s.value for s in fam.samples if s.name.endswith(("_sum", "_count"))}
        total = sum(v for k, v in sums.items() if k.endswith("_count"))
        if fam.type == "histogram" and total and fam.name in (
                "freshet_serving_delta_lag_seconds", "freshet_serving_request_seconds"):
            mean = sum(v for k, v in sums.items() if k.endswith("_sum")) / total
            out[f"{fam.name} mean"] = f"{mean:.4f} s over {total:.0f}"
        if fam.name in ("freshet_serving_updates", "freshet_serving_table_bytes"):
            for smp in fam.samples:
                if not smp.name.endswith("_created"):
                    out[f"{smp.name}{smp.labels or ''}"] = smp.value
    return out
