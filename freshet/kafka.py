"""Kafka clients configured from the one config, and topic administration.

The embedded broker's high watermark counts record batches, not records, so
``end_offsets`` here finds the real end by reading until the partition is idle.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from freshet.broker import bootstrap_servers
from freshet.config import Config
from freshet.topics import TOPICS


def client_config(cfg: Config, **extra: object) -> dict[str, object]:
    conf: dict[str, object] = {"bootstrap.servers": bootstrap_servers(cfg)}
    conf.update(cfg.kafka.client)
    conf.update(extra)
    return conf


def producer(cfg: Config, **extra: object) -> Producer:
    defaults: dict[str, object] = {
        "linger.ms": 20,
        "enable.idempotence": True,
        "compression.type": "none",
        "queue.buffering.max.messages": 500_000,
    }
    defaults.update(extra)
    return Producer(client_config(cfg, **defaults))


def consumer(cfg: Config, group: str, **extra: object) -> Consumer:
    defaults: dict[str, object] = {
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": cfg.kafka.session_timeout_ms,
    }
    defaults.update(extra)
    return Consumer(client_config(cfg, **defaults))


def admin(cfg: Config) -> AdminClient:
    return AdminClient(client_config(cfg))


def create_topics(cfg: Config, timeout_s: float = 30.0) -> dict[str, str]:
    """Create every project topic that does not exist yet; return name -> outcome."""
    adm = admin(cfg)
    existing = adm.list_topics(timeout=timeout_s).topics
    outcome: dict[str, str] = {}
    wanted = []
    for logical in TOPICS:
        name = cfg.topics.name(logical)
        parts = cfg.topics.partitions.get(logical, 1)
        if name in existing:
            have = len(existing[name].partitions)
            outcome[name] = "exists" if have == parts else f"exists with {have} partitions"
        else:
            wanted.append(NewTopic(name, num_partitions=parts, replication_factor=1))
    if wanted:
        for name, fut in adm.create_topics(wanted, request_timeout=timeout_s).items():
            try:
                fut.result()
                outcome[name] = "created"
            except KafkaException as e:
                outcome[name] = f"failed: {e}"
    failed = {k: v for k, v in outcome.items() if v.startswith("failed")}
    if failed:
        raise RuntimeError(f"could not create topics: {failed}")
    return outcome


def partitions(cfg: Config, topic: str) -> list[int]:
    meta = admin(cfg).list_topics(topic, timeout=10).topics[topic]
    if meta.error is not None:
        raise KafkaException(meta.error)
    return sorted(meta.partitions)


def read(
    cfg: Config,
    topic: str,
    idle_s: float = 2.0,
    start: dict[int, int] | None = None,
    max_messages: int | None = None,
) -> Iterator[Message]:
    """Every message from ``start`` (default: the beginning) until ``idle_s`` of silence.

    Uses manual assignment (no group join), so it starts at once on tansu.
    """
    c = consumer(cfg, group=f"freshet-read-{time.time_ns()}", **{"enable.partition.eof": False})
    try:
        parts = partitions(cfg, topic)
        start = start or {}
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in parts])
        seen = 0
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            batch = c.consume(10_000, timeout=0.2)
            for m in batch:
                if m.error() is not None:
                    raise KafkaException(m.error())
                yield m
                seen += 1
                if max_messages is not None and seen >= max_messages:
                    return
            if batch:
                last = time.monotonic()
    finally:
        c.close()


def end_offsets(cfg: Config, topic: str, idle_s: float = 2.0) -> dict[int, int]:
    """partition -> offset after its last record, found by reading (tansu's HWM is wrong)."""
    ends = {p: 0 for p in partitions(cfg, topic)}
    for m in read(cfg, topic, idle_s=idle_s):
        ends[m.partition()] = max(ends[m.partition()], m.offset() + 1)
    return ends
