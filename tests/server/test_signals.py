"""Fresh signals at serving time: the serving log folded with ps.signals, read by ranking,
scored and logged with each impression."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import time
from pathlib import Path

import numpy as np
import orjson
from fastapi.testclient import TestClient

from freshet.config import Config, load_config
from freshet.kafka import producer
from freshet.topics import Action, Impression
from jobs.serve import Server
from ps.config import SlotConfig
from ps.signals import POS, N, SignalSpec, _at, point_in_time
from server.impressions import ImpressionLogger
from server.signals import SignalFeed
from tests.jobs.lr_server import lr_server
from tests.jobs.test_stats import SIGNALS, reference_events, synthetic


def test_read_before_each_second_it_equals_the_point_in_time_reference() -> None:
    """What the statistics job computes for a replay (its parity test holds it to the
    same reference) is what a server reading before it folds each second logs."""
    cfg = load_config(path=None, environ={})
    cfg = dataclasses.replace(cfg, stats=dataclasses.replace(
        cfg.stats, signals=list(SIGNALS), prior=1.0, recent_half_life_s=5.0, history=3))
    spec = cfg.stats.spec()
    stream = sorted(synthetic(), key=lambda e: e.ts)
    feed = SignalFeed.offline(spec, cfg.stats.category_slot, lateness_ms=0)
    served = []
    for second, evs in itertools.groupby(stream, key=lambda e: e.ts // 1000):
        evs = list(evs)
        imps = [e for e in evs if isinstance(e, Impression)]
        for imp in imps:  # a request of this second, before any of it is folded
            (s,) = feed.signals_for(imp.user_id, [imp.item_id], [imp.slots], second * 1000)
            served.append(s)
        for e in evs:
            feed.add(e)
    events = reference_events(stream, cfg)
    reference = [s for e, s in zip(events, point_in_time(events, spec), strict=True)
                 if e.shown]
    assert len(served) == len(reference) > 2000
    assert served == reference


def test_events_within_the_lateness_fold_in_time_order_later_ones_at_the_state_time() -> None:
    feed = SignalFeed.offline(SignalSpec(signals=("hist_shown",), history=5), "genre",
                              lateness_ms=1000)
    for item, ts in ((1, 5_000), (2, 4_500), (3, 6_200)):  # 2 is late, within 1 s
        feed.add(Impression(f"r{item}", item, 7, ts, {}))
    assert feed.folded == 2 and feed.late == 0  # 3 waits: newest (6.2 s) - 1 s
    feed.add(Impression("r4", 4, 7, 4_000, {}))  # behind what is folded: at its time
    assert feed.late == 1
    feed.add(Impression("r5", 5, 7, 9_000, {}))
    (s,) = feed.signals_for(7, [9], [{}], 9_000)
    assert s["hist_shown"] == [3, 4, 1, 2]  # most recent first, in folding order


def test_an_action_counts_with_its_item_s_categories_from_the_latest_impression() -> None:
    spec = SignalSpec(signals=("cat_n", "ucat_rate"), prior=1.0)
    feed = SignalFeed.offline(spec, "genre", lateness_ms=0)
    feed.add(Impression("r", 7, 1, 1_000, {"genre": [30, 31]}))
    feed.add(Action("r", 7, 1, 2_000, "click"))
    cats = feed.state.counters["cat"]
    assert set(cats) == {30, 31}
    assert all(_at(a, 0, 2_000, 1e12)[POS] == 1.0 for a in cats.values())  # one positive each


def signal_server(work_dir: Path) -> tuple[Server, TestClient]:
    # The item_n bucket b adds b to the logit: the more an item was shown, the higher.
    base = load_config(path=None, environ={})
    return lr_server(work_dir, SlotConfig("item_n", dim=2), np.arange(1, 17),
                     stats=dataclasses.replace(base.stats, signals=["item_n", "user_rate"]))


def test_ranking_scores_with_the_signals_and_logs_them_with_the_impression(
        tmp_path: Path) -> None:
    server, client = signal_server(tmp_path)
    assert server.signals is not None and server.signals.spec.signals == ("item_n",)
    server.signals.lateness_ms = 0
    for k in range(10):  # item 2 shown ten times, item 1 never
        server.signals.add(Impression(f"r{k}", 2, 100 + k, 1_000 + k, {}))
    r = client.post("/rank", json={"user_id": 5, "ts": 60_000,
                                   "candidates": [{"item_id": 1}, {"item_id": 2}]})
    assert r.status_code == 200, r.text
    assert [i["item_id"] for i in r.json()["items"]] == [2, 1]
    (logged,) = server.impressions.requests
    by_item = dict(logged.items)
    assert by_item[1]["item_n"] == [1] and by_item[2]["item_n"] == [4]  # log2(1 + 10) -> 4
    assert by_item[2]["item_id"] == [2]


def test_the_server_folds_its_own_impressions_once_and_other_servers_from_the_topic(
        cfg: Config, tmp_path: Path) -> None:
    """Its own impressions are folded as logged and skipped on the topic (their origin
    header); another server's are folded from the topic."""
    base = load_config(path=None, environ={})
    server, client = lr_server(tmp_path, SlotConfig("item_n", dim=2), np.arange(1, 17), cfg,
                               stats=dataclasses.replace(base.stats, signals=["item_n"]))
    feed, logger = server.signals, server.impressions
    assert feed is not None and isinstance(logger, ImpressionLogger)
    feed.lateness_ms = 0
    logger.start()
    feed.start()
    try:
        r = client.post("/rank", json={"user_id": 5, "ts": 60_000, "shown": 2,
                                       "candidates": [{"item_id": i} for i in (1, 2, 3)]})
        assert r.status_code == 200, r.text
        p = producer(cfg)  # another server's impression: no origin header of ours
        p.produce(cfg.topics.name("features"), orjson.dumps(
            {"v": 1, "request_id": "other", "item_id": 3, "user_id": 6, "ts": 61_000,
             "slots": {"item_id": [3]}}), b"other")
        p.flush(10)
        deadline = time.monotonic() + 60
        while (feed.skipped_own, feed.folded) != (2, 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # anything folded twice would show by now
        assert (feed.skipped_own, feed.folded) == (2, 3)
        shown = {i["item_id"] for i in r.json()["items"][:2]}
        items = feed.state.counters["item"]
        counts = {i: round(_at(items[i], 0, 62_000, 1e12)[N]) if i in items else 0
                  for i in (1, 2, 3)}
        assert counts == {i: (i in shown) + (i == 3) for i in (1, 2, 3)}
    finally:
        feed.stop()
        feed.join(10)
        logger.stop()


def test_a_model_without_signal_slots_has_no_feed(tmp_path: Path) -> None:
    base = load_config(path=None, environ={})
    cfg = dataclasses.replace(base, work_dir=str(tmp_path),
                              kafka=dataclasses.replace(base.kafka, bootstrap="127.0.0.1:1"))
    assert SignalFeed.for_model(cfg) is None


def test_the_feed_s_counts_are_served_metrics(tmp_path: Path) -> None:
    server, client = signal_server(tmp_path)
    server.signals.lateness_ms = 1000
    for ts in (5_000, 6_500, 3_000):  # 3_000 arrives 3.5 s behind the newest: late
        server.signals.add(Impression(f"r{ts}", 2, 7, ts, {}))
    text = client.get("/metrics").text
    assert 'freshet_serving_signal_events_total{outcome="folded"} 2.0' in text
    assert 'freshet_serving_signal_events_total{outcome="late"} 1.0' in text
    assert "freshet_serving_signal_pending 1.0" in text  # 6_500 waits


def test_no_collection_traverses_the_feeds_tables() -> None:
    """A full collection walked the state key by key (0.37 s at 4M keys): the feed
    freezes its tables while they are empty, so the collector never sees them, and
    nothing it keeps in them is tracked (kept tuples piled up in generation 0)."""
    feed = SignalFeed.offline(SignalSpec(signals=("item_n", "ucat_rate", "hist_pos")),
                              "genre", lateness_ms=0)
    gc.disable()  # what is kept must be untracked from the start, not after a collection
    try:
        for i in range(50):
            feed.add(Impression(f"r{i}", i % 7, i % 5, 1_000 * i, {"genre": [i % 3]}))
            feed.add(Action(f"r{i}", i % 7, i % 5, 1_000 * i + 1, "click"))
        kept = [x for kv in feed.categories.items() for x in kv]
        assert not any(gc.is_tracked(x) for x in kept)
    finally:
        gc.enable()
    gc.collect()
    collected = {id(o) for o in gc.get_objects()}  # generations 0-2, not the frozen
    state = feed.state
    tables = [*state.counters.values(), state.last_seen, feed.categories]
    assert len(state.counters["item"]) == 7 and len(kept) == 14
    assert not any(id(t) in collected for t in tables)
    assert feed.item_categories(3) == (0,) and feed.item_categories(99) == ()
