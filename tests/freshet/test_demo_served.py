"""The demo's served AUC keeps only scores made before their impression was sent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from freshet.data.movielens import Rating
from freshet.demo_served import ServedScores
from ps.evaluation import auc


def _ratings(n: int, seed: int = 0) -> list[Rating]:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 20, n)
    return [Rating(int(u), i, int(rng.integers(1, 6)), 1000 * (i // 3),
                   {"user_id": [int(u)], "item_id": [i], "genre": [1], "age": [2]})
            for i, u in enumerate(users)]


class Server:
    """A ``/rank`` stand-in scoring by a noisy rating; records what it was asked."""

    def __init__(self, ratings: list[Rating]) -> None:
        self.stars = {(r.user_id, r.item_id): r.rating for r in ratings}
        self.asked: list[tuple[int, int]] = []
        self.rng = np.random.default_rng(1)

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        assert set(body["user_slots"]) == {"user_id", "age"}  # item slots stay out
        assert all(set(c["slots"]) == {"item_id", "genre"} for c in body["candidates"])
        user = body["user_id"]
        items = [c["item_id"] for c in body["candidates"]]
        self.asked += [(user, i) for i in items]
        return {"items": [{"item_id": i, "score": self.stars[user, i] + self.rng.normal()}
                          for i in items]}


def test_scores_are_of_unsent_ratings_each_once_and_their_auc_is_exact() -> None:
    ratings = _ratings(3000)
    server = Server(ratings)
    served = ServedScores(ratings, ahead=20, per_poll=30)
    marks = []
    for sent in range(0, 3000, 90):  # the producer sends 90 ratings between polls
        mark = ratings[sent].ts
        marks.append(mark)
        served.poll(server, lambda m=mark: m)
    assert len(server.asked) == len(set(server.asked)) == served.scored > 900
    assert served.overtaken == 0
    by_key = {(r.user_id, r.item_id): r for r in ratings}
    first_asked = [by_key[k] for k in server.asked]
    # each poll's ratings are after the mark it saw, plus `ahead` ratings
    per_poll = [first_asked[i:i + 30] for i in range(0, len(first_asked), 30)]
    for mark, picked in zip(marks, per_poll, strict=False):
        assert min(r.ts for r in picked) > mark
    in_replay_order = sorted(server.asked, key=lambda k: k[1])  # item i is rating i
    labels = np.array([int(by_key[k].positive) for k in in_replay_order])
    scores = np.array(served.scores)
    assert served.labels == labels.tolist()
    assert served.auc() == pytest.approx(auc(scores, labels))
    assert 0.7 < served.auc() < 1.0  # the stand-in's scores follow the stars


def test_a_poll_overtaken_by_the_producer_keeps_nothing() -> None:
    ratings = _ratings(100)
    served = ServedScores(ratings, ahead=0, per_poll=10)
    marks = iter([-1, ratings[0].ts])  # the first impression went out meanwhile
    assert served.poll(Server(ratings), lambda: next(marks)) == 0
    assert (served.scored, served.overtaken, served.auc()) == (0, 10, None)
    assert served.poll(Server(ratings), lambda: ratings[0].ts) == 10  # moves on


def test_a_refused_request_keeps_nothing() -> None:
    ratings = _ratings(100)
    served = ServedScores(ratings, ahead=0, per_poll=10)
    assert served.poll(lambda body: None, lambda: None) == 0
    assert served.scored == 0 and served.next == 10  # not asked again


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
    assert served.poll(Server(ratings), lambda: ratings[2].ts) == 8  # 0-2 sent: score 3-10
    # users 6 4 6 4 1 2 5 5: only 1 and 2 were sent before (6 first comes in this poll)
    assert served.returning == [False, False, False, False, True, True, False, False]
    assert served.auc(returning=True) == 1.0  # user 1's 5 stars above user 2's 1
    assert served.auc(returning=False) is None  # the new users' ratings are all negatives
    assert served.auc() == 1.0
