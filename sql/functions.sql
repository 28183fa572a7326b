-- Freshet's own SQL functions, in Java (udfs/java/io/freshet/udf; freshet/udf_jar.py
-- compiles them into pyflink/lib at install). They parse and check the records in one
-- pass over their bytes: Flink's JSON functions re-parse their input on every call,
-- and checking JSON text with regular expressions cost more CPU than the join itself
-- (docs/joiner.md, "Measured figures").
--
--   record_ts(payload)                -> BIGINT: a JSON object record's top-level `ts`, else NULL
--   parse_impression(payload)         -> one row: reason, request_id, item_id, user_id, ts, slots
--   parse_action(payload, 'a|b|...') -> one row: reason, request_id, item_id, user_id, ts, action
--
-- `reason` is NULL for a valid record, else the first problem found (the table in
-- docs/joiner.md) and the other columns are NULL.

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS record_ts
  AS 'io.freshet.udf.RecordTs' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS parse_impression
  AS 'io.freshet.udf.ParseImpression' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS parse_action
  AS 'io.freshet.udf.ParseAction' LANGUAGE JAVA;

-- The statistics job's functions (stats.sql, docs/signals.md):
--
--   slot_ids(slots, name)                            -> ARRAY<BIGINT>: slot `name`'s IDs
--   decayed(ts, half_life_ms, ttl_ms, shown, positive, liked, value)  OVER w
--                                                    -> ARRAY<DOUBLE>: 6 sums point in time, 6 after the row
--   recent_items(ts, item, flag, n, ttl_ms) OVER w  -> ARRAY<STRING>: history point in time, after the row
--   last_ids(ids) OVER w                             -> ARRAY<BIGINT>: the last non-null list
--   signal_bucket(stat, s, p, g, prior)              -> INT: a statistic's bucket ID (ps/signals.py's twin)
--   in_order(pos, id)                                -> STRING: a group's IDs in `pos` order
--   positions(ids)                                   -> rows (id, pos); one (NULL, NULL) row if none
--   json_numbers(values, from, to)                   -> STRING: values[from, to) as a JSON array

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS slot_ids
  AS 'io.freshet.udf.SlotIds' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS decayed
  AS 'io.freshet.udf.Decayed' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS recent_items
  AS 'io.freshet.udf.RecentItems' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS last_ids
  AS 'io.freshet.udf.LastIds' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS signal_bucket
  AS 'io.freshet.udf.SignalBucket' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS in_order
  AS 'io.freshet.udf.InOrder' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS positions
  AS 'io.freshet.udf.Positions' LANGUAGE JAVA;

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS json_numbers
  AS 'io.freshet.udf.JsonNumbers' LANGUAGE JAVA;
