"""Fresh signals at serving time: the serving log folded into statistics and histories.

:class:`SignalFeed` follows the ``features`` (impressions) and ``actions`` topics and
folds every event into a :class:`ps.signals.SignalState`, the same state and the same
bucketing the replays and the experiments compute (``ps/signals.py``). A ranking
request reads it for its user and every candidate (:meth:`SignalFeed.signals_for`);
the server adds those slot IDs to the candidates' slots, scores with them and logs
them with the impression, so the joiner carries exactly what serving saw into the
example and the trainer learns on it (no train/serve skew by construction).

Two topics and their partitions arrive interleaved, not in event-time order, and the
state folds in order: events wait in a buffer until the newest event seen is
``lateness_ms`` past them. An event later than that is folded at the state's time
(counted in ``late``) rather than dropped. So what a request reads reflects every event
up to about ``lateness_ms`` before the newest one seen: that, plus the topics' lag, is
the signals' staleness (``benchmarks.freshness`` measures it end to end).

The impressions this server logs are folded as it logs them (:meth:`SignalFeed.add_logged`,
from the impression logger's thread) and skipped when they come back on the topic: they
carry the server process's ID in the ``ORIGIN_HEADER`` header. That saves parsing each
one back (~15 µs, ten per request), and they are in the state ~0.1 s sooner. Other
servers' impressions, and a previous process's on a restart, are folded from the topic.
An impression the broker then refuses stays counted here (counted as ``failed`` by the
logger) though the statistics job never sees it.

An action carries no slots; its item's categories are those of the item's latest
impression (kept for ``max_items`` items).

A restarted server rebuilds the state from the topics: it reads them from
``rebuild_s`` before its start (0: from the oldest record they keep), folding as it
goes, so a restart loses nothing the topics still hold; the state is bounded by the
spec's TTL and history length whatever the topics hold.

Examples
--------
>>> from ps.signals import SignalSpec
>>> from freshet.topics import Action, Impression
>>> feed = SignalFeed.offline(SignalSpec(signals=("item_n", "hist_pos")), "genre",
...                           lateness_ms=0)
>>> for i, ts in enumerate((1_000, 1_500)):
...     feed.add(Impression(f"r{i}", 7, i, ts, {"genre": [3]}))
>>> feed.add(Action("r0", 7, 0, 2_000, "click"))
>>> feed.signals_for(0, [7, 8], [{"genre": [3]}, {}], now_ms=3_000)
[{'item_n': [2], 'hist_pos': [7]}, {'item_n': [1], 'hist_pos': [7]}]
"""

from __future__ import annotations

import dataclasses
import gc
import heapq
import itertools
import logging
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from freshet.config import Config, ServingConfig
from freshet.kafka import consumer, partitions
from freshet.topics import ORIGIN_HEADER, Action, Impression, SchemaError
from ps.signals import Event, SignalSpec, SignalState

log = logging.getLogger(__name__)



class SignalFeed(threading.Thread):
    """The serving log folded into a :class:`~ps.signals.SignalState` (module docstring).

    Parameters
    ----------
    cfg : Config or None
        Where the topics are; None: nothing is consumed (:meth:`offline`, tests).
    spec : SignalSpec
        Which signals and how (``signals.*`` in the config).
    category_slot : str
        The impression slot whose IDs are the item's categories (MovieLens: ``genre``).
    lateness_ms : int
        How long an event waits for earlier ones before it is folded.
    max_items : int
        Items whose categories are remembered for their actions (least recent dropped).
    rebuild_s : float
        At start, read the topics from this long ago (0: from their oldest record).
    positive_actions, like_action
        Which actions count as positives and as likes (``stats.*``, as the job counts).
    origin : bytes or None
        This server's ``ORIGIN_HEADER`` value: impressions carrying it were folded by
        :meth:`add_logged` when the server logged them, and are skipped on the topic
        (None: every impression is folded from the topic).

    Notes
    -----
    Making a feed calls :func:`gc.freeze`: every object alive then moves to the
    collector's permanent generation, the feed's empty tables with it, so that no
    collection walks the state as it grows to millions of keys (docs/signals.md).
    """

    def __init__(self, cfg: Config | None, spec: SignalSpec, category_slot: str,
                 lateness_ms: int = ServingConfig.signals_lateness_ms,
                 max_items: int = 1_000_000,
                 rebuild_s: float = 0.0, positive_actions: Sequence[str] = ("click",),
                 like_action: str = "like", origin: bytes | None = None) -> None:
        super().__init__(name="signal-feed", daemon=True)
        self.cfg = cfg
        self.spec = spec
        self.category_slot = category_slot
        self.lateness_ms = lateness_ms
        self.max_items = max_items
        self.rebuild_s = rebuild_s
        self.positive_actions = frozenset(positive_actions)
        self.like_action = like_action
        self.own = None if origin is None else (ORIGIN_HEADER, origin)
        self.skipped_own = 0  # this server's impressions seen on the topic, not refolded
        self.state = SignalState(spec)
        # item -> the bytes of its int64 category IDs (a tuple would be tracked by the
        # garbage collector: a million of them piled up in generation 0)
        self.categories: OrderedDict[int, bytes] = OrderedDict()
        # The state's ordered tables are containers the garbage collector always
        # tracks, so every full collection would walk them key by key (0.37 s at 4M
        # keys, holding the GIL while requests wait). Frozen now, while they are empty,
        # no collection visits them again (0 ms); nothing put in them is tracked (ints,
        # bytearrays, bytes). gc.freeze moves every object alive now to the permanent
        # generation, as servers commonly do once started.
        gc.freeze()
        self.pending: list[tuple[int, int, Event]] = []  # (ts, arrival, event)
        self.newest_ms = 0
        self.folded = self.late = self.malformed = 0
        self._seq = itertools.count()
        self._lock = threading.Lock()  # the feed folds, requests read
        self._halt = threading.Event()

    @classmethod
    def offline(cls, spec: SignalSpec, category_slot: str,
                lateness_ms: int = ServingConfig.signals_lateness_ms) -> SignalFeed:
        """A feed that consumes nothing: events come through :meth:`add`."""
        return cls(None, spec, category_slot, lateness_ms)

    @classmethod
    def for_model(cls, cfg: Config, origin: bytes | None = None) -> SignalFeed | None:
        """The feed of the signals that are model slots (``stats.signals`` also in
        ``model.slots``); None when the model reads none."""
        slots = {s.name for s in cfg.model.slots}
        wanted = tuple(s for s in cfg.stats.signals if s in slots)
        if not wanted:
            return None
        st, sc = cfg.stats, cfg.serving
        return cls(cfg, dataclasses.replace(st.spec(), signals=wanted), st.category_slot,
                   sc.signals_lateness_ms, rebuild_s=sc.signals_rebuild_s,
                   positive_actions=st.positive_actions, like_action=st.like_action,
                   origin=origin)

    # -- folding ---------------------------------------------------------------------
    def add(self, event: Impression | Action) -> None:
        """Take one serving-log event; fold what the lateness allows."""
        with self._lock:  # requests read the categories too
            if isinstance(event, Impression):
                self._impression(event.ts, event.user_id, event.item_id,
                                 tuple(event.slots.get(self.category_slot, ())))
            else:
                self._push(Event(event.ts, event.user_id, event.item_id,
                                 self.item_categories(event.item_id), shown=0,
                                 positive=int(event.action in self.positive_actions),
                                 like=int(event.action == self.like_action)))
            self._fold_until(self.newest_ms - self.lateness_ms)

    def add_logged(self, impressions: Sequence[Mapping[str, Any]]) -> None:
        """Take impressions as this server logs them (the :class:`Impression` JSON
        objects, before encoding), as :meth:`add` would take them back from the topic.

        >>> feed = SignalFeed.offline(SignalSpec(signals=("item_n",)), "genre", 0)
        >>> feed.add_logged([{"ts": 1_000, "user_id": 7, "item_id": 3, "slots": {"genre": [2]}},
        ...                  {"ts": 1_000, "user_id": 7, "item_id": 4, "slots": {}}])
        >>> feed.folded, feed.item_categories(3)
        (2, (2,))
        """
        with self._lock:
            for imp in impressions:
                self._impression(imp["ts"], imp["user_id"], imp["item_id"],
                                 tuple(imp["slots"].get(self.category_slot, ())))
            self._fold_until(self.newest_ms - self.lateness_ms)

    def _impression(self, ts: int, user_id: int, item_id: int,
                    cats: tuple[int, ...]) -> None:
        self.categories[item_id] = array("q", cats).tobytes()
        self.categories.move_to_end(item_id)
        if len(self.categories) > self.max_items:
            self.categories.popitem(last=False)
        self._push(Event(ts, user_id, item_id, cats))

    def _push(self, e: Event) -> None:
        heapq.heappush(self.pending, (e.ts, next(self._seq), e))
        self.newest_ms = max(self.newest_ms, e.ts)

    def _fold_until(self, ts_ms: int) -> None:
        while self.pending and self.pending[0][0] <= ts_ms:
            _, _, e = heapq.heappop(self.pending)
            if e.ts < self.state.last_ts:  # later than the lateness: at the state's time
                self.late += 1
                e = Event(int(self.state.last_ts), e.user, e.item, e.categories, e.shown,
                          e.positive, e.like, e.value)
            self.state.fold(e)
            self.folded += 1

    # -- reading ---------------------------------------------------------------------
    def item_categories(self, item_id: int) -> tuple[int, ...]:
        """The categories of ``item_id``'s latest impression (``()`` if none is known)."""
        return tuple(array("q", self.categories.get(item_id, b"")))

    def signals_for(self, user_id: int, item_ids: Sequence[int],
                    item_slots: Sequence[Mapping[str, Sequence[int]]], now_ms: int
                    ) -> list[dict[str, list[int]]]:
        """Each candidate's signal slots for ``user_id``, read at ``now_ms``."""
        with self._lock:
            return self.state.signals_many(user_id, item_ids,
                                           self._categories(item_ids, item_slots), now_ms)

    def signals_csr(self, user_id: int, item_ids: Sequence[int],
                    item_slots: Sequence[Mapping[str, Sequence[int]]], now_ms: int
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """:meth:`signals_for` as each signal's CSR ``(ids, offsets)`` over the
        candidates (:meth:`ps.signals.SignalState.signals_csr`), what scoring looks up."""
        with self._lock:
            return self.state.signals_csr(user_id, item_ids,
                                          self._categories(item_ids, item_slots), now_ms)

    def _categories(self, item_ids: Sequence[int],
                    item_slots: Sequence[Mapping[str, Sequence[int]]]) -> list[tuple[int, ...]]:
        return [tuple(slots.get(self.category_slot, ())) or self.item_categories(item)
                for item, slots in zip(item_ids, item_slots, strict=True)]

    # -- the consumer ----------------------------------------------------------------
    def _start(self, c: Consumer, topics: list[str]) -> list[TopicPartition]:
        """Where to start reading: ``rebuild_s`` ago, or the oldest records kept."""
        tps = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics
               for p in partitions(self.cfg, t)]
        if self.rebuild_s <= 0:
            return tps
        since_ms = int((time.time() - self.rebuild_s) * 1000)
        found = c.offsets_for_times([TopicPartition(tp.topic, tp.partition, since_ms)
                                     for tp in tps], timeout=30)
        # -1: nothing that recent in the partition; read from its end.
        return [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0
                               else OFFSET_END) for tp in found]

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        assert self.cfg is not None, "an offline feed consumes nothing"
        topics = {self.cfg.topics.name("features"): Impression,
                  self.cfg.topics.name("actions"): Action}
        c = consumer(self.cfg, group="freshet-serve-signals", **{"fetch.wait.max.ms": 100})
        own = self.own
        try:
            c.assign(self._start(c, list(topics)))
            while not self._halt.is_set():
                for m in c.consume(500, timeout=0.2):
                    if m.error() is not None:
                        continue
                    if own is not None and (h := m.headers()) and own in h:
                        self.skipped_own += 1  # folded when it was logged
                        continue
                    try:
                        self.add(topics[m.topic()].from_json(m.value()))
                    except (SchemaError, KeyError):
                        self.malformed += 1
        except Exception:  # requests then read the state as it stands
            log.exception("signal feed stopped")
        finally:
            c.close()
