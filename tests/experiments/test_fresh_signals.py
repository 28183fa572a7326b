"""Fresh signals (issue 21): point in time, bounded, deterministic; the experiment runs."""

from __future__ import annotations

import doctest
import importlib
import json

import numpy as np
import pytest

from experiments import fresh_signals as fs
from ps.signals import HISTORY, SIGNALS, STATS, Event, SignalSpec, SignalState, point_in_time

MODULES = ["ps.signals", "experiments.fresh_signals", "experiments.streams"]
ALL = SignalSpec(signals=tuple(SIGNALS), prior=1.0, history=5)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def base_events() -> list[Event]:
    """A little history of users 1-3 on items 5-8 over seconds 1-9, ending with the
    impression under test: user 2 shown item 7 at 10.5 s."""
    evs = [Event(1_000 + 700 * k, 1 + k % 3, 5 + k % 4, (100 + k % 2,), positive=k % 2,
                 like=int(k % 4 == 1), value=(k % 5) / 4) for k in range(12)]
    return [*evs, Event(10_500, 2, 7, (100,))]


def signals_of_last(events: list[Event]) -> dict[str, list[int]]:
    """The signals of the impression under test (the event at 10.5 s, user 2, item 7)."""
    order = sorted(range(len(events)), key=lambda i: events[i].ts)
    ordered = [events[i] for i in order]
    out = point_in_time(ordered, ALL)
    target = next(k for k, e in enumerate(ordered) if (e.ts, e.user, e.item) == (10_500, 2, 7))
    return out[target]


# An action on the impression's item, by its user, in its category: it touches every
# statistic and history the impression reads.
PLANTED = dict(user=2, item=7, categories=(100,), shown=1, positive=1, like=1, value=1.0)


@pytest.mark.parametrize("ts", [10_500, 10_501, 10_999, 11_000, 20_000])
def test_an_action_after_the_impression_reaches_none_of_its_signals(ts: int) -> None:
    clean = signals_of_last(base_events())
    planted = signals_of_last([*base_events(), Event(ts, **PLANTED)])
    assert planted == clean


@pytest.mark.parametrize("ts", [10_000, 10_499])
def test_an_action_earlier_in_the_same_second_does_not_reach_it_either(ts: int) -> None:
    # Point in time is by whole seconds: a server scores a second before folding it in.
    assert signals_of_last([*base_events(), Event(ts, **PLANTED)]) == \
        signals_of_last(base_events())


@pytest.mark.parametrize("ts", [9_999, 9_000, 1_000])
def test_an_action_of_an_earlier_second_reaches_its_signals(ts: int) -> None:
    clean = signals_of_last(base_events())
    planted = signals_of_last([*base_events(), Event(ts, **PLANTED)])
    changed = {k for k in SIGNALS if planted[k] != clean[k]}
    assert 7 in planted["hist_pos"] and 7 in planted["hist_shown"]
    # counts, rates and histories of the item, the user and the category all moved
    for name in ("item_n", "item_rate", "item_like", "user_rate", "cat_rate",
                 "ucat_rate", "hist_pos"):
        assert name in changed, (name, planted[name], clean[name])


def test_signals_are_deterministic_and_in_input_order() -> None:
    evs = base_events()
    a, b = point_in_time(evs, ALL), point_in_time(evs, ALL)
    assert a == b and len(a) == len(evs)
    assert list(a[0]) == list(SIGNALS)


def test_events_out_of_time_order_are_refused() -> None:
    with pytest.raises(ValueError, match="time order"):
        point_in_time([Event(5_000, 1, 1), Event(4_000, 1, 1)], ALL)


def test_state_is_bounded_by_ttl_and_history_length() -> None:
    spec = SignalSpec(signals=STATS + HISTORY, history=3, ttl_s=100.0)
    state = SignalState(spec)
    for k in range(2_000):  # a new user and item every second, each seen once
        state.fold(Event(k * 1_000, user=k, item=10_000 + k, categories=(k % 7,), positive=1))
    # keys older than the ttl are gone (checked every ttl / 8): at most ~112 s of them
    assert len(state.counters["user"]) <= 113 and len(state.hist["pos"]) <= 113
    for k in range(10):
        state.fold(Event(2_000_000 + k, user=1, item=k, positive=1))
    assert state.history("pos", 1) == [9, 8, 7]


def test_buckets_of_unseen_keys_are_their_prior() -> None:
    state = SignalState(SignalSpec(signals=("item_n", "item_rate", "hist_pos")))
    assert state.signals(1, 2, (), 0) == {"item_n": [1], "item_rate": [11], "hist_pos": []}


def test_per_second_lr_scores_a_second_before_learning_it() -> None:
    from freshet.topics import Example

    exs = [Example(str(k), 1, 1, 1_000 * (k // 2), 1, slots={"user_id": [1]})
           for k in range(4)]
    logits = fs.PerSecondLR().run(exs, ["user_id"])
    assert logits[0] == logits[1] == 0.0  # second 0: nothing learnt yet
    assert logits[2] == logits[3] > 0.0  # second 1: both learnt second 0, not each other
    again = fs.PerSecondLR().run(exs, ["user_id"])
    assert np.array_equal(logits, again)


def test_a_tiny_run_on_the_drift_stream(tmp_path, capsys) -> None:  # noqa: ANN001
    settings = fs.Settings(kind="lr", micro32=False,
                           spec=SignalSpec(signals=STATS + HISTORY, history=5))
    result = fs.run(seeds=1, settings=settings, drift_impressions=600, datasets=["drift"],
                    out=str(tmp_path))
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == json.loads(json.dumps(result))
    for k in ("today", "stats", "history", "both", "popularity", "lr_per_second",
              "lr_per_second_signals", "online_today"):
        assert 0.0 <= result[f"drift_auc_{k}"] <= 1.0
        assert len(result["drift_quarters"][k]) == 4
    assert set(result["drift_best_served"]) == {"variant", "auc", "meets_bar",
                                                "above_popularity_every_quarter"}
    assert (tmp_path / "result.json").is_file()
