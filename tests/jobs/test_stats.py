"""The statistics job (jobs/stats.py) against ps.signals' reference, on the mini-cluster.

One bounded run over two streams on one set of topics (each test reads its part):

- a hand-made one where actions are planted before, in the same second as, and after
  impressions (point in time: an impression's signals reflect exactly the events of
  earlier seconds);
- a few thousand events of the synthetic stream (freshet/produce/synthetic.py):
  every enriched impression's signal slots equal ``ps.signals.point_in_time`` on the
  same events.

The bucket twins (Java's SignalBucket and ps.signals' ``_bucket``) are compared on
many values apart, through the JVM alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
from collections.abc import Iterator

import numpy as np
import pytest

from freshet import kafka
from freshet.app import cli
from freshet.app.demo import config_env
from freshet.config import Config
from freshet.produce.synthetic import SyntheticSpec, events
from freshet.topics import Action, Impression
from ps import signals
from ps.signals import Event, point_in_time

T = 1_700_000_000_000  # the hand-made stream's origin, ms (a whole second)
SYN_START = T + 100_000  # the synthetic stream's
# Every kind of signal: counts, rates, likes, both half-lives, the (user, category)
# prior, values (none in Freshet's events: their prior), histories.
SIGNALS = ("item_n", "item_rate", "item_like", "item_rate_recent", "user_n", "user_rate",
           "cat_n", "cat_rate", "ucat_rate", "ucat_n_recent", "item_vmean", "user_vstd",
           "hist_pos", "hist_shown")
USER, ITEM, GENRE = 10_000, 20_000, 900  # the hand-made stream's user, item and genre IDs


def planted() -> list[Impression | Action]:
    """Impressions of item ITEM (genre GENRE) and actions on it around second T + 10 s."""
    s = T + 10_000

    def imp(rid: str, user: int, ts: int, item: int = ITEM) -> Impression:
        return Impression(rid, item, user, ts, {"user_id": [user], "item_id": [item],
                                                "genre": [GENRE, GENRE + 1]})

    # Earlier impressions of another item, never clicked: a low global rate.
    return [imp(f"z{k}", USER + 5 + k, s - 1_000 + k, item=ITEM + 5) for k in range(4)] + [
        imp("a", USER + 1, s + 200),  # A
        Action("a", ITEM, USER + 1, s + 700, "click"),  # after A, A's second
        imp("b", USER + 2, s + 900),  # B: after that click, same second
        imp("c", USER + 3, s + 1_000),  # C: the next second
        imp("d", USER + 1, s + 1_500, item=ITEM + 1),  # D: A's user, the next second
        Action("a", ITEM, USER + 1, s + 2_300, "like"),  # a later second than A, B, C, D
        imp("e", USER + 4, s + 3_000),  # E: after the like's second
    ]


def synthetic() -> list[Impression | Action]:
    return list(events(SyntheticSpec(impressions=2_500, event_rate=100.0, start_ms=SYN_START,
                                     p_new_user=0.05, p_new_item=0.05, seed=3)))


def reference_events(stream: list[Impression | Action], cfg: Config) -> list[Event]:
    """The stream as ps.signals events: an action counts for its own item and user at
    its own time, with the item's categories (from its impression)."""
    cats: dict[int, tuple[int, ...]] = {}
    out = []
    for e in sorted(stream, key=lambda e: e.ts):
        if isinstance(e, Impression):
            cats[e.item_id] = tuple(e.slots.get(cfg.stats.category_slot, []))
            out.append(Event(e.ts, e.user_id, e.item_id, cats[e.item_id]))
        else:
            out.append(Event(e.ts, e.user_id, e.item_id, cats.get(e.item_id, ()), shown=0,
                             positive=int(e.action in cfg.stats.positive_actions),
                             like=int(e.action == cfg.stats.like_action)))
    return out


def produce(cfg: Config, stream: list[Impression | Action]) -> None:
    p = kafka.producer(cfg)
    for e in stream:
        p.produce(cfg.topics.name(e.topic), e.to_json(), key=e.key(), timestamp=e.ts)
    assert p.flush(30) == 0


def stats_config(cfg: Config) -> Config:
    return dataclasses.replace(cfg, stats=dataclasses.replace(
        cfg.stats, signals=list(SIGNALS), prior=1.0, recent_half_life_s=5.0, history=3))


@pytest.fixture(scope="module")
def job(broker: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One bounded run of the job over both streams; what it wrote, and the reference."""
    from freshet.kafka import create_topics
    from tests.conftest import make_config

    cfg = stats_config(make_config(broker.bootstrap, tmp_path_factory.mktemp("stats")))
    create_topics(cfg)
    stream = planted() + synthetic()
    produce(cfg, stream)
    # Through the launcher, `freshet stats --bounded`, as a deployment would run it.
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(io.StringIO()) as out:
        for k, v in config_env(cfg).items():
            env.setenv(k, v)
        assert cli.main(["--config", "/nonexistent.toml", "stats", "--bounded"]) == 0
    enriched = {}
    for m in kafka.read(cfg, cfg.topics.name("features_signals"), idle_s=1.0):
        imp = Impression.from_json(m.value())  # the joiner's reader accepts it
        assert (imp.request_id, imp.item_id) not in enriched, "an impression twice"
        assert m.timestamp()[1] == imp.ts
        enriched[imp.request_id, imp.item_id] = imp
    changelog = {}
    for m in kafka.read(cfg, cfg.topics.name("signals"), idle_s=1.0):
        changelog[m.key().decode()] = json.loads(m.value())  # the latest per key wins
    evs = reference_events(stream, cfg)
    expected = {}
    for e, s in zip(sorted(stream, key=lambda e: e.ts), point_in_time(evs, cfg.stats.spec()),
                    strict=True):
        if isinstance(e, Impression):
            expected[e.request_id, e.item_id] = s
    yield {"cfg": cfg, "enriched": enriched, "changelog": changelog, "expected": expected,
           "stream": stream, "printed": out.getvalue()}


def _signal_slots(imp: Impression) -> dict[str, list[int]]:
    return {k: v for k, v in imp.slots.items() if k in signals.SIGNALS}


def test_point_in_time_on_planted_actions(job: dict) -> None:
    got = {rid: _signal_slots(job["enriched"][rid, item])
           for rid, item in [("a", ITEM), ("b", ITEM), ("c", ITEM), ("d", ITEM + 1), ("e", ITEM)]}
    a, b, c, d, e = (got[k] for k in "abcde")
    # Nothing of their own second: A and B see item ITEM as unseen (B not even the click
    # 200 ms before it), so they read exactly like a new item.
    assert a["item_n"] == b["item_n"] == [1] and a["item_rate"] == b["item_rate"]
    assert a["cat_n"] == b["cat_n"] == [3, 3]  # the four earlier impressions
    # C, the next second, sees A, B and the click: more impressions, a higher rate.
    assert c["item_n"] == [2] and c["item_rate"] > b["item_rate"]
    assert c["cat_rate"] > b["cat_rate"]
    # A's user's click (A's second) reaches D's history and rates; A's own do not.
    assert a["hist_pos"] == [] and a["hist_shown"] == []
    assert d["hist_pos"] == [ITEM] and d["hist_shown"] == [ITEM]
    assert d["user_rate"] > a["user_rate"] and d["ucat_rate"] > a["ucat_rate"]
    # The like (a later second than A..D) reaches E only.
    assert e["item_like"] > c["item_like"]
    # And each one exactly as the reference computes it.
    for rid, item in [("a", ITEM), ("b", ITEM), ("c", ITEM), ("d", ITEM + 1), ("e", ITEM)]:
        assert got[rid] == job["expected"][rid, item], rid


def test_parity_with_reference(job: dict) -> None:
    enriched, expected = job["enriched"], job["expected"]
    assert set(enriched) == set(expected)
    assert len(expected) > 2_500
    mismatched = [k for k in expected if _signal_slots(enriched[k]) != expected[k]]
    assert not mismatched, (len(mismatched), [(k, _signal_slots(enriched[k]), expected[k])
                                              for k in mismatched[:3]])
    # The signals vary (not all one bucket), and the logged slots are kept.
    assert len({tuple(s["item_rate"]) for s in expected.values()}) > 3
    for (_, item), imp in list(enriched.items())[:50]:
        assert imp.slots["item_id"] == [item]


def test_freshet_stats_says_what_it_read_and_wrote(job: dict) -> None:
    cfg, stream = job["cfg"], job["stream"]
    lines = job["printed"].splitlines()
    assert lines[0].startswith(f"statistics over {len(stream):,} events (up to offsets")
    assert lines[-1].startswith(f"stats: {len(job['expected']):,} impressions with signals on "
                                f"{cfg.topics.name('features_signals')}; ")


def test_changelog_holds_each_entitys_latest_state(job: dict) -> None:
    log, stream = job["changelog"], job["stream"]
    item = log[f"item:{ITEM}"]
    assert item["entity"] == "item" and item["key"] == [ITEM]
    # After the last event of item ITEM (the like at T + 12.3 s): 4 impressions, 1 click,
    # 1 like, decayed over at most a few seconds of a 30-day half-life.
    assert item["ts"] == T + 13_000
    assert item["sums"][:3] == pytest.approx([4, 1, 1], rel=1e-5)
    user = log[f"user:{USER + 1}"]
    assert user["hist_pos"] == [ITEM] and user["hist_shown"] == [ITEM + 1, ITEM]
    assert log[f"ucat:{USER + 1}:{GENRE}"]["key"] == [USER + 1, GENRE]
    assert log["global"]["sums"][0] == pytest.approx(
        sum(isinstance(e, Impression) for e in stream), rel=1e-3)
    assert {k.split(":")[0] for k in log} == {"item", "user", "cat", "ucat", "global"}


def test_java_buckets_equal_reference_buckets() -> None:
    """SignalBucket (Java) against ps.signals._bucket on random and edge sums."""
    from freshet import jvm

    jvm.ensure()
    from pyflink.java_gateway import get_gateway

    gw = get_gateway()
    fn = gw.jvm.io.freshet.udf.SignalBucket()
    rng = np.random.default_rng(0)

    def java_array(v: list[float]) -> object:
        a = gw.new_array(gw.jvm.java.lang.Double, len(v))
        for k, x in enumerate(v):
            a[k] = float(x)
        return a

    def sums() -> list[float]:
        n = float(rng.choice([0.0, 2.0 ** rng.integers(0, 16) - 1, rng.exponential(50.0),
                              float(rng.integers(0, 100))]))
        pos = n * float(rng.choice([0.0, 0.05, 0.5, 1.0, rng.random()]))
        like = pos * float(rng.random())
        vn = float(rng.integers(0, 20))
        vsum = vn * float(rng.random())
        vsq = vsum * float(rng.random())
        return [n, pos, like, vn, vsum, vsq] + [0.0] * 6

    checked = 0
    for _ in range(400):
        s, p, g = sums(), sums(), sums()
        prior = float(rng.choice([1.0, 10.0, rng.exponential(5.0) + 0.01]))
        # Each element set is a py4j round trip: build a draw's arrays once.
        s_java, p_java, g_java = java_array(s), java_array(p), java_array(g)
        for stat in ("n", "rate", "like", "vmean", "vstd"):
            g6 = g[:6]
            # The global prior (None), and a user's.
            for prior6, prior_java in ((None, None), (p[:6], p_java)):
                py = signals._bucket(stat, s[:6], prior6, g6, prior)
                jv = fn.eval(stat, s_java, prior_java, g_java, prior)
                assert jv == py, (stat, s, prior6, g, prior)
                checked += 1
    assert checked == 4_000


def test_joiner_reads_the_enriched_impressions(job: dict) -> None:
    """A replay: `freshet join` on features_signals (joiner.features_topic) gives
    examples whose slots carry the point-in-time signals, labels as from features."""
    from jobs import join

    cfg = job["cfg"]
    cfg = dataclasses.replace(cfg, joiner=dataclasses.replace(
        cfg.joiner, features_topic="features_signals"))
    join.run(cfg, join.current_bounds(cfg))
    rows = [r for m in kafka.read(cfg, cfg.topics.name("examples"), idle_s=1.0)
            for r in json.loads(m.value())["examples"]]
    acted = {(e.request_id, e.item_id) for e in job["stream"] if isinstance(e, Action)}
    assert len(rows) == len(job["expected"])
    for r in rows:
        key = (r["request_id"], r["item_id"])
        got = {k: v for k, v in r["slots"].items() if k in signals.SIGNALS}
        assert got == job["expected"][key], key
        assert r["label"] == (key in acted), key


@pytest.mark.parametrize(("environ", "message"), [
    ({"FRESHET__STATS__SIGNALS": '["item_ctr"]'}, "unknown signals ['item_ctr']"),
    ({"FRESHET__STATS__SIGNALS": "[]"}, "stats.signals: empty"),
    ({"FRESHET__STATS__HALF_LIFE_S": "0"}, "half-lives and ttl_s must be positive"),
    ({"FRESHET__STATS__HISTORY": "0"}, "history at least 1"),
    ({"FRESHET__STATS__POSITIVE_ACTIONS": '["wink"]'}, "'wink' is not one of"),
    ({"FRESHET__STATS__CATEGORY_SLOT": "genre'"}, "is not a slot name"),
    ({"FRESHET__JOINER__FEATURES_TOPIC": "examples"}, "joiner.features_topic"),
])
def test_stats_config_is_checked_at_load(environ: dict[str, str], message: str) -> None:
    from freshet.config import load_config
    from freshet.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path=None, environ=environ)
