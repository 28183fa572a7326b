"""The demo's frontend: the live server scores ratings before they are replayed, and
each impression so scored is logged with its score.

A production system reports the AUC of the scores it *served*: Freshet's server logs
each impression with the score it returned and the model's versions, the joiner
carries them into the example, and the trainer reports their AUC on the metrics topic
(``served_auc``). The demo replays MovieLens as a serving log, so on every poll it
asks the live server to rank the next few ratings, a little ahead of the producer, and
the producer sends those impressions with the score they got, as a frontend that logs
what it showed would (the server's own logging stamps its wall clock, and the replay
compresses seven months into two minutes). The demo also computes the AUC of the
scores it got itself, from the ratings: the two must agree.

The poll claims its ratings under a lock the producer takes too, so a claimed rating
is always still unsent, and the producer waits (at most ``wait_s``) for its score.

Examples
--------
>>> from freshet.data.movielens import Rating
>>> from freshet.topics import Impression
>>> def rating(user, item, stars, ts):
...     return Rating(user, item, stars, ts, {"user_id": [user], "item_id": [item]})
>>> ratings = [rating(1, 10, 5, 0), rating(1, 11, 1, 1), rating(2, 10, 4, 2),
...            rating(2, 12, 2, 3), rating(3, 11, 3, 4)]
>>> def server(req):  # a stand-in for /rank: scores an item by its ID
...     return {"model_seq": 7, "table_version": 3, "items": [
...         {"item_id": c["item_id"], "score": 1 / c["item_id"]} for c in req["candidates"]]}
>>> served = ServedScores(ratings, ahead=1, per_poll=3)
>>> served.poll(server)  # the producer has sent nothing: ratings 1-3 are claimed
3
>>> sent = list(served.annotate(Impression(f"ml-{i}", r.item_id, r.user_id, r.ts, r.slots)
...                             for i, r in enumerate(ratings)))
>>> [e.served_score for e in sent]
[None, 0.09090909090909091, 0.1, 0.08333333333333333, None]
>>> served.scored, served.auc(), served.returning
(3, 1.0, [False, False, False])
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from freshet.data.movielens import ITEM_SLOTS, USER_SLOTS, Rating
from freshet.topics import Impression
from ps import evaluation
from server.signals import SignalFeed


def rank_request(user_slots: dict[str, list[int]], items: dict[int, dict[str, list[int]]],
                 shown: int | None = None, ts: int | None = None) -> dict[str, Any]:
    """A ``/rank`` body: one user's slots and candidate items with their slots.

    ``shown=0``: the server logs none of them (the demo's frontend logs what it shows).
    ``ts``: the request's event time (the replay's, not the wall clock: the fresh
    signals are read at it).

    Examples
    --------
    >>> rank_request({"user_id": [7], "item_id": [1]}, {3: {"item_id": [3], "genre": []}}, 0)
    {'user_id': 7, 'demote': False, 'user_slots': {'user_id': [7]}, \
'candidates': [{'item_id': 3, 'slots': {'item_id': [3], 'genre': []}}], 'shown': 0}
    """
    body: dict[str, Any] = {
        "user_id": user_slots["user_id"][0], "demote": False,
        "user_slots": {k: v for k, v in user_slots.items() if k in USER_SLOTS},
        "candidates": [{"item_id": i, "slots": {k: v for k, v in s.items() if k in ITEM_SLOTS}}
                       for i, s in items.items()]}
    if shown is not None:
        body["shown"] = shown
    if ts is not None:
        body["ts"] = ts
    return body


class ServedScores:
    """Served scores of the replay's upcoming ratings, their AUC, and the producer side
    that logs them with their impressions.

    Parameters
    ----------
    ratings
        The replay, in the order the producer sends it (timestamp order).
    ahead
        Ratings skipped past the producer's position, so that it need not wait for
        the server's answer.
    per_poll
        Ratings scored per poll.
    wait_s
        How long the producer waits for a claimed rating's score before it sends the
        impression without one (counted in ``unanswered``).
    """

    def __init__(self, ratings: list[Rating], ahead: int = 300, per_poll: int = 60,
                 wait_s: float = 2.0) -> None:
        self.ratings = ratings
        ts = np.array([r.ts for r in ratings], dtype=np.int64)
        if np.any(np.diff(ts) < 0):
            raise ValueError("ratings must be in timestamp order, as the replay sends them")
        first: dict[int, int] = {}
        # where each rating's user first appears in the replay
        self.user_start = np.array([first.setdefault(r.user_id, i) for i, r in enumerate(ratings)])
        self.ahead, self.per_poll, self.wait_s = ahead, per_poll, wait_s
        self.lock = threading.Condition()
        self.position = 0  # impressions the producer has passed (sent or logged)
        self.next = 0  # ratings before this one are claimed or passed over
        self.claimed: dict[int, dict[str, Any] | None] = {}  # index -> answer (None: asked)
        self.scores: list[float] = []
        self.labels: list[int] = []
        self.returning: list[bool] = []  # the user had ratings sent before the poll
        self.unanswered = 0  # claimed ratings sent without a score

    @property
    def scored(self) -> int:
        return len(self.scores)

    def poll(self, rank: Callable[[dict[str, Any]], dict[str, Any] | None]) -> int:
        """Score the next ratings the producer has not reached; returns how many.

        ``rank`` answers a ``/rank`` body (None: the server refused).
        """
        with self.lock:
            start = max(self.next, self.position + self.ahead)
            stop = min(start + self.per_poll, len(self.ratings))
            if start >= stop:
                return 0
            self.next = stop
            picked = range(start, stop)
            for i in picked:
                self.claimed[i] = None
            returning = (self.user_start[start:stop] < self.position).tolist()
        by_user: dict[int, dict[int, dict[str, list[int]]]] = {}
        user_slots: dict[int, dict[str, list[int]]] = {}
        user_ts: dict[int, int] = {}
        for i in picked:
            r = self.ratings[i]
            by_user.setdefault(r.user_id, {})[r.item_id] = r.slots
            user_slots[r.user_id] = r.slots
            user_ts.setdefault(r.user_id, r.ts)
        answers: dict[int, dict[str, Any]] = {}
        for user, items in by_user.items():
            out = rank(rank_request(user_slots[user], items, shown=0, ts=user_ts[user]))
            if out is None:
                break
            for it in out["items"]:
                answers[user, it["item_id"]] = {
                    "served_score": it["score"], "model_seq": out.get("model_seq"),
                    "table_version": out.get("table_version")}
        kept = 0
        with self.lock:
            for k, i in enumerate(picked):
                r = self.ratings[i]
                answer = answers.get((r.user_id, r.item_id))
                if answer is None or i < self.position:  # refused, or sent without it
                    self.claimed.pop(i, None)
                    continue
                self.claimed[i] = answer
                self.scores.append(answer["served_score"])
                self.labels.append(int(r.positive))
                self.returning.append(returning[k])
                kept += 1
            self.lock.notify_all()
        return kept

    def annotate(self, events: Iterable[Any]) -> Iterator[Any]:
        """The replay's events, each impression of a scored rating with its score."""
        for ev in events:
            if isinstance(ev, Impression):
                ev = self._impression(ev)
            yield ev

    def _impression(self, ev: Impression) -> Impression:
        with self.lock:
            i = self.position
            if i in self.claimed:
                deadline = time.monotonic() + self.wait_s
                while self.claimed.get(i, {}) is None and time.monotonic() < deadline:
                    self.lock.wait(deadline - time.monotonic())
            claimed = i in self.claimed
            answer = self.claimed.pop(i, None)
            self.position = i + 1
            self.unanswered += claimed and answer is None
        if answer is None:
            return ev
        return dataclasses.replace(ev, **answer)

    def auc(self, returning: bool | None = None) -> float | None:
        """AUC of the scores logged with impressions (None until both labels were scored).

        ``returning``: only users who had (True) or had not (False) been sent a rating
        before the poll; the latter the served model cannot know yet.
        """
        labels, scores = np.array(self.labels), np.array(self.scores)
        if returning is not None:
            keep = np.array(self.returning, dtype=bool) == returning
            labels, scores = labels[keep], scores[keep]
        v = evaluation.auc(scores, labels)  # nan when one label (or none) was scored
        return None if np.isnan(v) else v


def with_signals(events: Iterable[Any], feed: SignalFeed) -> Iterator[Any]:
    """The replay's events, each impression with the fresh signals a live server
    following the log would have logged with it: read from ``feed`` at the impression's
    time, before the impression itself is folded in (``server.signals``, the serving
    feed's own code, fed the events in the order they are sent).

    Examples
    --------
    The second impression of item 7 sees the first (count bucket 2), the first none:

    >>> from ps.signals import SignalSpec
    >>> feed = SignalFeed.offline(SignalSpec(signals=("item_n",)), "genre", lateness_ms=0)
    >>> evs = [Impression(f"r{u}", 7, u, 1_000, {"item_id": [7], "genre": [2]})
    ...        for u in (1, 2)]
    >>> [e.slots["item_n"] for e in with_signals(evs, feed)]
    [[1], [2]]
    """
    for ev in events:
        if isinstance(ev, Impression):
            got = feed.signals_for(ev.user_id, [ev.item_id], [ev.slots], ev.ts)[0]
            ev = dataclasses.replace(ev, slots={**ev.slots, **got})
        feed.add(ev)
        yield ev
