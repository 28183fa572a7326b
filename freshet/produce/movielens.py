"""MovieLens-100K replayed as a serving log: one impression per rating, and actions.

A rating >= 4 becomes a ``click`` ``action_delay_ms`` after its impression; a 5 also
becomes a ``like`` at the same time. Ratings < 4 get no action, so the joiner turns
them into negatives when the join window closes. What MovieLens is (files, slots,
positives, request IDs) is ``freshet.data.movielens``.

Examples
--------
>>> evs = list(MovieLensSource.example().events())
>>> [(type(e).__name__, e.request_id, e.ts) for e in evs]  # doctest: +NORMALIZE_WHITESPACE
[('Impression', 'ml-0', 1000), ('Impression', 'ml-1', 2000), ('Action', 'ml-0', 6000),
 ('Action', 'ml-0', 6000), ('Impression', 'ml-2', 7000), ('Action', 'ml-2', 12000)]
"""

from __future__ import annotations

import argparse
import heapq
from collections.abc import Iterator, Sequence

from freshet.config import Config
from freshet.data.movielens import LIKE_RATING, SLOTS, Rating, load_ratings, request_id
from freshet.produce.base import Event, EventSource, Rejects
from freshet.topics import Action, Impression


def events(ratings: Sequence[Rating] | None = None, action_delay_ms: int = 5000
           ) -> Iterator[Event]:
    """Impressions and actions merged in event-time order."""
    ratings = load_ratings() if ratings is None else ratings
    pending: list[tuple[int, int, int, Action]] = []  # (ts, seq, ...) keeps ties stable
    seq = 0
    for index, r in enumerate(ratings):
        while pending and pending[0][0] <= r.ts:
            yield heapq.heappop(pending)[3]
        rid = request_id(index)
        yield Impression(rid, r.item_id, r.user_id, r.ts, r.slots)
        if r.positive:
            kinds = ["click"] + (["like"] if r.rating >= LIKE_RATING else [])
            for kind in kinds:
                seq += 1
                action = Action(rid, r.item_id, r.user_id, r.ts + action_delay_ms, kind)
                heapq.heappush(pending, (action.ts, seq, 0, action))
    while pending:
        yield heapq.heappop(pending)[3]


class MovieLensSource(EventSource):
    """``freshet produce movielens``: the 100,000 ratings (or ``ratings``) replayed."""

    name = "movielens"
    help = "replay MovieLens-100K (downloaded once) as impressions and actions"
    slots = tuple(SLOTS)

    def __init__(self, ratings: Sequence[Rating] | None = None,
                 action_delay_ms: int = 5000) -> None:
        self.ratings = ratings
        self.action_delay_ms = action_delay_ms

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--action-delay-ms", type=int, default=5000,
                            help="a positive's click (and like) this long after its impression")

    @classmethod
    def from_args(cls, args: argparse.Namespace, cfg: Config) -> MovieLensSource:
        return cls(action_delay_ms=args.action_delay_ms)

    @classmethod
    def example(cls) -> MovieLensSource:
        slots = {s: [1] for s in SLOTS}
        ratings = [Rating(1, 10, 5, 1000, slots), Rating(2, 11, 2, 2000, slots),
                   Rating(1, 12, 4, 7000, slots)]
        return cls(ratings)

    def events(self, rejects: Rejects | None = None) -> Iterator[Event]:
        return events(self.ratings, self.action_delay_ms)

    def describe(self) -> str:
        n = "100,000" if self.ratings is None else f"{len(self.ratings):,}"
        return f"replaying MovieLens-100K ({n} ratings) ..."
