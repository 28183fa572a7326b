"""Impression demotion: items a user was shown recently rank lower.

A cheap answer to staleness from caching (seed 002): remember, per user, when each
item was last shown, and multiply the score of an item shown within ``window_s`` by
``factor``. Memory is bounded: at most ``max_users`` users (least recently served
dropped first) and ``per_user`` items each.

Examples
--------
>>> r = RecentImpressions(window_s=60, factor=0.5)
>>> r.record(user_id=1, item_ids=[10, 11], now=0.0)
>>> r.factors(1, [10, 12], now=30.0).tolist(), r.factors(1, [10], now=61.0).tolist()
([0.5, 1.0], [1.0])
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np


class RecentImpressions:
    """Per user, the last time each item was shown (bounded, thread-safe)."""

    def __init__(self, window_s: float, factor: float, max_users: int = 100_000,
                 per_user: int = 200) -> None:
        self.window_s = window_s
        self.factor = factor
        self.max_users = max_users
        self.per_user = per_user
        self._users: OrderedDict[int, OrderedDict[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, user_id: int, item_ids: Sequence[int], now: float) -> None:
        with self._lock:
            items = self._users.pop(user_id, None) or OrderedDict()
            self._users[user_id] = items  # most recently served user last
            for i in item_ids:
                items.pop(i, None)
                items[i] = now
            while len(items) > self.per_user:
                items.popitem(last=False)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)

    def factors(self, user_id: int, item_ids: Sequence[int], now: float) -> np.ndarray:
        """Score multipliers: ``factor`` for items shown within the window, else 1."""
        out = np.ones(len(item_ids), np.float32)
        with self._lock:
            items = self._users.get(user_id)
            if not items:
                return out
            cutoff = now - self.window_s
            for k, i in enumerate(item_ids):
                t = items.get(i)
                if t is not None and t >= cutoff:
                    out[k] = self.factor
        return out
