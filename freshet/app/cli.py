"""The ``freshet`` command."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

from freshet.config import Config, load_config

if TYPE_CHECKING:
    from freshet.guard import TopicGuard


def cmd_broker(cfg: Config, args: argparse.Namespace) -> int:
    from freshet.broker import BrokerError, EmbeddedBroker, clear_state, write_state

    port = args.port if args.port is not None else cfg.broker.port
    log = cfg.path("logs/kafka.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    data = cfg.path(cfg.broker.data_dir)
    try:
        broker = EmbeddedBroker(host=cfg.broker.host, port=port, log_path=log, data_dir=data,
                                heap_mb=cfg.broker.heap_mb).start()
    except BrokerError as e:
        print(f"freshet broker: {e}", file=sys.stderr)
        return 1
    write_state(cfg, broker)
    print(f"broker ready: bootstrap {broker.bootstrap}, {broker.ready_s:.1f} s to start "
          f"(Apache Kafka, one KRaft node; data in {data}, kept across restarts; log {log})",
          flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.is_set():
            if broker.process is None or broker.process.poll() is not None:
                print("broker exited unexpectedly", file=sys.stderr)
                return 1
            stop.wait(0.5)
    finally:
        broker.stop()
        clear_state(cfg)
        print("broker stopped", flush=True)
    return 0


def cmd_topics(cfg: Config, args: argparse.Namespace) -> int:
    from freshet.kafka import create_topics

    for name, outcome in create_topics(cfg).items():
        print(
            f"{name}: {outcome} ({cfg.topics.partitions.get(name[len(cfg.topics.prefix) :])} "
            "partitions)"
        )
    return 0


def cmd_produce(cfg: Config, args: argparse.Namespace) -> int:
    from freshet.errors import FreshetError
    from freshet.kafka import producer
    from freshet.produce.base import Rejected, Rejects
    from freshet.produce.registry import source
    from freshet.produce.sender import send
    from freshet.topics import DeadLetter

    try:
        src = source(args.source).from_args(args, cfg)
    except FreshetError as e:
        print(f"freshet produce {args.source}: {e}", file=sys.stderr)
        return 2
    dead, dead_topic = producer(cfg), cfg.topics.name("dead_letters")

    def dead_letter(r: Rejected) -> None:
        letter = DeadLetter(src.origin(), f"line {r.line}: {r.reason}", r.raw)
        dead.produce(dead_topic, letter.to_json())
        dead.poll(0)

    rejects = Rejects(sink=dead_letter)
    print(src.describe(), file=sys.stderr)
    stats = send(cfg, src.events(rejects), speed=args.speed, rate=args.rate, progress=sys.stderr)
    if dead.flush(60):
        print("freshet produce: some dead letters were not delivered", file=sys.stderr)
    if rejects.count:
        print(rejects.summary(src.origin()) + f"\n  (each sent to {dead_topic})",
              file=sys.stderr)
    print(
        f"impressions={stats.impressions} actions={stats.actions} "
        f"by_action={stats.by_action} events_per_s={stats.events_per_s:.0f}"
        + (f" malformed={rejects.count}" if rejects.count else "")
    )
    if not stats.events:
        why = (f"all {rejects.count:,} records were malformed" if rejects.count
               else "the source gave no events")
        print(f"freshet produce {args.source}: nothing produced: {why}", file=sys.stderr)
        return 1
    return 0


def cmd_smoke(cfg: Config, args: argparse.Namespace) -> int:
    from freshet.kafka import end_offsets
    from jobs.smoke import build

    stop = end_offsets(cfg, cfg.topics.name("features"))
    build(cfg, stop=stop).execute("freshet-smoke")
    print(f"smoke job read features up to {stop}")
    return 0


def _submitted(cfg: Config, args: argparse.Namespace, job: str) -> bool:
    """With ``--cluster`` (or flink.cluster): the same job file, submitted unchanged
    (detached); False when the job is to run here, on the mini-cluster."""
    cluster = args.cluster or cfg.flink.cluster
    if not cluster:
        return False
    from freshet.app.submit import submit

    done = submit(cfg, job, cluster, ["--bounded"] if args.bounded else [])
    print(f"submitted {job} to {cluster}: job {done.job_id} "
          f"(http://{cluster}/#/job/running/{done.job_id})", flush=True)
    return True


def cmd_join(cfg: Config, args: argparse.Namespace) -> int:
    from freshet.kafka import end_offsets
    from jobs.join import JOB_NAME, current_bounds, run
    from jobs.metrics import JoinWatch, join_outcome

    if _submitted(cfg, args, "join"):
        return 0
    bounds = current_bounds(cfg) if args.bounded else None
    events = sum(sum(s.values()) for s in bounds.stop.values()) if bounds else 0
    if bounds is not None:
        print(f"joining {events:,} events (up to offsets {bounds.stop})", flush=True)
    starts = {t: end_offsets(cfg, cfg.topics.name(t)) for t in ("examples", "dead_letters")}
    guard = _guard(cfg, "join", ["features", "actions", "examples", "dead_letters"])
    guard.save()
    guard.start()
    checkpoint = _checkpoint(cfg, args.from_checkpoint, JOB_NAME, "")
    with JoinWatch(cfg, starts["examples"], starts["dead_letters"]):
        run(cfg, bounds, from_checkpoint=checkpoint)
    guard.stop()
    outcome = join_outcome(cfg, starts["examples"], starts["dead_letters"])
    print(f"joined: {outcome.line()}", flush=True)
    failure = outcome.failure(events)
    if failure:
        print(f"freshet join: {failure}", file=sys.stderr, flush=True)
        return 1
    return 0


def cmd_stats(cfg: Config, args: argparse.Namespace) -> int:
    import time

    from freshet.kafka import end_offsets
    from jobs.stats import JOB_NAME, OUTPUTS, current_bounds, enriched_count, run, written

    if _submitted(cfg, args, "stats"):
        return 0
    bounds = current_bounds(cfg) if args.bounded else None
    events = sum(sum(s.values()) for s in bounds.stop.values()) if bounds else 0
    if bounds is not None:
        print(f"statistics over {events:,} events (up to offsets {bounds.stop})", flush=True)
    starts = {t: end_offsets(cfg, cfg.topics.name(t)) for t in OUTPUTS}
    guard = _guard(cfg, "stats", ["features", "actions", *OUTPUTS])
    guard.save()
    guard.start()
    stop = threading.Event()

    def progress() -> None:  # what the job has written so far, every 10 s
        t0 = time.monotonic()
        while not stop.wait(10.0):
            n = written(cfg, starts)
            print(f"stats: {time.monotonic() - t0:.0f}s: offsets advanced by "
                  f"{n['features_signals']:,} on features_signals, {n['signals']:,} on "
                  "signals (records and transaction markers)", flush=True)

    checkpoint = _checkpoint(cfg, args.from_checkpoint, JOB_NAME, ", with empty statistics")
    watch = threading.Thread(target=progress, daemon=True)
    watch.start()
    run(cfg, bounds, from_checkpoint=checkpoint)
    stop.set()
    guard.stop()
    n = written(cfg, starts)
    print(f"stats: {enriched_count(cfg, starts['features_signals']):,} impressions with "
          f"signals on {cfg.topics.name('features_signals')}; the changelog "
          f"{cfg.topics.name('signals')} advanced by {n['signals']:,} offsets", flush=True)
    return 0


def _checkpoint(cfg: Config, given: str | None, job_name: str, empty: str) -> str | None:
    """``--from-checkpoint``: a path as given, or for ``latest`` the job's newest
    checkpoint (saying which, or that there is none and what starting afresh means)."""
    if given != "latest":
        return given
    from freshet.flink import latest_checkpoint

    checkpoint = latest_checkpoint(cfg, job_name)
    print(f"restoring {checkpoint}" if checkpoint else "no checkpoint to restore: "
          f"starting from the committed offsets{empty}", flush=True)
    return checkpoint


def _guard(cfg: Config, job: str, topics: list[str]) -> TopicGuard:
    """A topic guard that ends this process (the mini-cluster runs inside it)."""
    import os

    from freshet.guard import EXIT_CODE, TopicGuard

    def stop(message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        os._exit(EXIT_CODE)  # Flink's execute() blocks this thread's siblings: no unwinding

    return TopicGuard(cfg, job, topics, stop)


def cmd_serve(cfg: Config, args: argparse.Namespace) -> int:
    from jobs.serve import main as serve

    return serve(cfg, port=args.port)


def cmd_train(cfg: Config, args: argparse.Namespace) -> int:
    from freshet.guard import EXIT_CODE, TopicsReset
    from jobs.train import run

    guard = None
    if not cfg.flink.cluster:  # on a cluster the job outlives this process
        guard = _guard(cfg, "train", ["examples", "params", "metrics"])
        if args.from_checkpoint:
            try:
                guard.check_recorded()
            except TopicsReset as e:
                print(e, file=sys.stderr)
                return EXIT_CODE
        guard.save()
        guard.start()
    from contextlib import nullcontext

    from jobs.metrics import MetricsWatch

    # progress lines from the metrics topic while the job runs here
    with MetricsWatch(cfg) if not cfg.flink.cluster else nullcontext():
        code = run(cfg, from_snapshot=args.from_snapshot, from_checkpoint=args.from_checkpoint,
                   stop=args.stop)
    if guard is not None:
        guard.stop()
    return code


def cmd_replay(cfg: Config, args: argparse.Namespace) -> int:
    import time

    from jobs.metrics import MetricsWatch, read_metrics, summarize, train_failure
    from jobs.replay import parse_time, replay

    snapshot = args.snapshot or str(cfg.path(cfg.train.snapshot_dir) / "replay")
    since = int(time.time() * 1000)
    with MetricsWatch(cfg, since_ms=since):
        manifest = replay(cfg, parse_time(args.from_time), parse_time(args.to_time), snapshot,
                          start_snapshot=args.from_snapshot)
    summary = summarize(read_metrics(cfg, since_ms=since))
    failure = train_failure(cfg, manifest.messages, summary, since)
    if failure:
        print(f"freshet replay: {failure}", file=sys.stderr, flush=True)
        return 1
    print(f"replayed {manifest.messages:,} messages in {manifest.seconds:.1f}s: "
          f"{summary.line()}", flush=True)
    print(f"model in {snapshot}; continue online with `freshet train --from-snapshot "
          f"{snapshot}`", flush=True)
    return 0


def cmd_tune(cfg: Config, args: argparse.Namespace) -> int:
    from experiments.tune import main as tune

    return tune(cfg, args)


def cmd_submit(cfg: Config, args: argparse.Namespace) -> int:
    from freshet.app.submit import SubmitError, submit, submit_replay

    cluster = args.cluster or cfg.flink.cluster
    if not cluster:
        print("freshet submit: give --cluster HOST:PORT (or set flink.cluster)", file=sys.stderr)
        return 2
    try:
        if args.job == "replay":
            from jobs.replay import parse_time

            snapshot = args.snapshot or str(cfg.path(cfg.train.snapshot_dir) / "replay")
            done, manifest = submit_replay(cfg, cluster, parse_time(args.from_time),
                                           parse_time(args.to_time), snapshot,
                                           args.from_snapshot, args.pyexec)
            print(f"replay job {done.job_id} trained {manifest.messages} messages; "
                  f"model in {snapshot}")
            return 0
        job_args = ["--bounded"] if args.job in ("join", "stats") and args.bounded else []
        if args.job == "train":
            for flag, value in (("--from-snapshot", args.from_snapshot),
                                ("--from-checkpoint", args.from_checkpoint)):
                if value:
                    job_args += [flag, value]
        done = submit(cfg, args.job, cluster, job_args, args.pyexec)
    except SubmitError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"submitted {args.job} to {cluster}: job {done.job_id} "
          f"(http://{cluster}/#/job/running/{done.job_id})", flush=True)
    return 0


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from freshet.app.demo import DemoOptions, run_demo

    return run_demo(cfg, DemoOptions(rate=args.rate, limit=args.limit, signals=args.signals))


def cmd_experiment(cfg: Config, args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"experiments.{args.name}")
    module.main(args.args)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="freshet", description=__doc__)
    p.add_argument("--config", default="freshet.toml", help="TOML config file (if it exists)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("broker", help="run the embedded Apache Kafka broker (data kept on disk)")
    b.add_argument("--port", type=int, default=None, help="default: config, else a free port")
    b.set_defaults(func=cmd_broker)

    sub.add_parser("topics", help="create the project's topics").set_defaults(func=cmd_topics)

    from freshet.produce.registry import sources

    pr = sub.add_parser("produce", help="put impression and action events on the broker")
    pace = argparse.ArgumentParser(add_help=False)
    pace.add_argument("--speed", type=float, default=0.0,
                      help="event-time speed-up factor (0: as fast as possible)")
    pace.add_argument("--rate", type=float, default=0.0, help="cap on events per second")
    by_source = pr.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for name, cls in sorted(sources().items()):
        sp = by_source.add_parser(name, help=cls.help, parents=[pace])
        cls.add_arguments(sp)
    pr.set_defaults(func=cmd_produce)

    sub.add_parser("smoke", help="run the smoke job over the features topic").set_defaults(
        func=cmd_smoke
    )
    dm = sub.add_parser("demo", help="run the end-to-end demo on the embedded defaults")
    dm.add_argument("--rate", type=float, default=2000.0, help="replay pace, events/s")
    dm.add_argument("--limit", type=int, default=0, help="replay the first N ratings (0: all)")
    dm.add_argument("--signals", action="store_true",
                    help="the model also reads the fresh signals (stats.signals, docs/signals.md)")
    dm.set_defaults(func=cmd_demo)
    ex = sub.add_parser(
        "experiment", help="run one of the paper's experiments in-process (docs/results.md)"
    )
    ex.add_argument("name", choices=["hashing", "sync", "filters", "drift", "join_order",
                                     "fresh_signals", "scale"])
    ex.add_argument("args", nargs=argparse.REMAINDER, help="passed on, e.g. --seeds 1")
    ex.set_defaults(func=cmd_experiment)
    tr = sub.add_parser("train", help="train online from the examples topic (Flink job)")
    tr.add_argument("--from-snapshot", help="start from a replay's model, after its last message")
    tr.add_argument("--from-checkpoint", help="restore a retained checkpoint ('latest': newest)")
    tr.add_argument("--stop", help="partition:offset,... stop there (default: run forever)")
    tr.set_defaults(func=cmd_train)
    rp = sub.add_parser("replay", help="train in batch over a time range of the examples topic")
    rp.add_argument("--from", dest="from_time", help="ISO time or epoch ms (default: beginning)")
    rp.add_argument("--to", dest="to_time", help="ISO time or epoch ms, exclusive (default: end)")
    rp.add_argument("--snapshot", help="model output dir (default: <work_dir>/snapshots/replay)")
    rp.add_argument("--from-snapshot", help="start from an earlier replay's model")
    rp.set_defaults(func=cmd_replay)
    from experiments.tune import add_arguments as tune_arguments

    tu = sub.add_parser("tune", help="walk-forward grid over a range of examples; writes the "
                        "best settings to a config file")
    tune_arguments(tu)
    tu.set_defaults(func=cmd_tune)
    jn = sub.add_parser("join", help="run the online joiner: impressions + actions -> examples")
    jn.add_argument(
        "--bounded", action="store_true", help="stop at the input topics' current ends (replay)"
    )
    jn.add_argument("--from-checkpoint",
                    help="restore a retained checkpoint of the joiner ('latest': its newest)")
    jn.add_argument(
        "--cluster", metavar="HOST:PORT", default="",
        help="submit to this Flink cluster's REST address (default: flink.cluster, else the "
        "embedded mini-cluster)",
    )
    jn.set_defaults(func=cmd_join)
    st = sub.add_parser("stats", help="run the statistics job: impressions + actions -> "
                        "point-in-time signals (changelog, and impressions with signals)")
    st.add_argument("--bounded", action="store_true",
                    help="stop at the input topics' current ends (a replay's signals)")
    st.add_argument("--from-checkpoint",
                    help="restore a retained checkpoint of the job, its statistics with it "
                    "('latest': its newest)")
    st.add_argument("--cluster", metavar="HOST:PORT", default="",
                    help="submit to this Flink cluster's REST address (default: "
                    "flink.cluster, else the embedded mini-cluster)")
    st.set_defaults(func=cmd_stats)
    sm = sub.add_parser("submit", help="submit join, stats, train or replay to a Flink cluster")
    sm.add_argument("job", choices=["join", "stats", "train", "replay"])
    sm.add_argument("--cluster", metavar="HOST:PORT", default="",
                    help="the cluster's REST address (default: flink.cluster)")
    sm.add_argument("--pyexec", default=sys.executable,
                    help="Python on the TaskManagers, with the project installed "
                    "(default: this one; the Docker image has the same path)")
    sm.add_argument("--bounded", action="store_true",
                    help="join, stats: stop at the topics' ends")
    sm.add_argument("--from-snapshot", help="train/replay: start from a replay's model")
    sm.add_argument("--from-checkpoint", help="train: restore this retained checkpoint")
    sm.add_argument("--from", dest="from_time", help="replay: ISO time or epoch ms")
    sm.add_argument("--to", dest="to_time", help="replay: ISO time or epoch ms, exclusive")
    sm.add_argument("--snapshot", help="replay: model output dir, shared with the cluster")
    sm.set_defaults(func=cmd_submit)
    sv = sub.add_parser("serve", help="run the ranking server (applies params deltas live)")
    sv.add_argument("--port", type=int, default=None, help="default: serving.port")
    sv.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cfg = load_config(args.config)
    return int(args.func(cfg, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
