"""A synthetic serving log with new users and items arriving all the time and an
interest shift (regime change) part way through.

Each user prefers one of ``clusters`` item clusters; an impression of an item from
that cluster is clicked with ``p_match``, others with ``p_other``. At the shift, every
user's preference moves to the next cluster, so a model that stops learning goes stale.

Examples
--------
>>> evs = list(events(SyntheticSpec(impressions=200, seed=1)))
>>> sum(isinstance(e, Impression) for e in evs)
200
>>> all(a.ts <= b.ts for a, b in zip(evs, evs[1:]))
True
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from freshet.config import Config
from freshet.produce.base import Event, EventSource, Rejects
from freshet.topics import Action, Impression


@dataclass(frozen=True)
class SyntheticSpec:
    impressions: int = 100_000
    clusters: int = 8
    p_new_user: float = 0.02  # chance an impression comes from a never-seen user
    p_new_item: float = 0.01
    p_match: float = 0.5
    p_other: float = 0.05
    shift_at: float = 0.5  # fraction of the stream after which interests shift
    event_rate: float = 1000.0  # impressions per second of event time
    action_delay_ms: int = 2000
    start_ms: int = 0  # 0: now
    seed: int = 0


def events(spec: SyntheticSpec) -> Iterator[Event]:
    rng = np.random.default_rng(spec.seed)
    start = spec.start_ms or int(time.time() * 1000)
    user_pref: list[int] = []
    item_cluster: list[int] = []

    def new_user() -> int:
        user_pref.append(int(rng.integers(spec.clusters)))
        return len(user_pref) - 1

    def new_item() -> int:
        item_cluster.append(int(rng.integers(spec.clusters)))
        return len(item_cluster) - 1

    for _ in range(max(1, spec.clusters * 10)):
        new_user(), new_item()
    shift_index = int(spec.impressions * spec.shift_at)
    pending: list[tuple[int, int, Action]] = []
    for i in range(spec.impressions):
        ts = start + int(i * 1000 / spec.event_rate)
        while pending and pending[0][0] <= ts:
            yield heapq.heappop(pending)[2]
        # Recent users and items are the most active: draw near the end of the lists.
        u = new_user() if rng.random() < spec.p_new_user else _recent(rng, len(user_pref))
        it = new_item() if rng.random() < spec.p_new_item else _recent(rng, len(item_cluster))
        pref = (user_pref[u] + (1 if i >= shift_index else 0)) % spec.clusters
        p = spec.p_match if item_cluster[it] == pref else spec.p_other
        rid = f"syn-{spec.seed}-{i}"
        slots = {"user_id": [u], "item_id": [it], "genre": [item_cluster[it]]}
        yield Impression(rid, it, u, ts, slots)
        if rng.random() < p:
            action = Action(rid, it, u, ts + spec.action_delay_ms, "click")
            heapq.heappush(pending, (action.ts, i, action))
    while pending:
        yield heapq.heappop(pending)[2]


def _recent(rng: np.random.Generator, n: int) -> int:
    # Exponential recency: about half the traffic goes to the newest ~1,000 IDs.
    back = int(rng.exponential(1500.0))
    return max(0, n - 1 - back)


class SyntheticSource(EventSource):
    """``freshet produce synthetic``: :func:`events` of a :class:`SyntheticSpec`."""

    name = "synthetic"
    help = "generate a stream with new users and items all the time and an interest shift"
    slots = ("user_id", "item_id", "genre")

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        d = SyntheticSpec()
        parser.add_argument("--impressions", type=int, default=d.impressions)
        parser.add_argument("--shift-at", type=float, default=d.shift_at,
                            help="fraction of the stream after which interests shift")
        parser.add_argument("--p-new-user", type=float, default=d.p_new_user,
                            help="chance an impression comes from a never-seen user")
        parser.add_argument("--p-new-item", type=float, default=d.p_new_item)
        parser.add_argument("--action-delay-ms", type=int, default=d.action_delay_ms,
                            help="a click this long after its impression")
        parser.add_argument("--seed", type=int, default=d.seed)

    @classmethod
    def from_args(cls, args: argparse.Namespace, cfg: Config) -> SyntheticSource:
        return cls(SyntheticSpec(impressions=args.impressions, shift_at=args.shift_at,
                                 seed=args.seed, p_new_user=args.p_new_user,
                                 p_new_item=args.p_new_item,
                                 action_delay_ms=args.action_delay_ms))

    @classmethod
    def example(cls) -> SyntheticSource:
        return cls(SyntheticSpec(impressions=300, seed=1, start_ms=1_000_000))

    def events(self, rejects: Rejects | None = None) -> Iterator[Event]:
        return events(self.spec)

    def describe(self) -> str:
        return f"generating {self.spec.impressions:,} synthetic impressions ..."
