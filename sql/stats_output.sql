-- What the statistics job writes (docs/signals.md, record formats in docs/events.md),
-- from `stat_rows` (stats.sql): one statement set, one Flink job.

-- The changelog: each entity's state after each event, keyed by entity and key, on an
-- upsert-kafka table (a compacted topic's reader keeps the latest record per key).
CREATE TEMPORARY TABLE signals_sink (
  `key` STRING,
  message STRING,
  event_time TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  PRIMARY KEY (`key`) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '${signals_topic}',
  'key.format' = 'raw',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY',
  ${signals_sink_options}
);

-- Impressions with their signal slots added: the features topic's format, read by
-- `freshet join` when joiner.features_topic = "features_signals" (a replay).
-- Each writing subtask keeps to its own partition, so a partition holds its windows in
-- event-time order: the joiner's out-of-orderness bound holds on it. Spread by key,
-- every partition would interleave subtasks that in a fast replay run tens of seconds
-- of event time apart, and the joiner would take impressions after their actions.
CREATE TEMPORARY TABLE features_signals_sink (
  request_id STRING,
  message STRING,
  event_time TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  'connector' = 'kafka',
  'topic' = '${features_signals_topic}',
  'key.format' = 'raw',
  'key.fields' = 'request_id',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY',
  'sink.partitioner' = 'io.freshet.udf.SubtaskPartitioner',
  ${features_signals_sink_options}
);

-- Per event, the item/user signals' slots as JSON members ('"item_n":[2],...').
CREATE TEMPORARY VIEW flat_signals AS
SELECT *, ${flat_json} AS flat_json
FROM stat_rows;

-- Each impression once, its per-category bucket IDs gathered in the order of its
-- categories. The rows of one impression share its rowtime, so one tumbling second
-- holds them all; it is emitted when the watermark passes the second's end.
CREATE TEMPORARY VIEW enriched AS
SELECT request_id, item_id, user_id, ts, slots, served_score, model_seq, table_version,
${cat_aggregates}
  MAX(flat_json) AS flat_json
FROM TABLE(TUMBLE(TABLE flat_signals, DESCRIPTOR(rowtime), INTERVAL '1' SECOND))
WHERE shown = 1
GROUP BY window_start, window_end, request_id, item_id, user_id, ts, slots, served_score,
  model_seq, table_version;

INSERT INTO features_signals_sink
SELECT request_id,
  '{"v":1,"request_id":' || JSON_STRING(request_id)
  || ',"item_id":' || CAST(item_id AS STRING)
  || ',"user_id":' || CAST(user_id AS STRING)
  || ',"ts":' || CAST(ts AS STRING)
  || ',"slots":' || CASE WHEN slots = '{}' THEN '{'
                    ELSE SUBSTRING(slots FROM 1 FOR CHAR_LENGTH(slots) - 1) || ',' END
  || ${signal_json} || '}'
  || COALESCE(',"served_score":' || CAST(served_score AS STRING), '')
  || COALESCE(',"model_seq":' || CAST(model_seq AS STRING), '')
  || COALESCE(',"table_version":' || CAST(table_version AS STRING), '')
  || '}',
  TO_TIMESTAMP_LTZ(ts, 3)
FROM enriched;

-- Item, user (with its histories) and global records once per event (on its first
-- category row), category and (user, category) records once per category row.
INSERT INTO signals_sink
SELECT k, m, TO_TIMESTAMP_LTZ(ts, 3) FROM (
  SELECT 'item:' || CAST(item_id AS STRING) AS k,
    '{"v":1,"entity":"item","key":[' || CAST(item_id AS STRING) || '],"ts":'
    || CAST(ts AS STRING) || ',"sums":' || json_numbers(item_l, 6, 12)
    || ',"sums_recent":' || json_numbers(item_r, 6, 12) || '}' AS m, ts
  FROM stat_rows WHERE pos IS NULL OR pos = 1
  UNION ALL
  SELECT 'user:' || CAST(user_id AS STRING),
    '{"v":1,"entity":"user","key":[' || CAST(user_id AS STRING) || '],"ts":'
    || CAST(ts AS STRING) || ',"sums":' || json_numbers(user_l, 6, 12)
    || ',"sums_recent":' || json_numbers(user_r, 6, 12)
    || ',"hist_pos":[' || hist_pos[2] || '],"hist_shown":[' || hist_shown[2] || ']}', ts
  FROM stat_rows WHERE pos IS NULL OR pos = 1
  UNION ALL
  SELECT 'global',
    '{"v":1,"entity":"global","key":[],"ts":' || CAST(ts AS STRING)
    || ',"sums":' || json_numbers(global_l, 6, 12)
    || ',"sums_recent":' || json_numbers(global_r, 6, 12) || '}', ts
  FROM stat_rows WHERE pos IS NULL OR pos = 1
  UNION ALL
  SELECT 'cat:' || CAST(cat AS STRING),
    '{"v":1,"entity":"cat","key":[' || CAST(cat AS STRING) || '],"ts":'
    || CAST(ts AS STRING) || ',"sums":' || json_numbers(cat_l, 6, 12)
    || ',"sums_recent":' || json_numbers(cat_r, 6, 12) || '}', ts
  FROM stat_rows WHERE cat IS NOT NULL
  UNION ALL
  SELECT 'ucat:' || CAST(user_id AS STRING) || ':' || CAST(cat AS STRING),
    '{"v":1,"entity":"ucat","key":[' || CAST(user_id AS STRING) || ','
    || CAST(cat AS STRING) || '],"ts":' || CAST(ts AS STRING)
    || ',"sums":' || json_numbers(ucat_l, 6, 12)
    || ',"sums_recent":' || json_numbers(ucat_r, 6, 12) || '}', ts
  FROM stat_rows WHERE cat IS NOT NULL
);
