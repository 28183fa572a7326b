-- Everything the joiner writes, as one stream of ready-made JSON messages:
-- examples (one JSON object each, batched in insert.sql) and dead letters.
--
-- Flink 2.0.2's planner takes the keep-first deduplication in join.sql for an updating
-- operator (it only ever inserts), and no time attribute survives it, but batching
-- needs one. So jobs/join.py turns this view into a DataStream and back (Java only,
-- no Python per row) as `joiner_output_pt`, append-only, adding `pt`: ingestion time
-- with a watermark (processing-time windows would be dropped at the end of a bounded
-- run). One view for both kinds keeps the sources and joins in a single plan.
CREATE TEMPORARY VIEW joiner_output AS
SELECT
  'example' AS kind,
  '{"request_id":' || JSON_STRING(request_id)
    || ',"item_id":' || CAST(item_id AS STRING)
    || ',"user_id":' || CAST(user_id AS STRING)
    || ',"ts":' || CAST(ts AS STRING)
    || ',"label":' || CAST(label AS STRING)
    || ',"click":' || CAST(click AS STRING)
    || ',"like":' || CAST(`like` AS STRING)
    || ',"finish":' || CAST(finish AS STRING)
    || ',"sample_rate":' || CAST(sample_rate AS STRING)
    || ',"slots":' || slots  -- validated JSON object text (parse.sql)
    || '}' AS message,
  -- Spreads the batching over the parallel subtasks.
  MOD(ABS(HASH_CODE(request_id)), ${batch_shards}) AS shard
FROM examples
UNION ALL
SELECT
  'dead_letter' AS kind,
  JSON_OBJECT(
    'v' VALUE 1,
    'source' VALUE source,
    'reason' VALUE reason,
    'payload' VALUE payload,
    'ts' VALUE UNIX_TIMESTAMP() * 1000
  ) AS message,
  0 AS shard
FROM (
  SELECT source, reason, payload FROM bad_input
  UNION ALL
  SELECT source, reason, payload FROM orphan_actions
);
