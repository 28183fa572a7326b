-- Parsing and validation of the raw records (tables.sql) into typed rows.
--
-- Each record is parsed ONCE: JSON_QUERY with a multi-field path returns the fields
-- the joiner needs as canonical JSON text (keys sorted, no spaces, numbers and
-- strings keeping their JSON type, absent fields left out), e.g.
--   {"item_id":7,"request_id":"r1","slots":{"genre":[5]},"ts":1000,"user_id":3,"v":1}
-- Then one regular expression checks the whole shape, types included, like
-- freshet/topics.py does (jobs/join.py: IMPRESSION_REGEX, ACTION_REGEX), and a second
-- one lists the values in key order (IMPRESSION_VALUES_REGEX, ACTION_VALUES_REGEX).
--
-- Only records that fail the check pay for a diagnosis (`reason`: the first problem
-- found, in the CASE below); join.sql sends them to the dead-letter topic.
-- jobs/join.py then passes `features_checked` and `actions_checked` through a Java
-- DataStream (as `features_parsed`, `actions_parsed`), so that this parsing runs once
-- per record although two branches (join, dead letters) consume it.
--
-- Measured Flink 2.0.2 costs behind this shape: every JSON function call re-parses
-- its input; REGEXP_EXTRACT compiles its pattern on every call (REGEXP and
-- REGEXP_EXTRACT_ALL cache it); the optimizer inlines a view's expression into each
-- use, so an expression used twice runs twice. CROSS JOIN UNNEST(ARRAY[expr]) of a
-- one-element array computes `expr` once and stops that inlining.
-- (JSON_VALUE ... RETURNING BIGINT is unsupported and CAST of an out-of-range number
-- fails the job: hence text plus TRY_CAST.)

CREATE TEMPORARY VIEW features_fields AS
SELECT
  payload, rowtime,
  REGEXP(doc, '${impression_regex}') AS valid,
  vals  -- item_id, request_id (JSON-quoted), slots, ts, user_id; if valid
FROM features_raw
CROSS JOIN UNNEST(ARRAY[
  JSON_QUERY(payload, '$[''item_id'',''request_id'',''slots'',''ts'',''user_id'',''v'']')
]) AS d (doc)
CROSS JOIN UNNEST(ARRAY[
  REGEXP_EXTRACT_ALL(doc, '${impression_values_regex}', 1)
]) AS f (vals);

CREATE TEMPORARY VIEW features_validated AS
SELECT
  payload, rowtime,
  JSON_UNQUOTE(vals[2]) AS request_id,
  TRY_CAST(vals[1] AS BIGINT) AS item_id,
  TRY_CAST(vals[5] AS BIGINT) AS user_id,
  TRY_CAST(vals[4] AS BIGINT) AS ts,
  vals[3] AS slots,
  CASE
    WHEN valid AND TRY_CAST(vals[1] AS BIGINT) IS NOT NULL
         AND TRY_CAST(vals[5] AS BIGINT) IS NOT NULL AND TRY_CAST(vals[4] AS BIGINT) IS NOT NULL
      -- tables.sql fell back to the broker timestamp: `ts` is absurd.
      THEN CASE WHEN rowtime <> TO_TIMESTAMP_LTZ(TRY_CAST(vals[4] AS BIGINT), 3)
                THEN 'ts: further than max_clock_skew_s from the broker timestamp' END
    WHEN NOT (payload IS JSON OBJECT) THEN 'not a JSON object'
    ELSE ${impression_reason}
  END AS reason
FROM features_fields;

-- Only dead letters need an impression's payload: dropping it from valid ones saves
-- converting it in jobs/join.py's bridge.
CREATE TEMPORARY VIEW features_checked AS
SELECT
  CASE WHEN reason IS NULL THEN CAST(NULL AS STRING) ELSE payload END AS payload,
  rowtime, request_id, item_id, user_id, ts, slots, reason
FROM features_validated;

CREATE TEMPORARY VIEW actions_fields AS
SELECT
  payload, rowtime,
  REGEXP(doc, '${action_regex}') AS valid,
  vals  -- action (JSON-quoted), item_id, request_id (JSON-quoted), ts, user_id; if valid
FROM actions_raw
CROSS JOIN UNNEST(ARRAY[
  JSON_QUERY(payload, '$[''action'',''item_id'',''request_id'',''ts'',''user_id'',''v'']')
]) AS d (doc)
CROSS JOIN UNNEST(ARRAY[
  REGEXP_EXTRACT_ALL(doc, '${action_values_regex}', 1)
]) AS f (vals);

CREATE TEMPORARY VIEW actions_checked AS
SELECT
  payload, rowtime,
  JSON_UNQUOTE(vals[3]) AS request_id,
  TRY_CAST(vals[2] AS BIGINT) AS item_id,
  JSON_UNQUOTE(vals[1]) AS action,
  CASE
    WHEN valid AND TRY_CAST(vals[2] AS BIGINT) IS NOT NULL
         AND TRY_CAST(vals[5] AS BIGINT) IS NOT NULL AND TRY_CAST(vals[4] AS BIGINT) IS NOT NULL
      THEN CASE WHEN rowtime <> TO_TIMESTAMP_LTZ(TRY_CAST(vals[4] AS BIGINT), 3)
                THEN 'ts: further than max_clock_skew_s from the broker timestamp' END
    WHEN NOT (payload IS JSON OBJECT) THEN 'not a JSON object'
    ELSE ${action_reason}
  END AS reason
FROM actions_fields;
