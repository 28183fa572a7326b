"""benchmarks.freshness's signals probe: matching logged impressions to clicks, and its
statistics (pure Python; the timed run is the benchmark itself)."""

from __future__ import annotations

from benchmarks.freshness import metric, percentiles, signals_freshness


def test_the_first_ranking_whose_log_holds_the_item_counts() -> None:
    clicks = {"a": (10.0, 7), "b": (11.0, 8), "c": (12.0, 9)}
    requests = {
        "r1": ("a", 10.1), "r2": ("a", 10.6), "r3": ("a", 10.3),  # r3 logged after r2
        "r4": ("b", 11.2),  # logs another probe's item: not b's click
        "r5": ("c", 12.4),  # never logged
        "r6": ("b", 11.9),
    }
    logged = {"r1": [], "r2": [7, 1], "r3": [7], "r4": [7], "r6": [5, 8],
              "other-run": [7, 8, 9]}  # not a request of this run
    fresh = signals_freshness(clicks, requests, logged)
    assert set(fresh) == {"a", "b"}  # c unresolved
    assert abs(fresh["a"] - 0.3) < 1e-9  # r3, the earliest start, not the first read
    assert abs(fresh["b"] - 0.9) < 1e-9


def test_nothing_logged_resolves_nothing() -> None:
    assert signals_freshness({"a": (1.0, 7)}, {"r1": ("a", 1.5)}, {}) == {}


def test_percentiles() -> None:
    values = [0.1 * i for i in range(1, 101)]  # 0.1 .. 10.0
    assert percentiles(values, "s") == {"s_p50_s": 5.05, "s_p99_s": 9.901, "s_max_s": 10.0}
    assert percentiles([], "s") == {"s_p50_s": None, "s_p99_s": None, "s_max_s": None}


def test_metric_reads_one_labelled_sample() -> None:
    text = ('freshet_serving_signal_events_total{outcome="folded"} 120.0\n'
            'freshet_serving_signal_events_total{outcome="late"} 7.0\n')
    assert metric(text, 'freshet_serving_signal_events_total{outcome="late"}') == 7.0
    assert metric(text, 'freshet_serving_signal_events_total{outcome="malformed"}') is None
