"""Notice when a job's topics were deleted or recreated, instead of carrying on wrong.

Kafka keeps topics across its restarts, but an operator can delete a topic and create
it again (or point a job at a wiped broker) while a job runs. The job's positions then
point past the new topic's end; with an ``auto.offset.reset`` of latest or none, or
once the new topic grows past the old offsets, a job would read it from the middle,
skipping records without a word.

Every Kafka topic has an ID that a recreated topic does not share. :class:`TopicGuard`
records the IDs of a job's topics when it starts, checks them every few seconds, and
on a missing or changed topic calls ``on_reset`` with a message that says what happened
and what to do. ``freshet train`` and ``freshet join`` then stop with exit code 3.
It also keeps the IDs in ``<work_dir>/topic_ids.json``, so a job restored from a
checkpoint refuses to start against topics that were recreated since it was taken.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import KafkaException, TopicCollection

from freshet.config import Config
from freshet.errors import FreshetError
from freshet.kafka import admin

log = logging.getLogger("freshet.guard")
EXIT_CODE = 3  # what `freshet train` / `freshet join` exit with on a topic reset


class TopicsReset(FreshetError, RuntimeError):
    """A topic the job reads or writes was deleted or recreated on the broker."""


def topic_ids(cfg: Config, names: list[str], timeout_s: float = 10.0) -> dict[str, str | None]:
    """Topic name -> its ID on the broker now (None: the topic does not exist)."""
    client = admin(cfg)  # kept referenced: a collected client fails its futures (_DESTROY)
    futures = client.describe_topics(TopicCollection(names), request_timeout=timeout_s)
    out: dict[str, str | None] = {}
    for name, fut in futures.items():
        try:
            out[name] = str(fut.result().topic_id)
        except KafkaException as e:
            if "UNKNOWN_TOPIC" not in str(e):
                raise  # the broker is unreachable, not reset: let the caller retry
            out[name] = None
    return out


def describe_reset(job: str, before: dict[str, str | None], now: dict[str, str | None]) -> str:
    """The error a user sees; empty if nothing changed.

    Examples
    --------
    >>> describe_reset("train", {"t": "A"}, {"t": "A"})
    ''
    >>> describe_reset("train", {"t": "A"}, {"t": None}).split(":")[1]
    ' the broker lost topic t (deleted)'
    """
    changed = {t: (before[t], now.get(t)) for t in before if now.get(t) != before[t]}
    if not changed:
        return ""
    what = ", ".join(f"{t} ({'deleted' if b is None else f'recreated: id {a} -> {b}'})"
                     for t, (a, b) in changed.items())
    return (f"freshet {job}: the broker lost topic {what}: the topic was deleted (and "
            "perhaps created again), or the broker was started on an empty data directory. "
            "This job's offsets and checkpointed state point at records that no longer "
            "exist; carrying on would silently skip or misread data, so it stops. To start "
            "over: `freshet topics`, then run the job again without --from-checkpoint.")


class TopicGuard(threading.Thread):
    """Checks the IDs of ``topics`` (logical names) every ``interval_s`` seconds."""

    def __init__(self, cfg: Config, job: str, topics: list[str],
                 on_reset: Callable[[str], None], interval_s: float = 2.0) -> None:
        super().__init__(name=f"topic-guard-{job}", daemon=True)
        self.cfg, self.job, self.on_reset, self.interval_s = cfg, job, on_reset, interval_s
        self.names = [cfg.topics.name(t) for t in topics]
        self.ids = topic_ids(cfg, self.names)
        self._halt = threading.Event()

    @property
    def record(self) -> Path:
        return self.cfg.path("topic_ids.json")

    def check_recorded(self) -> None:
        """Raise :class:`TopicsReset` if the topics differ from those recorded by the
        last guarded run in this work dir (call before restoring a checkpoint)."""
        if not self.record.exists():
            return
        recorded = json.loads(self.record.read_text())
        before = {t: recorded[t] for t in self.names if t in recorded}
        message = describe_reset(self.job, before, self.ids)
        if message:
            raise TopicsReset(message)

    def save(self) -> None:
        recorded = json.loads(self.record.read_text()) if self.record.exists() else {}
        self.record.parent.mkdir(parents=True, exist_ok=True)
        self.record.write_text(json.dumps({**recorded, **self.ids}, indent=1))

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            try:
                now = topic_ids(self.cfg, self.names)
            except KafkaException as e:  # broker down: nothing to compare yet
                log.warning("topic guard: broker unreachable (%s)", e)
                continue
            message = describe_reset(self.job, self.ids, now)
            if message:
                log.error("%s", message)
                self.on_reset(message)
                return

    def stop(self) -> None:
        self._halt.set()
