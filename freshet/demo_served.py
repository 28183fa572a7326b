"""The demo's served AUC: the live server scores ratings before they are replayed.

The trainer's progressive AUC scores each example just before learning it, but in the
order the joiner emits them: negatives when their window closes, at the demo's replay
speed hundreds of ratings after the positives of the same moment, which inflates it
(docs/results.md; the trainer's hold, docs/training.md, takes most of that away).
A production system would report the AUC of the scores it *served*. So on every poll
the demo asks the live server to rank the next few ratings of the replay, a little
ahead of the producer, and keeps ``(score, label)`` for each. A poll's scores are kept
only if the producer had still not sent the first of those impressions when the last
answer came back, so no kept score can include its own label.

Examples
--------
>>> from freshet.data.movielens import Rating
>>> def rating(user, item, stars, ts):
...     return Rating(user, item, stars, ts, {"user_id": [user], "item_id": [item]})
>>> ratings = [rating(1, 10, 5, 0), rating(1, 11, 1, 1), rating(2, 10, 4, 2),
...            rating(2, 12, 2, 3), rating(3, 11, 3, 4)]
>>> def server(req):  # a stand-in for /rank: scores an item by its ID
...     return {"items": [{"item_id": c["item_id"], "score": 1 / c["item_id"]}
...                       for c in req["candidates"]]}
>>> served = ServedScores(ratings, ahead=0, per_poll=4)
>>> served.poll(server, sent_ts=lambda: -1)  # nothing sent yet: the first four
4
>>> marks = iter([3, 10])  # the producer sends the fifth while the server answers
>>> served.poll(server, sent_ts=lambda: next(marks))
0
>>> served.scored, served.overtaken, served.auc()
(4, 1, 1.0)
>>> served.returning  # had the user been sent a rating before? (none had)
[False, False, False, False]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from freshet.data.movielens import Rating
from ps import evaluation

USER_SLOTS = ("user_id", "gender", "age", "occupation")
ITEM_SLOTS = ("item_id", "genre")


def rank_request(user_slots: dict[str, list[int]], items: dict[int, dict[str, list[int]]]
                 ) -> dict[str, Any]:
    """A ``/rank`` body: one user's slots and candidate items with their slots.

    Examples
    --------
    >>> rank_request({"user_id": [7], "item_id": [1]}, {3: {"item_id": [3], "genre": []}})
    {'user_id': 7, 'demote': False, 'user_slots': {'user_id': [7]}, \
'candidates': [{'item_id': 3, 'slots': {'item_id': [3], 'genre': []}}]}
    """
    return {"user_id": user_slots["user_id"][0], "demote": False,
            "user_slots": {k: v for k, v in user_slots.items() if k in USER_SLOTS},
            "candidates": [{"item_id": i, "slots": {k: v for k, v in s.items()
                                                    if k in ITEM_SLOTS}}
                           for i, s in items.items()]}


class ServedScores:
    """Served scores of the replay's upcoming ratings, and their AUC.

    Parameters
    ----------
    ratings
        The replay, in the order the producer sends it (timestamp order).
    ahead
        Ratings skipped past the producer's position, so that it does not overtake
        the poll while the server answers.
    per_poll
        Ratings scored per poll.
    """

    def __init__(self, ratings: list[Rating], ahead: int = 300, per_poll: int = 60) -> None:
        self.ratings = ratings
        self.ts = np.array([r.ts for r in ratings], dtype=np.int64)
        if np.any(np.diff(self.ts) < 0):
            raise ValueError("ratings must be in timestamp order, as the replay sends them")
        first: dict[int, int] = {}
        # where each rating's user first appears in the replay
        self.user_start = np.array([first.setdefault(r.user_id, i) for i, r in enumerate(ratings)])
        self.ahead, self.per_poll = ahead, per_poll
        self.next = 0  # ratings before this one are scored or passed over
        self.scores: list[float] = []
        self.labels: list[int] = []
        self.returning: list[bool] = []  # the user had ratings sent before this poll
        self.overtaken = 0  # ratings whose scores came back after they were sent

    @property
    def scored(self) -> int:
        return len(self.scores)

    def poll(self, rank: Callable[[dict[str, Any]], dict[str, Any] | None],
             sent_ts: Callable[[], int | None]) -> int:
        """Score the next ratings not yet sent; returns how many scores were kept.

        ``rank`` answers a ``/rank`` body (None: the server refused); ``sent_ts`` is the
        event time of the newest event the producer has sent (None: nothing yet).
        """
        mark = sent_ts()
        first = int(np.searchsorted(self.ts, -1 if mark is None else mark, side="right"))
        start = max(self.next, first + self.ahead)
        picked = self.ratings[start:start + self.per_poll]
        if not picked:
            return 0
        self.next = start + len(picked)
        by_user: dict[int, dict[int, dict[str, list[int]]]] = {}
        user_slots: dict[int, dict[str, list[int]]] = {}
        for r in picked:
            by_user.setdefault(r.user_id, {})[r.item_id] = r.slots
            user_slots[r.user_id] = r.slots
        scores: dict[tuple[int, int], float] = {}
        for user, items in by_user.items():
            out = rank(rank_request(user_slots[user], items))
            if out is None:
                return 0
            scores.update({(user, it["item_id"]): it["score"] for it in out["items"]})
        mark = sent_ts()
        if mark is not None and mark >= picked[0].ts:  # some impression went out first
            self.overtaken += len(picked)
            return 0
        self.scores += [scores[r.user_id, r.item_id] for r in picked]
        self.labels += [int(r.positive) for r in picked]
        self.returning += (self.user_start[start:self.next] < first).tolist()
        return len(picked)

    def auc(self, returning: bool | None = None) -> float | None:
        """AUC of the kept scores (None until both labels were scored).

        ``returning``: only users who had (True) or had not (False) been sent a rating
        before the poll; the latter the served model cannot know yet.
        """
        labels, scores = np.array(self.labels), np.array(self.scores)
        if returning is not None:
            keep = np.array(self.returning, dtype=bool) == returning
            labels, scores = labels[keep], scores[keep]
        v = evaluation.auc(scores, labels)  # nan when one label (or none) was scored
        return None if np.isnan(v) else v
