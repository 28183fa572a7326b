"""The statistics job: impressions + actions -> point-in-time signals, in Flink SQL.

What ``ps.signals`` defines (its :func:`ps.signals.point_in_time` is the reference),
computed as each event arrives: per item, user, category and (user, category) decayed
counts and rates, and each user's recent history (``sql/stats.sql``, semantics in
``docs/signals.md``). It reads the same sources as the joiner (``tables.sql``,
``parse.sql``) and writes two topics (``sql/stats_output.sql``):

- ``signals``: a changelog, each entity's state after each event (upsert-kafka, keyed
  ``item:7``, ``user:3``, ``cat:4``, ``ucat:3:4``, ``global``; docs/events.md);
- ``features_signals``: every impression with its signal slots (bucket IDs, named as
  in ``ps.signals.SIGNALS``) added to its ``slots``, point in time. ``freshet join``
  reads it instead of ``features`` with ``joiner.features_topic = "features_signals"``
  (a replay of a log that has no logged signals).

Run on the mini-cluster by ``freshet stats [--bounded]`` (or ``python -m jobs.stats``),
on a cluster by ``freshet stats --cluster HOST:PORT`` (``flink run -py jobs/stats.py``).

Examples
--------
>>> bucket_sql("ucat_rate_recent", 10.0)
"signal_bucket('rate', ucat_r, user_r, global_r, CAST('10.0' AS DOUBLE))"
>>> bucket_sql("hist_pos", 10.0)
'hist_pos[1]'
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from freshet.config import Config
from jobs.join import BRIDGES, Bounds, sink_options, sql_job_main
from jobs.join import build as build_sql
from ps.signals import SIGNALS

if TYPE_CHECKING:
    from pyflink.table import StatementSet, StreamTableEnvironment, TableResult

JOB_NAME = "freshet-stats"
STATS_SQL = ("functions.sql", "tables.sql", "parse.sql", "stats.sql", "stats_output.sql")
# After parsing as in the joiner; after the windows, one boundary so that both outputs
# read one computation of them (see jobs.join._bridge).
STATS_BRIDGES = {
    "parse.sql": BRIDGES["parse.sql"],
    "stats.sql": (("by_ucat", "stat_rows", "rowtime"),),
}
OUTPUTS = ("signals", "features_signals")


def _double(x: float) -> str:
    """A DOUBLE literal that reads back as exactly ``x`` (Python's repr round-trips)."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def bucket_sql(name: str, prior: float) -> str:
    """The SQL expression of signal ``name``'s bucket ID on a row of ``stat_rows``: the
    sums of its entity (``<entity>_l``, or ``_r`` for a ``*_recent`` signal), the
    prior's (the user's for (user, category), else the global one) and the global's."""
    entity, what = SIGNALS[name]
    if entity == "hist":
        return f"hist_{what}[1]"  # the history point in time (RecentItems)
    stat, _, rest = what.partition("_")
    t = "r" if rest else "l"
    p = f"user_{t}" if entity == "ucat" else "CAST(NULL AS ARRAY<DOUBLE>)"
    return f"signal_bucket('{stat}', {entity}_{t}, {p}, global_{t}, {_double(prior)})"


def sums_sql(cfg: Config, entity: str) -> str:
    """An OVER window's two decayed-sums columns of ``entity`` (``sql/stats.sql``):
    ``<entity>_l`` at stats.half_life_s, ``<entity>_r`` at stats.recent_half_life_s."""
    ttl = f"CAST({ttl_ms(cfg)} AS BIGINT)"
    return ",\n  ".join(
        f"decayed(ts, {_double(h * 1000.0)}, {ttl}, shown, positive, liked, val) "
        f"OVER w AS {entity}_{t}"
        for t, h in (("l", cfg.stats.half_life_s), ("r", cfg.stats.recent_half_life_s)))


def stats_params(cfg: Config) -> dict[str, str]:
    """The statistics SQL's ``${placeholders}`` (on top of jobs.join.sql_params)."""
    s = cfg.stats
    flat = [n for n in s.signals if SIGNALS[n][0] not in ("cat", "ucat")]
    per_cat = [n for n in s.signals if SIGNALS[n][0] in ("cat", "ucat")]
    flat_json = " || ',' || ".join(
        f"'\"{n}\":[' || " + (bucket_sql(n, s.prior) if SIGNALS[n][0] == "hist"
                              else f"CAST({bucket_sql(n, s.prior)} AS STRING)") + " || ']'"
        for n in flat) or "''"
    members = (["flat_json"] if flat else []) + [f"'\"{n}\":[' || `{n}` || ']'" for n in per_cat]
    return {
        "features_topic": cfg.topics.name("features"),  # the logged impressions, always
        "signals_topic": cfg.topics.name("signals"),
        "features_signals_topic": cfg.topics.name("features_signals"),
        "signals_sink_options": sink_options(cfg, JOB_NAME, "signals"),
        "features_signals_sink_options": sink_options(cfg, JOB_NAME, "features_signals"),
        "category_slot": s.category_slot,
        "positive_actions": ", ".join(f"'{a}'" for a in s.positive_actions),
        "like_action": s.like_action,
        **{f"{e}_sums": sums_sql(cfg, e) for e in ("item", "user", "global", "cat", "ucat")},
        "ttl_ms": f"CAST({ttl_ms(cfg)} AS BIGINT)",
        "history": str(s.history),
        "flat_json": flat_json,
        "cat_aggregates": "".join(
            f"  in_order(pos, CAST({bucket_sql(n, s.prior)} AS BIGINT)) AS `{n}`,\n"
            for n in per_cat),
        "signal_json": " || ',' || ".join(members),
    }


def ttl_ms(cfg: Config) -> int:
    """stats.ttl_s in ms: the event-time reset of an idle key, and the SQL state TTL."""
    return round(cfg.stats.ttl_s * 1000)


def build(cfg: Config, bounds: Bounds | None = None, from_checkpoint: str | None = None
          ) -> tuple[StreamTableEnvironment, StatementSet]:
    """The job's tables, views and INSERTs (one statement set)."""
    return build_sql(cfg, bounds, STATS_SQL, JOB_NAME, from_checkpoint, STATS_BRIDGES,
                     ttl_ms(cfg), stats_params(cfg), group=JOB_NAME)


def run(cfg: Config, bounds: Bounds | None = None, wait: bool = True,
        from_checkpoint: str | None = None) -> TableResult:
    """Run the job on the mini-cluster (or the cluster that ``flink run`` targets)."""
    result = build(cfg, bounds, from_checkpoint)[1].execute()
    if wait:
        result.wait()
    return result


def current_bounds(cfg: Config) -> Bounds:
    """Bounds that end at what ``features`` and ``actions`` hold now (a replay)."""
    from freshet.kafka import end_offsets

    return Bounds(stop={t: end_offsets(cfg, cfg.topics.name(t)) for t in ("features", "actions")})


def written(cfg: Config, since: Mapping[str, Mapping[int, int]]) -> dict[str, int]:
    """How far each output topic's offsets moved beyond ``since``: its records plus, when
    written in transactions, one commit marker per partition and checkpoint (cheap,
    for progress lines; :func:`enriched_count` counts exactly)."""
    from freshet.kafka import end_offsets

    out = {}
    for t in OUTPUTS:
        now = end_offsets(cfg, cfg.topics.name(t))
        out[t] = sum(o - since.get(t, {}).get(p, 0) for p, o in now.items())
    return out


def enriched_count(cfg: Config, since: Mapping[int, int]) -> int:
    """The impressions on ``features_signals`` after the offsets ``since``."""
    from freshet.kafka import read

    return sum(1 for _ in read(cfg, cfg.topics.name("features_signals"), idle_s=1.0,
                               start=dict(since)))


def main(argv: list[str] | None = None) -> None:
    sql_job_main(argv, __doc__.split("\n")[0], JOB_NAME, current_bounds, build, run)


if __name__ == "__main__":
    main(sys.argv[1:])
