"""Training job: examples topic -> trainer shards -> params, metrics, dead letters.

Online (``freshet train``): unbounded, resuming from the group's committed offsets (or
from a replay's snapshot and offsets). Batch (``freshet replay``): the same graph with
explicit start and stop offsets; see :mod:`jobs.replay`.
"""

from __future__ import annotations

import sys

from freshet.config import Config, load_config
from freshet.flink import kafka_sink, kafka_source, stream_environment
from udfs.routing import MAX_PARALLELISM, shard_keys
from udfs.train_function import BYTES, DEAD_LETTERS, METRICS, ShardKey, TrainFunction

GROUP = "freshet-train"


def build(
    cfg: Config,
    start: dict[int, int] | None = None,
    stop: dict[int, int] | None = None,
    start_snapshot: str | None = None,
    write_snapshot: str | None = None,
    job_name: str = "freshet-train",
) -> object:
    """The training job graph (not yet executed).

    ``start``/``stop``: partition -> offset of the examples topic (``stop`` makes the
    job bounded). ``start_snapshot``: a replay's model directory to begin from;
    ``write_snapshot``: where to write the model when a bounded input ends.
    """
    from pyflink.common import WatermarkStrategy

    shards = cfg.train.parallelism
    env = stream_environment(cfg, job_name, parallelism=shards)
    env.set_max_parallelism(MAX_PARALLELISM)  # udfs.routing's key -> subtask map needs it
    keys = shard_keys(shards)
    source = kafka_source(cfg, "examples", GROUP, binary=True, start=start, stop=stop)
    trained = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "examples")
        .uid("examples-source")
        .key_by(ShardKey(keys), key_type=_int_type())
        .process(TrainFunction(cfg.to_json(), keys, start_snapshot, write_snapshot),
                 output_type=BYTES)
        .name("train")
        .uid("train")
    )
    trained.sink_to(kafka_sink(cfg, "params", binary=True)).uid("params-sink")
    trained.get_side_output(METRICS).sink_to(kafka_sink(cfg, "metrics")).uid("metrics-sink")
    trained.get_side_output(DEAD_LETTERS).sink_to(kafka_sink(cfg, "dead_letters")).uid(
        "dead-letters-sink"
    )
    return env


def _int_type() -> object:
    from pyflink.common import Types

    return Types.INT()  # Java Integer keys: hashCode() == value (udfs.routing)


def main(argv: list[str] | None = None) -> None:
    cfg = load_config()
    build(cfg).execute("freshet-train")


if __name__ == "__main__":
    main(sys.argv[1:])
