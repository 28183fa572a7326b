-- Everything the joiner writes, as one stream of ready-made JSON messages: examples
-- (one JSON object each) and dead letters.
--
-- jobs/join.py passes this view through a Java DataStream (no Python per row): as
-- `joiner_rows`, append-only (Flink 2.0.2's planner calls the keep-first
-- deduplication in join.sql updating, which a Kafka sink rejects, although it only
-- ever inserts), and batched per `shard` into `example_batches` (message, decided)
-- by io.freshet.udf.ExampleBatcher (udfs/java), which stamps each message with the
-- event time up to which the join has decided (insert.sql).
CREATE TEMPORARY VIEW joiner_output AS
SELECT
  kind,
  CASE WHEN kind = 'example' THEN
    '{"request_id":' || JSON_STRING(request_id)
    || ',"item_id":' || CAST(item_id AS STRING)
    || ',"user_id":' || CAST(user_id AS STRING)
    || ',"ts":' || CAST(ts AS STRING)
    || ',"label":' || CAST(label AS STRING)
${action_json}
    || ',"sample_rate":' || CAST(sample_rate AS STRING)
    || ',"slots":' || slots  -- validated JSON object text (parse.sql)
    -- Only when serving scored the impression (a NULL would empty the whole text).
    || COALESCE(',"served_score":' || CAST(served_score AS STRING), '')
    || COALESCE(',"model_seq":' || CAST(model_seq AS STRING), '')
    || COALESCE(',"table_version":' || CAST(table_version AS STRING), '')
    || '}'
  ELSE JSON_OBJECT(
    'v' VALUE 1,
    'source' VALUE 'actions',
    'reason' VALUE 'unmatched action: no impression with this request_id and item_id within the window',
    'payload' VALUE action_payload,
    'ts' VALUE UNIX_TIMESTAMP() * 1000
  ) END AS message,
  -- Spreads the batching over the parallel subtasks.
  MOD(ABS(HASH_CODE(request_id)), ${batch_shards}) AS shard
FROM outcomes
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
FROM bad_input;
