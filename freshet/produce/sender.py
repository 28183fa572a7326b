"""Paces events onto Kafka in event-time order, with progress output."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from freshet.config import Config
from freshet.kafka import producer
from freshet.produce.base import Event
from freshet.topics import Action, Impression


@dataclass
class SendStats:
    impressions: int = 0
    actions: int = 0
    seconds: float = 0.0
    by_action: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return self.impressions + self.actions

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def send(
    cfg: Config,
    events: Iterable[Event],
    speed: float = 0.0,
    rate: float = 0.0,
    progress: TextIO | None = sys.stderr,
    progress_every_s: float = 2.0,
    on_event: Callable[[Event], None] | None = None,
) -> SendStats:
    """Produce ``events`` (already in event-time order) to their topics.

    ``speed`` > 0 replays event time that many times faster than real time; ``rate``
    > 0 caps wall-clock events per second; both 0 is as fast as possible.
    """
    prod = producer(cfg)
    topics = {cls: cfg.topics.name(cls.topic) for cls in (Impression, Action)}
    stats = SendStats()
    start = time.monotonic()
    first_ts: int | None = None
    next_report = start + progress_every_s
    for ev in events:
        if speed > 0:
            first_ts = ev.ts if first_ts is None else first_ts
            _sleep_until(start + (ev.ts - first_ts) / 1000.0 / speed)
        elif rate > 0:
            _sleep_until(start + stats.events / rate)
        while True:
            try:
                prod.produce(topics[type(ev)], ev.to_json(), key=ev.key(), timestamp=ev.ts)
                break
            except BufferError:  # local queue full: let the broker catch up
                prod.poll(0.05)
        prod.poll(0)
        if isinstance(ev, Impression):
            stats.impressions += 1
        else:
            stats.actions += 1
            stats.by_action[ev.action] = stats.by_action.get(ev.action, 0) + 1
        if on_event is not None:
            on_event(ev)
        now = time.monotonic()
        if progress is not None and now >= next_report:
            next_report = now + progress_every_s
            print(
                f"  produced {stats.events:,} events ({stats.events / (now - start):,.0f}/s)",
                file=progress,
                flush=True,
            )
    remaining = prod.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} events were not delivered to the broker")
    stats.seconds = time.monotonic() - start
    if progress is not None:
        print(
            f"  produced {stats.impressions:,} impressions and {stats.actions:,} actions "
            f"in {stats.seconds:.1f}s ({stats.events_per_s:,.0f} events/s)",
            file=progress,
            flush=True,
        )
    return stats


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
