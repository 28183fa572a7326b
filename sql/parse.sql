-- Parsing and validation of the raw records (tables.sql) into typed rows.
--
-- Each record is parsed once, by a Java table function (functions.sql) that yields
-- one row: the typed fields, or the first problem found as `reason` (join.sql sends
-- those records to the dead-letter topic, with their payload). Only invalid records
-- keep their payload, and actions (an unmatched one is dead-lettered after the join).
--
-- jobs/join.py then passes `features_checked` and `actions_checked` through a Java
-- DataStream (as `features_parsed`, `actions_parsed`), so that this parsing runs once
-- per record although two branches (join, dead letters) consume it.

CREATE TEMPORARY VIEW features_checked AS
SELECT
  CASE WHEN p.reason IS NULL AND rowtime = TO_TIMESTAMP_LTZ(ts, 3)
    THEN CAST(NULL AS STRING) ELSE payload END AS payload,
  rowtime, request_id, item_id, user_id, ts, slots,
  served_score, model_seq, table_version,
  CASE
    -- tables.sql fell back to the broker timestamp: `ts` is absurd.
    WHEN p.reason IS NULL AND rowtime <> TO_TIMESTAMP_LTZ(ts, 3)
      THEN 'ts: further than max_clock_skew_s from the record''s Kafka timestamp (does the producer set record timestamps to event time?)'
    ELSE p.reason
  END AS reason
FROM features_raw
CROSS JOIN LATERAL TABLE(parse_impression(payload))
  AS p (reason, request_id, item_id, user_id, ts, slots,
        served_score, model_seq, table_version);

-- Actions keep their payload: an unmatched action is dead-lettered after the join.
-- Their user and time are for the statistics job (stats.sql).
CREATE TEMPORARY VIEW actions_checked AS
SELECT
  payload,
  rowtime, request_id, item_id, user_id, ts, action,
  CASE
    WHEN p.reason IS NULL AND rowtime <> TO_TIMESTAMP_LTZ(ts, 3)
      THEN 'ts: further than max_clock_skew_s from the record''s Kafka timestamp (does the producer set record timestamps to event time?)'
    ELSE p.reason
  END AS reason
FROM actions_raw
CROSS JOIN LATERAL TABLE(parse_action(payload, '${action_types}'))
  AS p (reason, request_id, item_id, user_id, ts, action);
