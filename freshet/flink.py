"""The PyFlink environment factory every job uses.

The same job code runs on the embedded mini-cluster (the default: started inside
this process) and on a Flink cluster (when ``flink run`` launched the script, or
``freshet submit``); ``get_execution_environment`` picks the context, and this
module only adds Freshet's settings on top.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from freshet.config import Config

# Kafka aborts a transaction open longer than this; at most the broker's
# transaction.max.timeout.ms (15 min by default). Flink's own default (1 h) is refused.
TRANSACTION_TIMEOUT_MS = 600_000

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment


def checkpoint_root(cfg: Config, job_name: str) -> Path:
    """Where a job's checkpoints go: one directory per job, so that restoring the latest
    of one job never picks another's."""
    return cfg.path(cfg.flink.checkpoint_dir) / job_name


def latest_checkpoint(cfg: Config, job_name: str) -> str | None:
    """The newest completed checkpoint of ``job_name`` (any run of it), or None."""
    done = [m.parent for m in checkpoint_root(cfg, job_name).glob("*/chk-*/_metadata")]
    if not done:
        return None
    return str(max(done, key=lambda d: d.stat().st_mtime))


def flink_settings(cfg: Config, job_name: str = "freshet") -> dict[str, str]:
    """Flink configuration keys Freshet sets for every job (Flink 2.x key names)."""
    checkpoints = checkpoint_root(cfg, job_name).as_uri()
    return {
        "parallelism.default": str(cfg.flink.parallelism),
        "state.backend.type": "rocksdb",
        "execution.checkpointing.interval": f"{cfg.flink.checkpoint_interval_ms} ms",
        "execution.checkpointing.dir": checkpoints,
        "execution.checkpointing.incremental": "true",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        # TensorFlow deadlocks in thread mode (stack.md): Python runs in worker processes.
        "python.execution-mode": "process",
        # Small bundles keep latency low; throughput comes from batched records instead.
        "python.fn-execution.bundle.time": "100",
        "python.fn-execution.bundle.size": "1000",
        "pipeline.name": "freshet",
        # Local mode: Python workers inherit this process's PATH-less env otherwise.
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "2 s",
    }


def _prepare_process(cfg: Config) -> None:
    """Process-level settings that must precede the Java gateway's start."""
    log_dir = cfg.path(cfg.flink.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FLINK_LOG_DIR", str(log_dir))  # else logs go into site-packages
    # Local mode would run Python UDFs inside this driver process ("loopback").
    os.environ.setdefault("_python_worker_execution_mode", "process")


def stream_environment(
    cfg: Config,
    job_name: str,
    parallelism: int | None = None,
    extra: dict[str, str] | None = None,
) -> StreamExecutionEnvironment:
    """A DataStream environment with Freshet's settings (mini-cluster unless submitted).

    ``extra``: more Flink keys, e.g. ``{"execution.state-recovery.path": chk}`` to
    restore a job from a retained checkpoint.
    """
    from freshet import jvm

    jvm.ensure()  # the Kafka connector and Freshet's jar, on the classpath before the JVM
    _prepare_process(cfg)
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    conf = Configuration()
    for k, v in flink_settings(cfg, job_name).items():
        conf.set_string(k, v)
    conf.set_string("pipeline.name", job_name)
    for k, v in (extra or {}).items():
        conf.set_string(k, v)
    if parallelism is not None:
        conf.set_string("parallelism.default", str(parallelism))
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(parallelism or cfg.flink.parallelism)
    return env


def table_environment(env: StreamExecutionEnvironment) -> StreamTableEnvironment:
    from pyflink.table import StreamTableEnvironment

    return StreamTableEnvironment.create(env)


def sql_dir() -> Path:
    """The Flink SQL files (the source of truth for joins)."""
    return Path(__file__).resolve().parents[1] / "sql"


def kafka_source(
    cfg: Config,
    topic: str,
    group: str,
    binary: bool = False,
    start: dict[int, int] | None = None,
    stop: dict[int, int] | None = None,
) -> object:
    """A KafkaSource for a logical topic; ``start``/``stop`` are partition -> offset.

    Without ``start`` it resumes from the group's committed offsets, else the
    earliest. ``stop`` makes it bounded (replay). It reads committed records only: the
    joiner writes in transactions.
    """
    from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetResetStrategy,
        KafkaOffsetsInitializer,
        KafkaSource,
        KafkaTopicPartition,
    )

    from freshet.broker import bootstrap_servers

    name = cfg.topics.name(topic)

    def offsets(spec: dict[int, int]) -> KafkaOffsetsInitializer:
        return KafkaOffsetsInitializer.offsets(
            {KafkaTopicPartition(name, p): o for p, o in spec.items()}
        )

    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(bootstrap_servers(cfg))
        .set_topics(name)
        .set_group_id(group)
        .set_value_only_deserializer(ByteArraySchema() if binary else SimpleStringSchema())
        .set_property("isolation.level", "read_committed")
        .set_property("commit.offsets.on.checkpoint", "true")
    )
    for k, v in {**cfg.kafka.client, **cfg.kafka.java_client}.items():
        builder = builder.set_property(k, v)
    if start is not None:
        builder = builder.set_starting_offsets(offsets(start))
    else:
        builder = builder.set_starting_offsets(
            KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
        )
    if stop is not None:
        builder = builder.set_bounded(offsets(stop))
    return builder.build()


def kafka_sink(cfg: Config, topic: str, binary: bool = False, exactly_once_id: str = ""
               ) -> object:
    """A KafkaSink for a logical topic: at-least-once, or exactly-once in transactions
    named after ``exactly_once_id`` (unique per job and sink) that commit with each
    checkpoint."""
    from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

    from freshet.broker import bootstrap_servers

    schema = ByteArraySchema() if binary else SimpleStringSchema()
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(bootstrap_servers(cfg))
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(cfg.topics.name(topic))
            .set_value_serialization_schema(schema)
            .build()
        )
    )
    if exactly_once_id:
        builder = (builder.set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
                   .set_transactional_id_prefix(exactly_once_id)
                   .set_property("transaction.timeout.ms", str(TRANSACTION_TIMEOUT_MS)))
    else:
        builder = builder.set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
    for k, v in {**cfg.kafka.client, **cfg.kafka.java_client}.items():
        builder = builder.set_property(k, v)
    return builder.build()
