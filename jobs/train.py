"""Training job: examples topic -> trainer shards -> params, metrics, dead letters.

Online (``freshet train``): unbounded, resuming from the group's committed offsets (or
from a replay's snapshot and offsets). Batch (``freshet replay``): the same graph with
explicit start and stop offsets; see :mod:`jobs.replay`.
"""

from __future__ import annotations

import sys

from freshet.config import Config, load_config
from freshet.flink import kafka_sink, kafka_source, latest_checkpoint, stream_environment
from jobs.manifest import ReplayModel
from udfs.routing import MAX_PARALLELISM, shard_keys
from udfs.train_function import BYTES, DEAD_LETTERS, METRICS, ShardKey, TrainFunction

GROUP = "freshet-train"
JOB_NAME = "freshet-train"


def build(
    cfg: Config,
    start: dict[int, int] | None = None,
    stop: dict[int, int] | None = None,
    start_snapshot: str | None = None,
    write_snapshot: str | None = None,
    job_name: str = JOB_NAME,
    from_checkpoint: str | None = None,
) -> object:
    """The training job graph (not yet executed).

    ``start``/``stop``: partition -> offset of the examples topic (``stop`` makes the
    job bounded). ``start_snapshot``: a replay's model directory to begin from;
    ``write_snapshot``: where to write the model when a bounded input ends.
    ``from_checkpoint``: a retained Flink checkpoint to restore (state and offsets).
    """

    shards = cfg.train.parallelism
    extra = {"python.fn-execution.bundle.time": str(cfg.train.bundle_time_ms)}
    if from_checkpoint:
        extra["execution.state-recovery.path"] = from_checkpoint
    env = stream_environment(cfg, job_name, parallelism=shards, extra=extra)
    env.set_max_parallelism(MAX_PARALLELISM)  # udfs.routing's key -> subtask map needs it
    keys = shard_keys(shards)
    source = kafka_source(cfg, "examples", GROUP, binary=True, start=start, stop=stop)
    trained = (
        env.from_source(source, watermarks(cfg, bounded=stop is not None), "examples")
        .uid("examples-source")
        .key_by(ShardKey(keys), key_type=_int_type())
        .process(TrainFunction(cfg.to_json(), keys, start_snapshot, write_snapshot),
                 output_type=BYTES)
        .name("train")
        .uid("train")
    )
    params_id = (f"{job_name}.{cfg.topics.prefix}params"
                 if cfg.sync.params_delivery == "exactly_once" else "")
    trained.sink_to(kafka_sink(cfg, "params", binary=True, exactly_once_id=params_id)).uid(
        "params-sink")
    trained.get_side_output(METRICS).sink_to(kafka_sink(cfg, "metrics")).uid("metrics-sink")
    trained.get_side_output(DEAD_LETTERS).sink_to(kafka_sink(cfg, "dead_letters")).uid(
        "dead-letters-sink"
    )
    return env


def watermarks(cfg: Config, bounded: bool) -> object:
    """The examples source's watermarks: none in arrival order; in event-time order the
    messages' Kafka timestamps (the joiner's watermark when it wrote them), per
    partition, so the trainer's watermark is the minimum over partitions (udfs/hold.py).

    Online, a partition without messages for ``train.idle_partition_s`` stops holding
    it back; a bounded run's partitions all end, and marking a slow one idle would
    release examples before it is read.
    """
    from pyflink.common import Duration, WatermarkStrategy

    if cfg.train.order != "event_time":
        return WatermarkStrategy.no_watermarks()
    strategy = WatermarkStrategy.for_monotonous_timestamps()
    if not bounded and cfg.train.idle_partition_s > 0:
        strategy = strategy.with_idleness(
            Duration.of_millis(round(cfg.train.idle_partition_s * 1000)))
    return strategy


def _int_type() -> object:
    from pyflink.common import Types

    return Types.INT()  # Java Integer keys: hashCode() == value (udfs.routing)


def parse_offsets(text: str | None) -> dict[int, int] | None:
    """``"0:10,1:12"`` -> ``{0: 10, 1: 12}``.

    Examples
    --------
    >>> parse_offsets("0:10,1:12"), parse_offsets(None)
    ({0: 10, 1: 12}, None)
    """
    if not text:
        return None
    return {int(p): int(o) for p, o in (item.split(":") for item in text.split(","))}


def run(
    cfg: Config,
    from_snapshot: str | None = None,
    from_checkpoint: str | None = None,
    stop: str | None = None,
) -> int:
    """``freshet train``: this module on the mini-cluster, or ``flink run`` on a cluster.

    The submitted script is this file, unchanged; the config travels as JSON.
    """
    import subprocess
    import tempfile
    from pathlib import Path

    args = []
    if from_snapshot:
        args += ["--from-snapshot", from_snapshot]
    if from_checkpoint:
        args += ["--from-checkpoint", from_checkpoint]
    if stop:
        args += ["--stop", stop]
    if not cfg.flink.cluster:
        main(args, cfg)
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(cfg.to_json())
    import pyflink

    flink = Path(pyflink.__file__).parent / "bin" / "flink"
    cmd = [str(flink), "run", "-d", "-m", cfg.flink.cluster, "-pyexec", sys.executable,
           "-pyclientexec", sys.executable, "-py", __file__, "--config-json", f.name, *args]
    return subprocess.run(cmd, check=False).returncode


def main(argv: list[str] | None = None, cfg: Config | None = None) -> None:
    """``python -m jobs.train``: what ``freshet train`` and ``flink run -py`` execute."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="jobs.train", description=__doc__)
    ap.add_argument("--config-json", help="a Config.to_json() file (default: load_config())")
    ap.add_argument("--start", help="partition:offset,... (default: committed offsets)")
    ap.add_argument("--stop", help="partition:offset,... makes the job bounded")
    ap.add_argument("--from-snapshot", help="start from a replay's model directory")
    ap.add_argument("--write-snapshot", help="write the model here when the input ends")
    ap.add_argument("--from-checkpoint", help="restore a retained checkpoint ('latest': newest)")
    args = ap.parse_args(argv)
    if args.config_json:
        cfg = Config.from_json(Path(args.config_json).read_text())
    cfg = cfg or load_config()
    checkpoint = args.from_checkpoint
    if checkpoint == "latest":
        checkpoint = latest_checkpoint(cfg, JOB_NAME)
    start = parse_offsets(args.start)
    if args.from_snapshot and start is None:
        # right after the replay's last message
        start = ReplayModel.read(args.from_snapshot).online_start
    build(cfg, start, parse_offsets(args.stop), args.from_snapshot, args.write_snapshot,
          from_checkpoint=checkpoint).execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
