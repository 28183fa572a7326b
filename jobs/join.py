"""The online joiner: impressions + actions -> labelled examples, in Flink SQL.

The SQL in ``sql/`` is the source of truth (``tables.sql``, ``parse.sql``,
``join.sql``, ``output.sql``, ``insert.sql``; semantics in ``docs/joiner.md``). This
module fills the ``${placeholders}`` from the config, passes two points of the plan
through a Java DataStream (``BRIDGES``, see ``_bridge``) and runs the statements as
one job:

- on the embedded mini-cluster: ``python -m jobs.join`` or ``freshet join``;
- on a Flink cluster, unchanged: ``freshet join --cluster HOST:PORT`` runs
  ``flink run -d -m HOST:PORT -py jobs/join.py`` with the config as JSON (tested with
  a standalone cluster from the pip install's ``pyflink/bin/start-cluster.sh``).

Examples
--------
>>> sql_interval(5.0)
"INTERVAL '0 00:00:05.000' DAY TO SECOND(3)"
>>> render("SELECT ${x} FROM t WHERE j = '$.ts'", {"x": "1"})
"SELECT 1 FROM t WHERE j = '$.ts'"
>>> keeps_negative("ml-0", 7, 1.0), keeps_negative("ml-0", 7, 0.0)
(True, False)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from freshet.config import Config, load_config
from freshet.flink import (
    TRANSACTION_TIMEOUT_MS,
    latest_checkpoint,
    sql_dir,
    stream_environment,
    table_environment,
)
from freshet.topics import ACTION_TYPES

if TYPE_CHECKING:
    from pyflink.table import StatementSet, StreamTableEnvironment, TableResult

JOINER_SQL = ("functions.sql", "tables.sql", "parse.sql", "join.sql", "output.sql", "insert.sql")
# After a file's statements: (view, new view, time attribute), see _bridge.
BRIDGES = {
    "parse.sql": (
        ("features_checked", "features_parsed", "rowtime"),
        ("actions_checked", "actions_parsed", "rowtime"),
    ),
    "output.sql": (("joiner_output", "joiner_rows", "batch"),),
}
PASSTHROUGH_SQL = ("passthrough.sql",)
# The benchmark's second baseline: the joiner's sources and parsing alone.
PARSE_ONLY_SQL = ("functions.sql", "tables.sql", "parse.sql", "parse_only.sql")
# On top of freshet.flink's settings. The interval join's RocksDB state dominates the
# joiner's CPU (docs/joiner.md); these cut it by roughly a quarter in our runs (noisy,
# shared machine): bloom filters answer the many lookups of absent keys (every new
# impression), small memtables keep the delete tombstones that seeks wade through
# few, and the mini-cluster's default managed memory (RocksDB's cache) is small. A
# standalone cluster takes taskmanager.memory.* from its own configuration.
# Object reuse: chained operators hand rows on instead of deep-copying each one (the
# SQL operators copy what they keep); it took the source + parse + bridge threads from
# ~5.6 to ~2 CPU s per MovieLens replay. This job has no user functions that keep rows.
JOINER_FLINK_SETTINGS = {
    "state.backend.rocksdb.use-bloom-filter": "true",
    "state.backend.rocksdb.writebuffer.size": "4mb",
    "taskmanager.memory.managed.size": "512m",
    "pipeline.object-reuse": "true",
}
JOB_NAME = "freshet-join"

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_SPLIT = re.compile(r";[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Bounds:
    """Explicit offsets for a bounded run: logical topic -> partition -> offset.

    Reaching the ``stop`` offsets ends the input, and the final watermark then flushes
    every open window, so every negative is emitted. Explicit offsets (rather than
    "latest") make a bounded run's input the topics as they were when it started.
    """

    stop: Mapping[str, Mapping[int, int]]
    start: Mapping[str, Mapping[int, int]] | None = None


def sql_interval(seconds: float) -> str:
    """A Flink SQL interval literal (day precision is limited to 2 digits)."""
    ms = round(seconds * 1000)
    days, ms = divmod(ms, 86_400_000)
    if days > 99:
        raise ValueError(f"interval of {seconds}s is longer than 99 days")
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"INTERVAL '{days} {h:02d}:{m:02d}:{s:02d}.{ms:03d}' DAY TO SECOND(3)"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _options(opts: Mapping[str, str]) -> str:
    return ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in opts.items())


def _offsets(spec: Mapping[int, int]) -> str:
    return ";".join(f"partition:{p},offset:{o}" for p, o in sorted(spec.items()))


def _scan(topic: str, bounds: Bounds | None) -> str:
    if bounds is None:  # online: resume from the job's committed offsets
        return _options({"scan.startup.mode": "group-offsets"})
    stop = bounds.stop[topic]
    start = (bounds.start or {}).get(topic) or {p: 0 for p in stop}
    return _options(
        {
            "scan.startup.mode": "specific-offsets",
            "scan.startup.specific-offsets": _offsets(start),
            "scan.bounded.mode": "specific-offsets",
            "scan.bounded.specific-offsets": _offsets(stop),
        }
    )


def _kafka_options(cfg: Config) -> dict[str, str]:
    from freshet.broker import bootstrap_servers

    return {
        "properties.bootstrap.servers": bootstrap_servers(cfg),
        **{f"properties.{k}": v for k, v in {**cfg.kafka.client, **cfg.kafka.java_client}.items()},
    }


def sink_options(cfg: Config, group: str, table: str) -> str:
    """A Kafka sink table's options: joiner.delivery's guarantee, in transactions whose
    ids are unique per sink and job on the cluster (the job, the topics' prefix, the
    table) when exactly-once; they commit with each checkpoint."""
    kafka = _kafka_options(cfg)
    if cfg.joiner.delivery == "at_least_once":
        return _options({**kafka, "sink.delivery-guarantee": "at-least-once",
                         "properties.linger.ms": "20"})
    return _options({**kafka, "sink.delivery-guarantee": "exactly-once",
                     "sink.transactional-id-prefix": f"{group}.{cfg.topics.prefix}{table}",
                     "properties.transaction.timeout.ms": str(TRANSACTION_TIMEOUT_MS),
                     "properties.linger.ms": "20"})


def sql_params(cfg: Config, bounds: Bounds | None = None, group: str = JOB_NAME) -> dict[str, str]:
    """Values of the ``${placeholders}`` in ``sql/``, all from the one config."""
    j = cfg.joiner
    if not 0.0 <= j.negative_sample_rate <= 1.0:
        raise ValueError(f"joiner.negative_sample_rate not in [0, 1]: {j.negative_sample_rate}")
    source = {
        **_kafka_options(cfg),
        "properties.group.id": group,
        "properties.auto.offset.reset": "earliest",
        "properties.isolation.level": "read_committed",
    }
    return {
        "features_topic": cfg.topics.name(j.features_topic),
        "actions_topic": cfg.topics.name("actions"),
        "examples_topic": cfg.topics.name("examples"),
        "dead_letters_topic": cfg.topics.name("dead_letters"),
        "source_options": _options(source),
        "sink_options": sink_options(cfg, group, "copy"),  # the benchmark's copy-only job
        "examples_sink_options": sink_options(cfg, group, "examples"),
        "dead_letters_sink_options": sink_options(cfg, group, "dead_letters"),
        "features_scan": _scan("features", bounds),
        "actions_scan": _scan("actions", bounds),
        "window": sql_interval(j.window_s),
        "out_of_orderness": sql_interval(j.out_of_orderness_s),
        "max_clock_skew": sql_interval(j.max_clock_skew_s),
        "negative_sample_rate": repr(float(j.negative_sample_rate)),
        "negatives_kept_per_million": str(round(j.negative_sample_rate * 1_000_000)),
        "batch_shards": str(j.batch_shards),
        "action_types": _sql_str("|".join(ACTION_TYPES)),
        # One 0/1 column per action type (freshet.topics.ACTION_TYPES).
        "action_columns": "\n".join(
            f"  CASE WHEN action = {_quote(a)} THEN 1 ELSE 0 END AS `{a}`," for a in ACTION_TYPES
        ),
        "action_json": "\n".join(
            f"    || ',\"{a}\":' || CAST(`{a}` AS STRING)" for a in ACTION_TYPES
        ),
    }


def _sql_str(text: str) -> str:
    """Text for inside a SQL string literal."""
    return text.replace("'", "''")


def render(text: str, params: Mapping[str, str]) -> str:
    """Replace every ``${name}``; an unknown name is an error, not an empty string."""

    def value(m: re.Match[str]) -> str:
        if m.group(1) not in params:
            raise KeyError(f"SQL placeholder ${{{m.group(1)}}} has no value")
        return params[m.group(1)]

    return _PLACEHOLDER.sub(value, text)


def statements(text: str) -> list[str]:
    """Split a SQL file on semicolons that end a line (none occur inside our strings)."""
    return [s.strip() for s in _SPLIT.split(text) if _code(s).strip()]


def _code(statement: str) -> str:
    """The statement without its comment lines."""
    return "\n".join(ln for ln in statement.splitlines() if not ln.strip().startswith("--"))


def load_sql(
    cfg: Config, files: tuple[str, ...] = JOINER_SQL, bounds: Bounds | None = None,
    group: str = JOB_NAME, extra: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """``(file, statement)`` for every rendered statement of ``files`` (in ``sql/``);
    ``extra``: more placeholder values (another job's)."""
    params = {**sql_params(cfg, bounds, group), **(extra or {})}
    return [
        (name, stmt)
        for name in files
        for stmt in statements(render((sql_dir() / name).read_text(), params))
    ]


def _bridge(
    t_env: StreamTableEnvironment, view: str, new_view: str, time: str, batch_ms: int
) -> None:
    """Register ``new_view``: ``view`` turned into a Java DataStream and back.

    No Python runs per row. The round trip is a boundary for the SQL optimizer, which
    otherwise copies a view into each of its consumers: parsing ran once per branch
    (join input, dead letters) and the one FULL join became a LEFT and a FULL join.
    ``time``:

    - ``"rowtime"``: keep ``view``'s ``rowtime`` and its watermarks;
    - ``"batch"``: the joiner's output; also registers ``example_batches``, its example
      rows batched per shard every ``batch_ms`` by the Java ExampleBatcher (udfs/java),
      which stamps each message with the event time the join has decided up to.
    """
    from pyflink.table import DataTypes, Schema
    from pyflink.table.expressions import col

    table = t_env.from_path(view)
    resolved = table.get_resolved_schema()
    fields = zip(resolved.get_column_names(), resolved.get_column_data_types(), strict=True)
    out = Schema.new_builder()
    schema = Schema.new_builder()
    if time == "rowtime":
        # The event time travels as the DataStream record timestamp, not as a column
        # (a metadata column, which must come last).
        fields = [(n, t) for n, t in fields if n != "rowtime"]
        for name, dtype in fields:
            out = out.column(name, dtype)
            schema = schema.column(name, dtype)
        out = out.column_by_metadata("rowtime", "TIMESTAMP_LTZ(3)")
        schema = schema.column_by_metadata("rowtime", "TIMESTAMP_LTZ(3)").watermark(
            "rowtime", "SOURCE_WATERMARK()"
        )
        table = table.select(*[col(n) for n, _ in fields], col("rowtime"))
        stream = t_env.to_changelog_stream(table, out.build())
    else:
        for name, dtype in fields:
            schema = schema.column(name, dtype)
        stream = t_env.to_changelog_stream(table)
        from pyflink.datastream import DataStream
        from pyflink.java_gateway import get_gateway

        batcher = get_gateway().jvm.io.freshet.udf.ExampleBatcher
        batches = DataStream(batcher.attach(stream._j_data_stream, batch_ms))
        t_env.create_temporary_view("example_batches", t_env.from_data_stream(
            batches, Schema.new_builder().column("message", DataTypes.STRING())
            .column("decided", DataTypes.TIMESTAMP_LTZ(3)).build()))
    t_env.create_temporary_view(new_view, t_env.from_data_stream(stream, schema.build()))


def state_ttl_ms(cfg: Config) -> int:
    """TTL of keyed SQL state (the per-impression deduplication flags): the window,
    the watermark delay, and how long a redelivered duplicate is still recognised."""
    j = cfg.joiner
    return round((j.window_s + j.out_of_orderness_s + j.dedupe_retention_s) * 1000)


def build(
    cfg: Config,
    bounds: Bounds | None = None,
    files: tuple[str, ...] = JOINER_SQL,
    job_name: str = JOB_NAME,
    from_checkpoint: str | None = None,
    bridges: Mapping[str, tuple[tuple[str, str, str], ...]] = BRIDGES,
    ttl_ms: int | None = None,
    params: Mapping[str, str] | None = None,
    group: str = JOB_NAME,
) -> tuple[StreamTableEnvironment, StatementSet]:
    """Create the tables and views of ``files`` and collect their INSERTs in one set.

    ``from_checkpoint``: a retained checkpoint of this job to restore (its join state,
    offsets and open transactions), e.g. after the joiner was killed. Another job on
    the same sources (jobs/stats.py) gives its own ``bridges``, state ``ttl_ms``
    (default: the joiner's, :func:`state_ttl_ms`), placeholder ``params`` (on top of
    :func:`sql_params`) and Kafka consumer ``group``.
    """
    extra = {**JOINER_FLINK_SETTINGS,
             "state.backend.type": cfg.joiner.state_backend,
             "execution.checkpointing.interval": f"{cfg.joiner.checkpoint_interval_ms} ms"}
    if from_checkpoint:
        extra["execution.state-recovery.path"] = from_checkpoint
    env = stream_environment(cfg, job_name, extra=extra)
    t_env = table_environment(env)
    conf = t_env.get_config()
    conf.set("pipeline.name", job_name)
    # Idleness online only (config.py says why); a bounded run's partitions all end.
    if bounds is None and cfg.joiner.idle_timeout_s > 0:
        conf.set("table.exec.source.idle-timeout", f"{round(cfg.joiner.idle_timeout_s * 1000)} ms")
    conf.set("table.exec.state.ttl", f"{state_ttl_ms(cfg) if ttl_ms is None else ttl_ms} ms")
    # The batcher's stamps (ExampleBatcher.decidedBelow) hold only if the interval join
    # emits a negative as soon as its watermark passes the window's end; a cleanup
    # interval delays it past the watermark the join forwards.
    conf.set("table.exec.interval-join.min-cleanup-interval", "0 ms")
    stmt_set = t_env.create_statement_set()
    loaded = load_sql(cfg, files, bounds, group, params)
    for i, (name, stmt) in enumerate(loaded):
        if _code(stmt).lstrip().upper().startswith("INSERT"):
            stmt_set.add_insert_sql(stmt)
        else:
            t_env.execute_sql(stmt)
        if i + 1 == len(loaded) or loaded[i + 1][0] != name:  # the file's last statement
            for view, new_view, time in bridges.get(name, ()):
                _bridge(t_env, view, new_view, time, cfg.joiner.batch_interval_ms)
    return t_env, stmt_set


def run(
    cfg: Config,
    bounds: Bounds | None = None,
    files: tuple[str, ...] = JOINER_SQL,
    job_name: str = JOB_NAME,
    wait: bool = True,
    from_checkpoint: str | None = None,
) -> TableResult:
    """Run the job on the mini-cluster (or the cluster that ``flink run`` targets)."""
    _, stmt_set = build(cfg, bounds, files, job_name, from_checkpoint)
    result = stmt_set.execute()
    if wait:
        result.wait()
    return result


def current_bounds(cfg: Config) -> Bounds:
    """Bounds that end at what both input topics hold now (a replay)."""
    from freshet.kafka import end_offsets

    features = cfg.topics.name(cfg.joiner.features_topic)
    return Bounds(stop={"features": end_offsets(cfg, features),
                        "actions": end_offsets(cfg, cfg.topics.name("actions"))})


def keeps_negative(request_id: str, item_id: int, rate: float) -> bool:
    """Python twin of the SQL sampling test in ``join.sql`` (for tests and audits)."""
    digest = hashlib.md5(f"{request_id}|{item_id}".encode()).hexdigest()
    h = 0
    for ch in digest:  # Java's String.hashCode, which Flink's HASH_CODE uses
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    signed = h - (1 << 32) if h >= 1 << 31 else h
    return abs(signed) % 1_000_000 < round(rate * 1_000_000)


def sql_job_main(argv: list[str] | None, description: str, job_name: str,
                 bounds_of: Callable[[Config], Bounds],
                 build_job: Callable[[Config, Bounds | None], tuple[object, StatementSet]],
                 run_job: Callable[..., object]) -> None:
    """The command line of a SQL job file (``jobs/join.py``, ``jobs/stats.py``), the same
    on the mini-cluster and under ``flink run -py``: ``--config-json`` (what ``freshet``
    passes), ``--bounded``, ``--explain``, ``--from-checkpoint``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config-json", help="the config as JSON (what `freshet` passes)")
    p.add_argument("--bounded", action="store_true", help="stop at the topics' current ends")
    p.add_argument("--explain", action="store_true", help="print the plan, do not run")
    p.add_argument("--from-checkpoint", help="restore a retained checkpoint ('latest': newest)")
    args = p.parse_args(argv)
    if args.config_json:
        cfg = Config.from_json(Path(args.config_json).read_text())
    else:
        cfg = load_config()
    bounds = bounds_of(cfg) if args.bounded else None
    if bounds is not None:
        print(f"{job_name}: up to offsets {json.dumps(bounds.stop)}", flush=True)
    if args.explain:
        from pyflink.table.explain_detail import ExplainDetail

        print(build_job(cfg, bounds)[1].explain(ExplainDetail.CHANGELOG_MODE))
        return
    checkpoint = args.from_checkpoint
    if checkpoint == "latest":
        checkpoint = latest_checkpoint(cfg, job_name)
    run_job(cfg, bounds, from_checkpoint=checkpoint)


def main(argv: list[str] | None = None) -> None:
    sql_job_main(argv, __doc__.split("\n")[0], JOB_NAME, current_bounds, build, run)


if __name__ == "__main__":
    main(sys.argv[1:])
