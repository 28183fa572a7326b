"""MovieLens-100K replayed as a serving log: one impression per rating, and actions.

A rating >= 4 becomes a ``click`` ``action_delay_ms`` after its impression; a 5 also
becomes a ``like`` at the same time. Ratings < 4 get no action, so the joiner turns
them into negatives when the join window closes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from freshet.data.movielens import LIKE_RATING, Rating, load_ratings
from freshet.topics import Action, Impression

Event = Impression | Action


def request_id(index: int) -> str:
    return f"ml-{index}"


def events(ratings: list[Rating] | None = None, action_delay_ms: int = 5000) -> Iterator[Event]:
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
