"""Smoke job: features -> Python map (validate, count slots) -> metrics.

Proves the stack end to end: Kafka source, a Python operator in a worker process,
and a Kafka sink. Invalid events go to the dead-letter topic, never dropped.
"""

from __future__ import annotations

import sys

from freshet.config import Config, load_config
from freshet.flink import kafka_sink, kafka_source, stream_environment
from udfs.smoke import OK_PREFIX, SmokeCheck


def build(cfg: Config, stop: dict[int, int] | None = None) -> object:
    from pyflink.common import Types, WatermarkStrategy

    env = stream_environment(cfg, "freshet-smoke")
    source = kafka_source(
        cfg, "features", group="freshet-smoke", start={} if stop else None, stop=stop
    )
    checked = env.from_source(source, WatermarkStrategy.no_watermarks(), "features").map(
        SmokeCheck(), output_type=Types.STRING()
    )
    checked.filter(lambda s: s.startswith(OK_PREFIX)).map(
        lambda s: s[len(OK_PREFIX) :], output_type=Types.STRING()
    ).sink_to(kafka_sink(cfg, "metrics"))
    checked.filter(lambda s: not s.startswith(OK_PREFIX)).sink_to(kafka_sink(cfg, "dead_letters"))
    return env


def main(argv: list[str] | None = None) -> None:
    cfg = load_config()
    build(cfg).execute("freshet-smoke")


if __name__ == "__main__":
    main(sys.argv[1:])
