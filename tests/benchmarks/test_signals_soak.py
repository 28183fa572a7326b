"""benchmarks.signals_soak at a tiny size: its verdict tells a TTL'd state from one
that grows without bound."""

from __future__ import annotations

import json

import pytest

from benchmarks import signals_soak

TINY = {"users": 4_000, "catalogue": 3_000, "pool": 100, "samples": 400}


def test_ttl_state_is_bounded() -> None:
    r = signals_soak.soak(**TINY)
    assert r["distinct_users"] == 4_000
    assert r["events"] == r["impressions"] + r["clicks"]
    assert r["ttls"] == 12
    # each user's state is gone a TTL after its short span: far fewer than all users
    assert r["hist_users_100"] < 4_000 / 6
    assert r["keys_ratio"] <= 1.1
    assert r["bounded"] is True


def test_no_ttl_state_is_not_bounded() -> None:
    r = signals_soak.soak(**TINY, no_ttl=True)
    assert r["hist_users_100"] > 3_950  # nothing evicted (the last 2 s wait in the buffer)
    assert r["keys_ratio"] > 1.5
    assert r["bounded"] is False


@pytest.mark.parametrize(("keys", "rss", "bounded"), [
    ((100, 110), (100, 114), True),
    ((100, 111), (100, 100), False),  # keys grew
    ((100, 100), (100, 116), False),  # memory grew
])
def test_verdict(keys: tuple[int, int], rss: tuple[int, int], bounded: bool) -> None:
    assert signals_soak.verdict(*keys, *rss) is bounded


def test_progress_lines_while_it_runs() -> None:
    lines: list[str] = []
    signals_soak.soak(**TINY, log=lines.append, log_every_s=0.0)
    assert len(lines) > 100  # one a sample, not only the last
    assert lines[-1].startswith("100.0%")


def test_main_prints_json_last(capsys: pytest.CaptureFixture[str]) -> None:
    signals_soak.main(["--users", "2000", "--catalogue", "2000", "--pool", "50",
                       "--samples", "200", "--control-users", "0"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["users"] == 2000
