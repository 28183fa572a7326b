-- The join of impressions with actions into labelled examples (views over parse.sql's
-- output, `features_parsed` and `actions_parsed`).

-- `served_score`, `model_seq`, `table_version`: what serving scored the impression
-- with (NULL when it was not scored), carried into the example so that Freshet can
-- measure what users were actually shown.
CREATE TEMPORARY VIEW impressions AS
SELECT request_id, item_id, user_id, ts, slots, served_score, model_seq, table_version,
  rowtime
FROM features_parsed
WHERE reason IS NULL;

CREATE TEMPORARY VIEW actions AS
SELECT request_id, item_id, action, payload, rowtime
FROM actions_parsed
WHERE reason IS NULL;

-- Invalid records of both topics.
CREATE TEMPORARY VIEW bad_input AS
SELECT 'features' AS source, reason, payload FROM features_parsed WHERE reason IS NOT NULL
UNION ALL
SELECT 'actions' AS source, reason, payload FROM actions_parsed WHERE reason IS NOT NULL;

-- An impression and an action match on (request_id, item_id) when the action's event
-- time is in [impression time, impression time + window]. One FULL OUTER interval
-- join gives all three outcomes:
--   * a matched pair, emitted as soon as both sides are there: a positive;
--   * an impression, null-padded once the watermark passes the end of its window: a
--     negative;
--   * an action, null-padded once no impression can match it any more: an unmatched
--     action (its impression never arrived, or arrived too late, or the action came
--     after the impression's window had closed). It is dead-lettered, so counted.
-- Each row stays in RocksDB state only until the watermark passes the end of the
-- window it can match in; a late row that can no longer match is emitted at once,
-- never dropped. The outcome is a column, not a filter: a filter on a null side
-- here would let the optimizer split this into a LEFT and a RIGHT join (two states).
CREATE TEMPORARY VIEW joined AS
SELECT
  CASE WHEN i.request_id IS NULL THEN 'dead_letter' ELSE 'example' END AS kind,
  COALESCE(i.request_id, a.request_id) AS request_id,
  COALESCE(i.item_id, a.item_id) AS item_id,
  i.user_id, i.ts, i.slots, i.served_score, i.model_seq, i.table_version,
  a.action,
  CASE WHEN i.request_id IS NULL THEN a.payload END AS action_payload,
  PROCTIME() AS pt  -- a processing-time attribute for the deduplication below
FROM impressions AS i
FULL JOIN actions AS a
  ON i.request_id = a.request_id
  AND i.item_id = a.item_id
  AND a.rowtime BETWEEN i.rowtime AND i.rowtime + ${window};

-- One example per distinct impression: the broker is at-least-once, so an impression
-- or an action may arrive twice, and an impression may match several actions. The
-- first joined row per (request_id, item_id) wins (keep-first deduplication on
-- processing time; its state expires after table.exec.state.ttl). So a positive's
-- action columns name the action that matched first; later matches add nothing.
-- Unmatched actions are deduplicated by their payload: a redelivered copy is dropped,
-- a different unmatched action on the same impression is not.
CREATE TEMPORARY VIEW first_rows AS
SELECT kind, request_id, item_id, user_id, ts, slots, served_score, model_seq,
  table_version, action, action_payload
FROM (
  SELECT *,
    ROW_NUMBER() OVER (
      PARTITION BY kind, request_id, item_id, COALESCE(action_payload, '') ORDER BY pt
    ) AS rn
  FROM joined
)
WHERE rn = 1;

-- Negative sampling: keep a deterministic pseudo-random fraction of the negatives (a
-- hash of request_id|item_id; jobs/join.py keeps_negative is its Python twin), keep
-- every positive, and carry the rate for training's log-odds correction.
CREATE TEMPORARY VIEW outcomes AS
SELECT
  kind, request_id, item_id, user_id, ts, slots, served_score, model_seq, table_version,
  action_payload,
  CASE WHEN action IS NULL THEN 0 ELSE 1 END AS label,
${action_columns}
  CASE WHEN action IS NULL THEN CAST(${negative_sample_rate} AS DOUBLE) ELSE 1.0E0 END AS sample_rate
FROM first_rows
WHERE kind = 'dead_letter'
  OR action IS NOT NULL
  OR MOD(ABS(CAST(HASH_CODE(MD5(request_id || '|' || CAST(item_id AS STRING))) AS BIGINT)), 1000000)
     < ${negatives_kept_per_million};
