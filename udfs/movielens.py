"""MovieLens-100K ratings as examples-topic messages (for tests and the benchmark).

A rating becomes an :class:`~freshet.topics.Example` labelled ``rating >= 4``; ratings
stay in time order and are batched ``batch_size`` per message, as the joiner does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from freshet.data.movielens import Rating, load_ratings
from freshet.topics import Example, encode_examples


def examples(ratings: Sequence[Rating] | None = None) -> list[Example]:
    ratings = load_ratings() if ratings is None else ratings
    return [
        Example(
            request_id=f"ml-{i}",
            item_id=r.item_id,
            user_id=r.user_id,
            ts=r.ts,
            label=int(r.positive),
            click=int(r.positive),
            slots=r.slots,
        )
        for i, r in enumerate(ratings)
    ]


def messages(exs: Sequence[Example], batch_size: int = 512) -> Iterator[tuple[int, bytes]]:
    """``(timestamp_ms, value)`` per message; the timestamp is the batch's last event."""
    for i in range(0, len(exs), batch_size):
        chunk = list(exs[i : i + batch_size])
        yield chunk[-1].ts, encode_examples(chunk)
