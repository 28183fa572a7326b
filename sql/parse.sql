-- Parsing and validation of the raw records (tables.sql) into typed rows.
--
-- Each field is read with JSON_QUERY ... WITH CONDITIONAL ARRAY WRAPPER, which keeps
-- its JSON type ([7] for a number, ["7"] for a string), so a regular expression can
-- check the type exactly like freshet/topics.py does. `reason` is NULL for a valid
-- record, else the first problem found; invalid records go to the dead-letter topic.
-- (JSON_VALUE ... RETURNING BIGINT is not supported here, RETURNING DOUBLE throws on
-- integers, and CAST of an out-of-range number fails the job: hence TRY_CAST and the
-- 18-digit bound.)

CREATE TEMPORARY VIEW features_fields AS
SELECT
  payload, kafka_ts, kafka_partition, kafka_offset, rowtime, pt,
  payload IS JSON OBJECT AS is_object,
  JSON_VALUE(payload, '$.v') AS v,
  JSON_QUERY(payload, '$.request_id' WITH CONDITIONAL ARRAY WRAPPER) AS q_request_id,
  JSON_QUERY(payload, '$.item_id' WITH CONDITIONAL ARRAY WRAPPER) AS q_item_id,
  JSON_QUERY(payload, '$.user_id' WITH CONDITIONAL ARRAY WRAPPER) AS q_user_id,
  JSON_QUERY(payload, '$.ts' WITH CONDITIONAL ARRAY WRAPPER) AS q_ts,
  JSON_QUERY(payload, '$.slots') AS slots
FROM features_raw;

CREATE TEMPORARY VIEW features_checked AS
SELECT
  payload, kafka_partition, kafka_offset, rowtime, pt, slots,
  JSON_VALUE(payload, '$.request_id') AS request_id,
  TRY_CAST(SUBSTRING(q_item_id FROM 2 FOR CHAR_LENGTH(q_item_id) - 2) AS BIGINT) AS item_id,
  TRY_CAST(SUBSTRING(q_user_id FROM 2 FOR CHAR_LENGTH(q_user_id) - 2) AS BIGINT) AS user_id,
  TRY_CAST(SUBSTRING(q_ts FROM 2 FOR CHAR_LENGTH(q_ts) - 2) AS BIGINT) AS ts,
  CASE
    WHEN NOT is_object THEN 'not a JSON object'
    WHEN COALESCE(v, '1') <> '1' THEN 'v: unsupported schema version'
    WHEN NOT REGEXP(COALESCE(q_request_id, ''), '^\["') THEN 'request_id: missing or not a string'
    WHEN NOT REGEXP(COALESCE(q_item_id, ''), '^\[-?[0-9]{1,18}\]$') THEN 'item_id: missing or not an integer'
    WHEN NOT REGEXP(COALESCE(q_user_id, ''), '^\[-?[0-9]{1,18}\]$') THEN 'user_id: missing or not an integer'
    WHEN NOT REGEXP(COALESCE(q_ts, ''), '^\[-?[0-9]{1,18}\]$') THEN 'ts: missing or not an integer'
    WHEN NOT REGEXP(COALESCE(slots, ''), '${slots_regex}')
      THEN 'slots: missing, or not an object of integer ID lists'
    -- tables.sql fell back to the broker timestamp: `ts` is absurd.
    WHEN rowtime <> TO_TIMESTAMP_LTZ(TRY_CAST(SUBSTRING(q_ts FROM 2 FOR CHAR_LENGTH(q_ts) - 2) AS BIGINT), 3)
      THEN 'ts: further than max_clock_skew_s from the broker timestamp'
  END AS reason
FROM features_fields;

CREATE TEMPORARY VIEW impressions AS
SELECT request_id, item_id, user_id, ts, slots, rowtime, pt
FROM features_checked
WHERE reason IS NULL;

CREATE TEMPORARY VIEW actions_fields AS
SELECT
  payload, kafka_ts, kafka_partition, kafka_offset, rowtime, pt,
  payload IS JSON OBJECT AS is_object,
  JSON_VALUE(payload, '$.v') AS v,
  JSON_QUERY(payload, '$.request_id' WITH CONDITIONAL ARRAY WRAPPER) AS q_request_id,
  JSON_QUERY(payload, '$.item_id' WITH CONDITIONAL ARRAY WRAPPER) AS q_item_id,
  JSON_QUERY(payload, '$.user_id' WITH CONDITIONAL ARRAY WRAPPER) AS q_user_id,
  JSON_QUERY(payload, '$.ts' WITH CONDITIONAL ARRAY WRAPPER) AS q_ts,
  JSON_VALUE(payload, '$.action') AS action
FROM actions_raw;

CREATE TEMPORARY VIEW actions_checked AS
SELECT
  payload, kafka_partition, kafka_offset, rowtime, pt, action,
  JSON_VALUE(payload, '$.request_id') AS request_id,
  TRY_CAST(SUBSTRING(q_item_id FROM 2 FOR CHAR_LENGTH(q_item_id) - 2) AS BIGINT) AS item_id,
  TRY_CAST(SUBSTRING(q_user_id FROM 2 FOR CHAR_LENGTH(q_user_id) - 2) AS BIGINT) AS user_id,
  TRY_CAST(SUBSTRING(q_ts FROM 2 FOR CHAR_LENGTH(q_ts) - 2) AS BIGINT) AS ts,
  CASE
    WHEN NOT is_object THEN 'not a JSON object'
    WHEN COALESCE(v, '1') <> '1' THEN 'v: unsupported schema version'
    WHEN NOT REGEXP(COALESCE(q_request_id, ''), '^\["') THEN 'request_id: missing or not a string'
    WHEN NOT REGEXP(COALESCE(q_item_id, ''), '^\[-?[0-9]{1,18}\]$') THEN 'item_id: missing or not an integer'
    WHEN NOT REGEXP(COALESCE(q_user_id, ''), '^\[-?[0-9]{1,18}\]$') THEN 'user_id: missing or not an integer'
    WHEN NOT REGEXP(COALESCE(q_ts, ''), '^\[-?[0-9]{1,18}\]$') THEN 'ts: missing or not an integer'
    WHEN action IS NULL OR action NOT IN (${action_types})
      THEN 'action: missing or not one of ${action_types_text}'
    WHEN rowtime <> TO_TIMESTAMP_LTZ(TRY_CAST(SUBSTRING(q_ts FROM 2 FOR CHAR_LENGTH(q_ts) - 2) AS BIGINT), 3)
      THEN 'ts: further than max_clock_skew_s from the broker timestamp'
  END AS reason
FROM actions_fields;

CREATE TEMPORARY VIEW actions AS
SELECT request_id, item_id, user_id, ts, action, payload, rowtime, pt
FROM actions_checked
WHERE reason IS NULL;

-- Invalid records of both topics, with where they came from.
CREATE TEMPORARY VIEW bad_input AS
SELECT 'features' AS source, reason, payload, kafka_partition, kafka_offset
FROM features_checked WHERE reason IS NOT NULL
UNION ALL
SELECT 'actions' AS source, reason, payload, kafka_partition, kafka_offset
FROM actions_checked WHERE reason IS NOT NULL;
