"""Kafka clients configured from the one config, and topic administration.

Consumers read committed records only (``isolation.level=read_committed``): the joiner
writes ``examples`` and ``dead_letters`` in Kafka transactions, and an aborted one
must never be read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from freshet.broker import bootstrap_servers
from freshet.config import Config
from freshet.topics import TOPICS

# Topics Freshet creates take records of any timestamp: a replayed log carries its old
# event times, and a bounded Flink job stamps its final outputs at the end of time
# (Kafka 4 refuses records more than 1 h ahead by default).
TOPIC_CONFIG = {"message.timestamp.after.max.ms": str(2**63 - 1),
                "message.timestamp.before.max.ms": str(2**63 - 1)}


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
        "isolation.level": "read_committed",
    }
    defaults.update(extra)
    return Consumer(client_config(cfg, **defaults))


def admin(cfg: Config) -> AdminClient:
    return AdminClient(client_config(cfg))


def create_topics(cfg: Config, timeout_s: float = 30.0) -> dict[str, str]:
    """Create every project topic that does not exist yet, and add partitions to those
    that have fewer than the config asks for; return name -> outcome.

    Kafka cannot take partitions away: a topic with more than configured keeps them.
    Adding partitions moves where keyed records go from then on (``hash(key) mod n``);
    Freshet's jobs do not depend on that (the joiner keys its state by request, not by
    partition), but a consumer of your own might.
    """
    adm = admin(cfg)
    existing = adm.list_topics(timeout=timeout_s).topics
    outcome: dict[str, str] = {}
    wanted, grow = [], []
    for logical in TOPICS:
        name = cfg.topics.name(logical)
        parts = cfg.topics.partitions.get(logical, 1)
        if name in existing:
            have = len(existing[name].partitions)
            if have < parts:
                grow.append(NewPartitions(name, parts))
                outcome[name] = f"grown from {have}"
            else:
                outcome[name] = "exists" if have == parts else f"exists with {have} partitions"
        else:
            wanted.append(NewTopic(name, num_partitions=parts, replication_factor=1,
                                   config=TOPIC_CONFIG))
    futures = {}
    if wanted:
        futures.update(adm.create_topics(wanted, request_timeout=timeout_s))
    if grow:
        futures.update(adm.create_partitions(grow, request_timeout=timeout_s))
    for name, fut in futures.items():
        try:
            fut.result()
            outcome.setdefault(name, "created")
        except KafkaException as e:
            outcome[name] = f"failed: {e}"
    failed = {k: v for k, v in outcome.items() if v.startswith("failed")}
    if failed:
        raise RuntimeError(f"could not create topics: {failed}")
    if futures:
        _wait_for_leaders(adm, list(futures), timeout_s)
    return outcome


def _wait_for_leaders(adm: AdminClient, names: list[str], timeout_s: float) -> None:
    """Return once every partition of ``names`` has a leader (a new topic's first
    requests are otherwise refused with NOT_LEADER_FOR_PARTITION)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = adm.list_topics(timeout=timeout_s).topics
        if all(n in topics and topics[n].error is None and topics[n].partitions
               and all(p.leader >= 0 for p in topics[n].partitions.values()) for n in names):
            return
        time.sleep(0.1)
    raise RuntimeError(f"topics {names} have no leader after {timeout_s}s")


def partitions(cfg: Config, topic: str) -> list[int]:
    meta = admin(cfg).list_topics(topic, timeout=10).topics[topic]
    if meta.error is not None:
        raise KafkaException(meta.error)
    return sorted(meta.partitions)


def read(
    cfg: Config,
    topic: str,
    idle_s: float = 10.0,
    start: dict[int, int] | None = None,
    max_messages: int | None = None,
) -> Iterator[Message]:
    """Every committed message from ``start`` (default: the beginning) to the end the
    topic had when reading reached it (each partition's end of file), or until
    ``idle_s`` without a message or an end (a broker that stopped answering; the first
    answer may take up to 10 s).

    Uses manual assignment: no consumer group to join.
    """
    c = consumer(cfg, group=f"freshet-read-{time.time_ns()}", **{"enable.partition.eof": True})
    try:
        parts = partitions(cfg, topic)
        start = start or {}
        c.assign([TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in parts])
        pending, seen, last = set(parts), 0, time.monotonic()
        patience = max(idle_s, 10.0)
        while pending and time.monotonic() - last < patience:
            batch = c.consume(10_000, timeout=0.2)
            for m in batch:
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                        continue
                    raise KafkaException(m.error())
                yield m
                seen += 1
                if max_messages is not None and seen >= max_messages:
                    return
            if batch:
                last, patience = time.monotonic(), idle_s
    finally:
        c.close()


def watermarks(cfg: Config, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (its first offset still kept, the offset after its last committed
    record: the last stable offset)."""
    c = consumer(cfg, group=f"freshet-ends-{time.time_ns()}")
    try:
        out = {}
        for p in partitions(cfg, topic):
            for attempt in range(50):  # a leader being elected: retry for up to ~10 s
                try:
                    out[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    break
                except KafkaException as e:
                    if not e.args[0].retriable() and e.args[0].code() not in _LEADER_CODES \
                            or attempt == 49:
                        raise
                    time.sleep(0.2)
        return out
    finally:
        c.close()


_LEADER_CODES = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                 KafkaError.UNKNOWN_TOPIC_OR_PART)


def end_offsets(cfg: Config, topic: str) -> dict[int, int]:
    """partition -> the offset after its last committed record (the last stable offset)."""
    return {p: high for p, (_, high) in watermarks(cfg, topic).items()}
