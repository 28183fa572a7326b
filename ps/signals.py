"""Fresh serving-time signals, point in time: statistics and raw recent history.

What a ranking server can know about an impression when it scores it, turned into ID
slots a model reads like any other (each slot its own embedding table):

- **statistics** per item, per category (MovieLens: genre) and per user, and per
  (user, category): exponentially decayed counts of impressions, positives and likes,
  and a numeric outcome's decayed sum and sum of squares (MovieLens: the rating; a
  video: its completion rate). From them a smoothed positive rate and like rate (each
  a Beta prior of ``prior`` pseudo-impressions at the global rate; for (user,
  category) at the user's own rate) and the outcome's mean and standard deviation;
- **raw recent history** per user: the last ``history`` items with a positive action,
  and the last ``history`` items shown, most recent first.

**Point in time.** The signals of an impression at time ``t`` (ms) reflect exactly
the events of whole seconds strictly before ``t``'s: every event ``e`` with
``e.ts // 1000 < t // 1000``, and nothing of ``t``'s own second, not even an event of
that second at a smaller ``ts``, nor the impression itself. Decayed counts are taken
at the start of ``t``'s second, ``1000 * (t // 1000)``. So every impression of one
second gets the signals of one state, whatever their order inside the second: what a
server that scores a second's requests before it has folded in anything of that
second knows ("scoring strictly before anything of its own second is known"). A live
server that folds events in as they arrive knows at least this much; the parity
test of issue 21 compares with this definition within the stated staleness.

**Model inputs.** Statistics become bucket IDs (IDs start at 1):

- counts ``c`` (decayed impressions): ``1 + min(floor(log2(1 + c)), COUNT_BUCKETS - 1)``,
  so 0 -> 1, [1, 3) -> 2, [3, 7) -> 3, ... [32767, inf) -> 16;
- rates ``r`` in [0, 1]: ``1 + min(floor(r * RATE_BUCKETS), RATE_BUCKETS - 1)``, fixed
  edges every 0.05 (fixed, not quantiles of the stream: quantiles would need the
  future, or a second pass);
- the outcome's mean (values scaled to [0, 1]) as a rate; its standard deviation:
  ``1 + min(floor(std / 0.05), 9)``;
- a slot with no events yet (an unseen key) gets the bucket of its prior, so a new
  item reads "no impressions, global rate".

A per-category slot is multi-hot: one bucket ID per category of the item. The
history slots are multi-hot too; their IDs are item IDs, in a table of their own
(``hist_pos``, ``hist_shown``), not shared with ``item_id``'s.

**Bounded state.** Counts decay (``half_life_s``; a second, shorter half-life
``recent_half_life_s`` for the ``*_recent`` signals), keys not updated for ``ttl_s``
of event time are dropped as events pass them (each table is kept in the order its
keys were last touched, so a fold drops just the keys that expired), histories keep
``history`` items.

Examples
--------
A positive action of user 1 on item 7 at 10.2 s reaches an impression at 11.0 s (a
later second), but not one at 10.9 s (the same second), nor one at 9.5 s (before):

>>> spec = SignalSpec(signals=("item_n", "user_rate", "hist_pos"), prior=1.0)
>>> events = [Event(9_500, 1, 5), Event(10_200, 1, 7, positive=1),
...           Event(10_900, 2, 7), Event(11_000, 2, 7)]
>>> for e, s in zip(events, point_in_time(events, spec)):
...     print(e.ts, e.user, s)
9500 1 {'item_n': [1], 'user_rate': [11], 'hist_pos': []}
10200 1 {'item_n': [1], 'user_rate': [4], 'hist_pos': []}
10900 2 {'item_n': [1], 'user_rate': [7], 'hist_pos': []}
11000 2 {'item_n': [2], 'user_rate': [5], 'hist_pos': []}
>>> point_in_time(events + [Event(12_000, 1, 9)], spec)[-1]["hist_pos"]
[7]
"""

from __future__ import annotations

import math
import struct
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

COUNT_BUCKETS = 16
RATE_BUCKETS = 20
STD_STEP = 0.05
STD_BUCKETS = 10

# Each signal: (entity, what); entity "item", "user", "cat" (each category of the
# item), "ucat" (the user on each category of the item), "hist".
SIGNALS: dict[str, tuple[str, str]] = {
    **{f"{e}_{w}{r}": (e, f"{w}{r}") for e in ("item", "user", "cat", "ucat")
       for w in ("n", "rate", "like", "vmean", "vstd") for r in ("", "_recent")},
    "hist_pos": ("hist", "pos"),
    "hist_shown": ("hist", "shown"),
}
STATS = tuple(s for s in SIGNALS if not s.startswith("hist_"))
HISTORY = ("hist_pos", "hist_shown")


@dataclass(frozen=True)
class Event:
    """One event of the stream the signals are computed from.

    ``shown`` counts an impression, ``positive`` and ``like`` count actions on it
    (MovieLens: a rating is an impression with its actions at the same time; a stream
    whose clicks arrive later sends them as events with ``shown=0``). ``value`` is a
    numeric outcome in [0, 1] (or ``None``) for the mean and variance statistics.
    """

    ts: int  # ms
    user: int
    item: int
    categories: tuple[int, ...] = ()
    shown: int = 1
    positive: int = 0
    like: int = 0
    value: float | None = None


@dataclass(frozen=True)
class SignalSpec:
    """Which signals to compute and how (see the module docstring for the buckets).

    Parameters
    ----------
    signals : sequence of str
        Names from :data:`SIGNALS`; each becomes one slot of that name.
    half_life_s, recent_half_life_s : float
        Decay of the counts, and of the ``*_recent`` signals' counts.
    prior : float
        Pseudo-impressions at the prior rate that smooth every rate.
    history : int
        Items kept per user in ``hist_pos`` and ``hist_shown``.
    ttl_s : float
        A key not updated for this long (event time) is dropped.
    """

    signals: Sequence[str] = ("item_n", "item_rate", "user_n", "user_rate", "cat_rate")
    half_life_s: float = 30 * 86_400.0
    recent_half_life_s: float = 3_600.0
    prior: float = 10.0
    history: int = 20
    ttl_s: float = 90 * 86_400.0

    def __post_init__(self) -> None:
        unknown = [s for s in self.signals if s not in SIGNALS]
        if unknown:
            raise ValueError(f"unknown signals {unknown}; known: {sorted(SIGNALS)}")
        if self.half_life_s <= 0 or self.recent_half_life_s <= 0 or self.ttl_s <= 0:
            raise ValueError("half-lives and ttl_s must be positive")
        if self.prior <= 0 or self.history < 1:
            raise ValueError("prior must be positive and history at least 1")


def count_buckets(c: np.ndarray) -> np.ndarray:
    """Bucket IDs of decayed counts: log2 buckets, ``1 + floor(log2(1 + c))`` capped.

    ``floor(log2)`` is the float's exponent (``frexp``), exact at every edge: the
    statistics job's Java twin takes ``Math.getExponent``, the same number.

    Examples
    --------
    >>> count_buckets(np.array([0, 0.9, 1, 2.9, 3, 100, 1e9])).tolist()
    [1, 1, 2, 2, 3, 7, 16]
    """
    _, exp = np.frexp(1.0 + np.maximum(c, 0.0))
    return 1 + np.minimum(exp - 1, COUNT_BUCKETS - 1)


def rate_buckets(r: np.ndarray) -> np.ndarray:
    """Bucket IDs of rates in [0, 1]: fixed edges every ``1 / RATE_BUCKETS``.

    Examples
    --------
    >>> rate_buckets(np.array([0.0, 0.049, 0.05, 0.554, 1.0])).tolist()
    [1, 1, 2, 12, 20]
    """
    return 1 + np.clip(np.trunc(r * RATE_BUCKETS), 0, RATE_BUCKETS - 1).astype(np.int64)


def std_buckets(s: np.ndarray) -> np.ndarray:
    """Bucket IDs of standard deviations of values in [0, 1]: every 0.05, capped.

    Examples
    --------
    >>> std_buckets(np.array([0.0, 0.07, 0.32, 0.9])).tolist()
    [1, 2, 7, 10]
    """
    return 1 + np.minimum(np.trunc(np.maximum(s, 0.0) / STD_STEP),
                          STD_BUCKETS - 1).astype(np.int64)


# A counter's fields: decayed impressions, positives, likes, values seen, their sum and
# sum of squares.
N, POS, LIKE, VN, VSUM, VSQ = range(6)


# A key's counters are one bytearray of doubles, one block per half-life: the ms of
# its last fold, then the six sums. A bytearray holds no object references, so the
# garbage collector never tracks it: a state of millions of keys made of lists (or
# arrays, which are tracked) cost a serving request more in collections than in
# arithmetic.
_BLOCK = struct.Struct("7d")


def _decay(ts: int, last: float, half_life_ms: float) -> float:
    """The factor that takes sums of time ``last`` to ``ts`` (1 for an earlier ``ts``)."""
    return 2.0 ** (-(ts - last) / half_life_ms) if ts > last else 1.0


def _at(a: bytearray, off: int, ts: int, half_life_ms: float) -> list[float]:
    """The sums of the block at ``off``, decayed to ``ts``."""
    last, *sums = _BLOCK.unpack_from(a, off)
    f = _decay(ts, last, half_life_ms)
    return [v * f for v in sums]


_ZERO_BLOCK = bytes(_BLOCK.size)


def _at_many(blocks: Sequence[bytes], ts: int, half_life_ms: float) -> np.ndarray:
    """The sums of many blocks (k x 6), each decayed to ``ts`` as :func:`_at` does."""
    a = np.frombuffer(b"".join(blocks), dtype=np.float64).reshape(len(blocks), 7)
    f = [_decay(ts, last, half_life_ms) for last in a[:, 0].tolist()]  # Python's pow
    return a[:, 1:] * np.asarray(f)[:, None]


def _add(a: bytearray, off: int, e: Event, half_life_ms: float) -> None:
    """Fold ``e`` into the block at ``off``: decay to its time, then count it."""
    last, *s = _BLOCK.unpack_from(a, off)
    if e.ts > last:  # the same products as _at
        f = _decay(e.ts, last, half_life_ms)
        s = [v * f for v in s]
        last = e.ts
    s[N] += e.shown
    s[POS] += e.positive
    s[LIKE] += e.like
    if e.value is not None:
        s[VN] += 1.0
        s[VSUM] += e.value
        s[VSQ] += e.value * e.value
    _BLOCK.pack_into(a, off, last, *s)


class SignalState:
    """The bounded state the signals are read from; fold events in time order.

    Only what ``spec.signals`` reads is kept: the counters of their entities (and the
    global one, every rate's prior) and their kinds of history.

    :meth:`signals` reads the state as it is: to read it point in time, fold a
    second's events only after reading that second's signals (:func:`point_in_time`).
    """

    def __init__(self, spec: SignalSpec) -> None:
        self.spec = spec
        self.half_lives_ms = {"": spec.half_life_s * 1000.0,
                              "_recent": spec.recent_half_life_s * 1000.0}
        stats = [SIGNALS[s] for s in spec.signals if not s.startswith("hist_")]
        wanted = {what.endswith("_recent") for _, what in stats}
        self.tags = [t for t in self.half_lives_ms if (t == "_recent") in wanted]
        entities = {"global"} | {e for e, _ in stats}
        if "ucat" in entities:  # its prior is the user's rate
            entities.add("user")
        self.offsets = {tag: _BLOCK.size * i for i, tag in enumerate(self.tags)}
        # Each table in the order its keys were last folded, which is time order: the
        # expired keys are always at the front (evict never scans the table).
        # Keys are ints (_pair for a (user, category)), never tuples: the state must
        # hold no object the garbage collector tracks. Tuple keys were: soaks at
        # millions of keys found ~650k of them in generation 0 at once and young
        # collections of 0.4-2.8 s.
        self.counters: dict[str, OrderedDict[int, bytearray]] = {
            e: OrderedDict() for e in ("global", "item", "user", "cat", "ucat")
            if e in entities}
        # A history is the bytes of its int64 item IDs, not a tuple: a plain dict
        # whose values are all untracked is itself untracked by a full collection, and
        # one tracked value put in it again (every new tuple is tracked) sends the whole
        # dict back to generation 0, where the next young collections traverse its
        # millions of entries (seconds of a request's lock at millions of users).
        self.hist: dict[str, dict[int, bytes]] = {
            w: {} for w in ("pos", "shown") if f"hist_{w}" in spec.signals}
        self.last_seen: OrderedDict[int, int] = OrderedDict()  # user -> ms of the last event
        self.last_ts = -math.inf  # ms of the latest event folded

    def __len__(self) -> int:
        """Keys held (counters of every entity, and users with a history)."""
        return sum(len(d) for d in self.counters.values()) + len(self.last_seen)

    def fold(self, e: Event) -> None:
        """Count one event in every counter it touches and in its user's histories."""
        if e.ts < self.last_ts:
            raise ValueError(f"events out of time order: {e.ts} after {self.last_ts}")
        self.last_ts = e.ts
        self.evict(e.ts)
        keys = {"global": [0], "item": [e.item], "user": [e.user],
                "cat": list(e.categories),
                "ucat": [_pair(e.user, c) for c in e.categories]}
        for entity, table in self.counters.items():
            for key in keys[entity]:
                a = table.get(key)
                if a is None:
                    a = table[key] = bytearray(_BLOCK.size * len(self.tags))
                else:
                    table.move_to_end(key)
                for tag, off in self.offsets.items():
                    _add(a, off, e, self.half_lives_ms[tag])
        n = self.spec.history
        for what, flag in (("pos", e.positive), ("shown", e.shown)):
            if flag and what in self.hist:
                h = self.hist[what]
                h[e.user] = _push(h.get(e.user, b""), e.item, n)
        if self.hist:
            self.last_seen[e.user] = e.ts  # events come in time order
            self.last_seen.move_to_end(e.user)

    def evict(self, now_ms: int) -> None:
        """Drop keys not updated for more than ``ttl_s`` of event time before ``now_ms``.

        Tables are in last-folded order, so this pops expired keys off their fronts:
        the work is the keys dropped, never the keys held (a scan of millions of keys
        held the lock requests read with for seconds).
        """
        cutoff = now_ms - self.spec.ttl_s * 1000.0
        for entity, table in self.counters.items():
            if entity == "global":
                continue
            while table:
                key, a = next(iter(table.items()))
                if _BLOCK.unpack_from(a, 0)[0] >= cutoff:  # every block folds together
                    break
                del table[key]
        while self.last_seen:
            user, ts = next(iter(self.last_seen.items()))
            if ts >= cutoff:
                break
            del self.last_seen[user]
            for h in self.hist.values():
                h.pop(user, None)

    def history(self, what: str, user: int) -> list[int]:
        """User ``user``'s items of history ``what`` (``"pos"``, ``"shown"``), most
        recent first."""
        return array("q", self.hist[what].get(user, b"")).tolist()

    def signals(self, user: int, item: int, categories: Sequence[int], now_ms: int
                ) -> dict[str, list[int]]:
        """Each signal's slot IDs for an impression scored at ``now_ms``, from the
        state as it is (decayed to ``now_ms``): :meth:`signals_many` for one item."""
        return self.signals_many(user, [item], [categories], now_ms)[0]

    def signals_many(self, user: int, items: Sequence[int],
                     categories: Sequence[Sequence[int]], now_ms: int
                     ) -> list[dict[str, list[int]]]:
        """The signals of one user's impressions of ``items`` (each with its
        ``categories``) at ``now_ms``, as :meth:`signals` reads each: :meth:`signals_csr`
        as one dict per impression."""
        csr = {name: (ids.tolist(), offsets.tolist())
               for name, (ids, offsets) in self.signals_csr(user, items, categories,
                                                            now_ms).items()}
        return [{name: ids[offsets[k]:offsets[k + 1]] for name, (ids, offsets) in csr.items()}
                for k in range(len(items))]

    def signals_csr(self, user: int, items: Sequence[int],
                    categories: Sequence[Sequence[int]], now_ms: int
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each signal's slot IDs for one user's impressions of ``items`` at ``now_ms``,
        as CSR ``(ids, offsets)`` (impression ``k`` owns ``ids[offsets[k]:offsets[k +
        1]]``, int64), the form a ranking's lookups take (``ps.serving.scoring``).

        A ranking request's candidates share their user, the global key and often
        categories: each key is read once, and each signal's buckets are computed for
        all candidates (or distinct categories) at once.

        Examples
        --------
        >>> state = SignalState(SignalSpec(signals=("item_n", "cat_rate"), prior=1.0))
        >>> state.fold(Event(1_000, 1, 7, (3,)))
        >>> {k: (i.tolist(), o.tolist())
        ...  for k, (i, o) in state.signals_csr(1, [7, 8], [(3,), ()], 1_000).items()}
        {'item_n': ([2, 1], [0, 1, 2]), 'cat_rate': ([4], [0, 1, 1])}
        """
        prior = self.spec.prior
        n = len(items)
        read: dict[tuple, list[float] | np.ndarray] = {}  # signals of one tag share reads

        def one(entity: str, key: int, tag: str) -> list[float]:
            if (entity, key, tag) not in read:
                a = self.counters[entity].get(key)
                read[entity, key, tag] = (
                    _at(a, self.offsets[tag], now_ms, self.half_lives_ms[tag])
                    if a is not None else [0.0] * 6)
            return read[entity, key, tag]

        def many(entity: str, keys: Sequence[int], tag: str) -> np.ndarray:
            if (entity, tag) not in read:  # one list of keys per entity in a request
                table, off = self.counters[entity], self.offsets[tag]
                end = off + _BLOCK.size
                blocks = [_ZERO_BLOCK if (a := table.get(key)) is None else a[off:end]
                          for key in keys]
                read[entity, tag] = _at_many(blocks, now_ms, self.half_lives_ms[tag])
            return read[entity, tag]

        def shared(ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
            # the same IDs for every impression (a user's statistic or history)
            return (np.tile(np.asarray(ids, np.int64), n),
                    np.arange(n + 1, dtype=np.int64) * len(ids))

        one_each = np.arange(n + 1, dtype=np.int64)
        cat_index: np.ndarray | None = None  # each impression's categories, into distinct
        distinct = list(dict.fromkeys(c for cats in categories for c in cats))
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in self.spec.signals:
            entity, what = SIGNALS[name]
            if entity == "hist":
                out[name] = shared(self.history(what, user))
                continue
            stat, _, rest = what.partition("_")
            tag = "_" + rest if rest else ""
            g = one("global", 0, tag)
            if entity == "user":
                out[name] = shared([_bucket(stat, one("user", user, tag), None, g, prior)])
            elif entity == "item":
                out[name] = (_buckets(stat, many("item", items, tag), None, g, prior)
                             .astype(np.int64), one_each)
            else:
                keys = (distinct if entity == "cat"
                        else [_pair(user, c) for c in distinct])
                p = one("user", user, tag) if entity == "ucat" else None
                got = _buckets(stat, many(entity, keys, tag), p, g, prior).astype(np.int64)
                if cat_index is None:
                    position = {c: i for i, c in enumerate(distinct)}
                    cat_index = np.fromiter((position[c] for cats in categories for c in cats),
                                            np.int64)
                    cat_offsets = np.zeros(n + 1, np.int64)
                    np.cumsum(np.fromiter(map(len, categories), np.int64, n),
                              out=cat_offsets[1:])
                out[name] = (got[cat_index], cat_offsets)
        return out


def _pair(user: int, category: int) -> int:
    """The (user, category) counter's key: one int for two int64s (an int is never
    tracked by the garbage collector; a tuple is until its first collection).

    >>> _pair(1, 2) != _pair(2, 1) and _pair(-1, 0) != _pair(0, -1)
    True
    """
    return (user << 64) | (category & 0xFFFF_FFFF_FFFF_FFFF)


def _push(h: bytes, item: int, n: int) -> bytes:
    """History ``h`` (int64 IDs, most recent first) with ``item`` in front, at most
    ``n`` long; an item already there moves to the front."""
    a = array("q", (item,))
    a.extend(x for x in array("q", h) if x != item)
    return a[:n].tobytes()


def _buckets(stat: str, s: np.ndarray, p: Sequence[float] | None, g: Sequence[float],
             prior: float) -> np.ndarray:
    """Bucket IDs of statistic ``stat`` of each row of sums ``s`` (k x 6); ``p``: the
    prior's sums (None: the global's; the user's for (user, category)), ``g``: the
    global's. One expression per statistic, each in the order the Java twin
    (``SignalBucket``) evaluates it: IEEE arithmetic then gives both the same bits."""
    if stat == "n":
        return count_buckets(s[:, N])
    if stat in ("rate", "like"):
        col = POS if stat == "rate" else LIKE
        gr = (g[col] + 1.0) / (g[N] + 2.0)
        pr = gr if p is None else (p[col] + prior * gr) / (p[N] + prior)
        return rate_buckets((s[:, col] + prior * pr) / (s[:, N] + prior))
    gm = (g[VSUM] + 0.5) / (g[VN] + 1.0)
    mean = (s[:, VSUM] + prior * gm) / (s[:, VN] + prior)
    if stat == "vmean":
        return rate_buckets(mean)
    gv = max((g[VSQ] + 0.25) / (g[VN] + 1.0) - gm * gm, 0.0)  # the global variance
    var = (s[:, VSQ] + prior * (gv + gm * gm)) / (s[:, VN] + prior) - mean * mean
    return std_buckets(np.sqrt(np.maximum(var, 0.0)))


def _bucket(stat: str, s: Sequence[float], p: Sequence[float] | None, g: Sequence[float],
            prior: float) -> int:
    """:func:`_buckets` of one row of sums."""
    return int(_buckets(stat, np.asarray([s], dtype=np.float64), p, g, prior)[0])


def point_in_time(events: Iterable[Event], spec: SignalSpec) -> list[dict[str, list[int]]]:
    """Each event's signals, point in time (module docstring): in time order, one
    second at a time, a second's signals are read before any of its events is folded.

    Events must be in non-decreasing ``ts``; the result is in their order.
    """
    state = SignalState(spec)
    out: list[dict[str, list[int]]] = []
    second: list[Event] = []
    for e in events:
        if second and e.ts // 1000 != second[0].ts // 1000:
            _flush(state, second, out)
            second = []
        second.append(e)
    if second:
        _flush(state, second, out)
    return out


def _flush(state: SignalState, second: list[Event], out: list[dict[str, list[int]]]) -> None:
    start = 1000 * (second[0].ts // 1000)
    out += [state.signals(e.user, e.item, e.categories, start) for e in second]
    for e in second:
        state.fold(e)
