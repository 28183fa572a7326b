"""The joiner's SQL rendering and sampling hash (no Flink job)."""

from __future__ import annotations

import dataclasses

import pytest

from freshet.config import Config, load_config
from jobs import join


def _cfg(**joiner: object) -> Config:
    base = load_config(path=None, environ={})
    return dataclasses.replace(
        base,
        kafka=dataclasses.replace(base.kafka, bootstrap="127.0.0.1:9"),
        joiner=dataclasses.replace(base.joiner, **joiner),
    )


def test_every_placeholder_has_a_value_online_and_bounded() -> None:
    bounds = join.Bounds(stop={"features": {0: 5, 1: 7}, "actions": {0: 3}})
    for b in (None, bounds):
        for files in (join.JOINER_SQL, join.PASSTHROUGH_SQL, join.PARSE_ONLY_SQL):
            stmts = join.load_sql(_cfg(), files, b)
            assert stmts and not any("${" in s for _, s in stmts)
    text = "\n".join(s for _, s in join.load_sql(_cfg(), join.JOINER_SQL, bounds))
    assert "'scan.bounded.specific-offsets' = 'partition:0,offset:5;partition:1,offset:7'" in text
    assert "'scan.startup.specific-offsets' = 'partition:0,offset:0'" in text


def test_config_values_reach_the_sql() -> None:
    text = "\n".join(
        s for _, s in join.load_sql(_cfg(window_s=30.0, negative_sample_rate=0.25))
    )
    assert "i.rowtime + INTERVAL '0 00:00:30.000' DAY TO SECOND(3)" in text
    assert "< 250000" in text and "CAST(0.25 AS DOUBLE)" in text
    for action in ("click", "like", "finish"):
        assert f"AS `{action}`" in text


def test_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        join.render("SELECT ${nope}", {})


def test_sample_rate_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative_sample_rate"):
        join.sql_params(_cfg(negative_sample_rate=1.5))


def test_sql_interval() -> None:
    assert join.sql_interval(90061.5) == "INTERVAL '1 01:01:01.500' DAY TO SECOND(3)"
    with pytest.raises(ValueError):
        join.sql_interval(100 * 86400)


def test_action_types_reach_the_parse_function() -> None:
    text = "\n".join(s for _, s in join.load_sql(_cfg(), join.JOINER_SQL))
    assert "parse_action(payload, 'click|like|finish')" in text


def test_negative_sampling_hash() -> None:
    keys = [(f"r{i}", i % 97) for i in range(20_000)]
    assert all(join.keeps_negative(r, i, 1.0) for r, i in keys)
    assert not any(join.keeps_negative(r, i, 0.0) for r, i in keys)
    kept = [join.keeps_negative(r, i, 0.3) for r, i in keys]
    assert 0.28 < sum(kept) / len(kept) < 0.32
    assert kept == [join.keeps_negative(r, i, 0.3) for r, i in keys]  # deterministic
    # A lower rate keeps a subset of what a higher rate keeps (one hash threshold).
    assert all(join.keeps_negative(r, i, 0.5) for (r, i), k in zip(keys, kept, strict=True) if k)


def test_state_ttl_covers_window_and_retention() -> None:
    cfg = _cfg(window_s=60.0, out_of_orderness_s=5.0, dedupe_retention_s=600.0)
    assert join.state_ttl_ms(cfg) == 665_000
