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
