"""The demo's frontend: scores only ratings not yet sent, logs each with its impression,
and computes their AUC."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from typing import Any

import numpy as np
import pytest

from freshet.app.demo_served import ServedScores, with_signals
from freshet.data.movielens import Rating
from freshet.topics import Impression
from ps.evaluation import auc


def _ratings(n: int, seed: int = 0) -> list[Rating]:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 20, n)
    return [Rating(int(u), i, int(rng.integers(1, 6)), 1000 * (i // 3),
                   {"user_id": [int(u)], "item_id": [i], "genre": [1], "age": [2]})
            for i, u in enumerate(users)]


def _impressions(ratings: list[Rating]) -> list[Impression]:
    return [Impression(f"ml-{i}", r.item_id, r.user_id, r.ts, r.slots)
            for i, r in enumerate(ratings)]


class Server:
    """A ``/rank`` stand-in scoring by a noisy rating; records what it was asked."""

    def __init__(self, ratings: list[Rating]) -> None:
        self.stars = {(r.user_id, r.item_id): r.rating for r in ratings}
        self.asked: list[tuple[int, int]] = []
        self.at: list[tuple[int, int, int]] = []  # (user, first item asked, request ts)
        self.rng = np.random.default_rng(1)

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        assert set(body["user_slots"]) == {"user_id", "age"}  # item slots stay out
        assert all(set(c["slots"]) == {"item_id", "genre"} for c in body["candidates"])
        assert body["shown"] == 0  # the server logs nothing: the frontend does
        user = body["user_id"]
        items = [c["item_id"] for c in body["candidates"]]
        self.asked += [(user, i) for i in items]
        self.at.append((user, items[0], body["ts"]))
        return {"model_seq": 4, "table_version": len(self.asked), "items": [
            {"item_id": i, "score": 1 / (1 + np.exp(-(self.stars[user, i] - 3
                                                      + self.rng.normal())))}
            for i in items]}


def test_each_scored_rating_is_logged_once_with_its_score_and_the_auc_is_exact() -> None:
    ratings = _ratings(3000)
    server = Server(ratings)
    served = ServedScores(ratings, ahead=20, per_poll=30)
    events = iter(served.annotate(_impressions(ratings)))
    sent: list[Impression] = []
    for _ in range(0, 3000, 90):  # the producer sends 90 ratings between polls
        served.poll(server)
        sent += list(itertools.islice(events, 90))
    sent += list(events)
    assert len(sent) == 3000 and served.unanswered == 0
    assert len(server.asked) == len(set(server.asked)) == served.scored > 900
    logged = [(e.served_score, ratings[int(e.request_id[3:])]) for e in sent
              if e.served_score is not None]
    assert len(logged) == served.scored and all(e.model_seq == 4 for e in sent if e.model_seq)
    scores = np.array([s for s, _ in logged])
    labels = np.array([int(r.positive) for _, r in logged])
    assert served.auc() == pytest.approx(auc(scores, labels))
    assert served.labels == labels.tolist()
    assert 0.7 < served.auc() < 1.0  # the stand-in's scores follow the stars
    # Each request is at the event time of the first rating it scores (the signals are
    # read at it), not at the wall clock.
    when = {(r.user_id, r.item_id): r.ts for r in ratings}
    assert [ts for _, _, ts in server.at] == [when[u, i] for u, i, _ in server.at]


def test_a_poll_always_claims_ratings_the_producer_has_not_reached() -> None:
    ratings = _ratings(600)
    server = Server(ratings)
    served = ServedScores(ratings, ahead=5, per_poll=10)
    events = iter(served.annotate(_impressions(ratings)))
    for _ in range(40):
        before = served.position
        assert served.poll(server) == 10
        assert served.next - 10 >= before + 5  # the first claimed is ahead of the producer
        next(events)


def test_a_score_that_comes_back_after_its_impression_went_is_dropped() -> None:
    ratings = _ratings(100)
    served = ServedScores(ratings, ahead=0, per_poll=10, wait_s=0.05)
    events = served.annotate(_impressions(ratings))
    slow = threading.Event()

    def late_server(body: dict[str, Any]) -> dict[str, Any]:
        slow.wait(5)  # the producer gives up waiting meanwhile
        return Server(ratings)(body)

    poller = threading.Thread(target=served.poll, args=(late_server,))
    poller.start()
    while not served.claimed:
        pass
    sent = [next(iter(events)) for _ in range(10)]  # waits 0.05 s each, then sends
    slow.set()
    poller.join()
    assert all(e.served_score is None for e in sent)
    assert served.scored == 0 and served.unanswered == 10 and served.auc() is None


def test_a_refused_request_keeps_nothing_and_is_not_asked_again() -> None:
    ratings = _ratings(100)
    served = ServedScores(ratings, ahead=0, per_poll=10)
    assert served.poll(lambda body: None) == 0
    assert served.scored == 0 and served.next == 10 and not served.claimed
    assert all(e.served_score is None for e in served.annotate(_impressions(ratings[:10])))
    assert served.unanswered == 0


def test_the_replay_must_be_in_timestamp_order() -> None:
    ratings = _ratings(10)
    with pytest.raises(ValueError, match="timestamp order"):
        ServedScores(ratings[::-1])


def test_returning_users_are_those_with_a_rating_already_sent() -> None:
    users = [1, 2, 3, 6, 4, 6, 4, 1, 2, 5, 5]
    stars = [3, 3, 3, 1, 1, 1, 1, 5, 1, 2, 1]
    ratings = [Rating(u, i, r, 1000 * i, {"user_id": [u], "item_id": [i], "genre": [],
                                          "age": [1]})
               for i, (u, r) in enumerate(zip(users, stars, strict=True))]
    served = ServedScores(ratings, ahead=0, per_poll=8)
    events = iter(served.annotate(_impressions(ratings)))
    for _ in range(3):  # ratings 0-2 sent
        next(events)
    assert served.poll(Server(ratings)) == 8  # scores 3-10
    # users 6 4 6 4 1 2 5 5: only 1 and 2 were sent before (6 first comes in this poll)
    assert served.returning == [False, False, False, False, True, True, False, False]
    assert served.auc(returning=True) == 1.0  # user 1's 5 stars above user 2's 1
    assert served.auc(returning=False) is None  # the new users' ratings are all negatives


def test_the_signals_logged_with_the_replay_are_the_point_in_time_ones() -> None:
    """With every rating in its own second (its click half a second later) and no
    lateness, what a live server knows at an impression is exactly the point-in-time
    definition's: every event before it, not the impression itself."""
    from freshet.data.movielens import LIKE_RATING, POSITIVE_RATING
    from freshet.produce import movielens
    from ps.signals import Event, SignalSpec, point_in_time
    from server.signals import SignalFeed

    ratings = [dataclasses.replace(r, ts=1000 * i) for i, r in enumerate(_ratings(600))]
    spec = SignalSpec(signals=("item_n", "item_rate", "user_rate", "cat_rate", "hist_pos"),
                      prior=1.0, history=5)
    feed = SignalFeed.offline(spec, "genre", lateness_ms=0)
    sent = list(with_signals(movielens.events(ratings, action_delay_ms=500), feed))
    logged = [{n: e.slots[n] for n in spec.signals} for e in sent if isinstance(e, Impression)]
    reference: list[Event] = []
    for r in ratings:
        reference.append(Event(r.ts, r.user_id, r.item_id, tuple(r.slots["genre"])))
        if r.rating >= POSITIVE_RATING:
            reference.append(Event(r.ts + 500, r.user_id, r.item_id, tuple(r.slots["genre"]),
                                   shown=0, positive=1, like=int(r.rating >= LIKE_RATING)))
    reference.sort(key=lambda e: e.ts)
    shown = [s for e, s in zip(reference, point_in_time(reference, spec), strict=True)
             if e.shown]
    assert len(logged) == 600 and logged == shown
    assert sum(bool(s["hist_pos"]) for s in logged) > 300  # the histories did fill
