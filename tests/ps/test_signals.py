"""ps.signals' read path: a request's batch equals each impression read alone, and
the state is made of objects the garbage collector does not track.

``SignalState.signals_many`` reads a ranking request's candidates together (each key
once, each signal's buckets for all candidates at once); ``signals`` is the reference
read of one impression. On a random stream with every kind of signal, both half-lives,
numeric outcomes, unseen items and users, items with no, one and repeated categories,
the batch must give exactly the single reads.
"""

from __future__ import annotations

import gc
import random

from ps.signals import SIGNALS, Event, SignalSpec, SignalState


def random_state(seed: int, spec: SignalSpec, n: int = 3_000) -> SignalState:
    rng = random.Random(seed)
    state = SignalState(spec)
    for k in range(n):
        cats = tuple(rng.sample(range(12), rng.randrange(0, 4)))
        value = rng.random() if rng.random() < 0.3 else None
        state.fold(Event(1_000 * k + rng.randrange(900), rng.randrange(60), rng.randrange(300),
                         cats, shown=int(rng.random() < 0.8), positive=int(rng.random() < 0.3),
                         like=int(rng.random() < 0.1), value=value))
    return state


def test_a_batch_reads_what_each_impression_reads_alone() -> None:
    spec = SignalSpec(signals=tuple(SIGNALS), prior=3.0, half_life_s=600.0,
                      recent_half_life_s=30.0, history=5)
    state = random_state(1, spec)
    rng = random.Random(2)
    for _ in range(40):
        user = rng.randrange(70)  # some never seen
        items = rng.sample(range(330), 25)  # some never seen
        cats = [tuple(rng.choice(range(14)) for _ in range(rng.randrange(0, 4)))
                for _ in items]  # repeats, unseen categories, none
        now = 3_000_000 + rng.randrange(500_000)
        batch = state.signals_many(user, items, cats, now)
        assert batch == [state.signals(user, i, c, now) for i, c in zip(items, cats, strict=True)]
    assert state.signals_many(1, [], [], 3_000_000) == []


def test_nothing_the_state_keeps_is_ever_tracked_by_the_garbage_collector() -> None:
    # Tracked objects the state keeps pile up in generation 0 until a young collection
    # walks them all: a soak at millions of keys found ~650k tuple keys there at once,
    # and young collections of 0.4-2.8 s. Checked before any collection could untrack.
    gc.disable()
    try:
        state = random_state(3, SignalSpec(signals=tuple(SIGNALS)))
        kept = [x for t in state.counters.values() for kv in t.items() for x in kv]
        kept += [x for h in state.hist.values() for kv in h.items() for x in kv]
        kept += [x for kv in state.last_seen.items() for x in kv]
    finally:
        gc.enable()
    assert len(kept) > 1_000
    assert not any(gc.is_tracked(x) for x in kept)


def test_a_fold_after_a_full_collection_sends_no_table_back_to_the_young_generation() -> None:
    # A plain dict whose values are all untracked is untracked by a full collection;
    # one new tracked value (a tuple history) re-tracks it into generation 0, and the
    # next young collections traverse every entry: seconds at millions of users.
    state = random_state(4, SignalSpec(signals=tuple(SIGNALS)))
    gc.collect()
    gc.disable()  # no collection between the fold and the look
    try:
        state.fold(Event(10_000_000, user=999, item=5, categories=(1,), positive=1))
        young = {id(o) for o in gc.get_objects(generation=0)}
    finally:
        gc.enable()
    tables = [*state.counters.values(), *state.hist.values(), state.last_seen]
    assert len(state.hist) == 2 and state.history("pos", 999) == [5]
    assert not any(id(t) in young for t in tables)
