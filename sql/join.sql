-- The join of impressions with actions into labelled examples (views over parse.sql).
--
-- An impression and an action match on (request_id, item_id) when the action's event
-- time is in [impression time, impression time + window]. The LEFT interval join
-- emits a matched pair as soon as both sides are there (a positive), and an
-- impression without a match null-padded once the watermark passes the end of its
-- window (a negative). It keeps each row in RocksDB state only until the watermark
-- passes the end of the window it can match in, so unmatched rows are cleared then.
CREATE TEMPORARY VIEW joined AS
SELECT
  i.request_id, i.item_id, i.user_id, i.ts, i.slots, i.pt,
  a.action
FROM impressions AS i
LEFT JOIN actions AS a
  ON i.request_id = a.request_id
  AND i.item_id = a.item_id
  AND a.rowtime BETWEEN i.rowtime AND i.rowtime + ${window};

-- One example per distinct impression: the broker is at-least-once, so an impression
-- or an action may arrive twice, and an impression may match several actions. The
-- first joined row per (request_id, item_id) wins: keep-first deduplication on the
-- impression's processing time is append-only, and its state expires after
-- table.exec.state.ttl. So a positive's action columns name the action that matched
-- first; actions matching later add nothing (docs/joiner.md says why).
CREATE TEMPORARY VIEW first_per_impression AS
SELECT request_id, item_id, user_id, ts, slots, action, pt
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY request_id, item_id ORDER BY pt) AS rn
  FROM joined
)
WHERE rn = 1;

-- Negative sampling: keep a deterministic pseudo-random fraction of the negatives (a
-- hash of request_id|item_id, reproducible in Python: freshet.topics is not involved,
-- see jobs/join.py keeps_negative), keep every positive, and carry the rate.
CREATE TEMPORARY VIEW examples AS
SELECT
  request_id, item_id, user_id, ts, slots, pt,
  CASE WHEN action IS NULL THEN 0 ELSE 1 END AS label,
  CASE WHEN action = 'click' THEN 1 ELSE 0 END AS click,
  CASE WHEN action = 'like' THEN 1 ELSE 0 END AS `like`,
  CASE WHEN action = 'finish' THEN 1 ELSE 0 END AS finish,
  CASE WHEN action IS NULL THEN CAST(${negative_sample_rate} AS DOUBLE) ELSE 1.0E0 END AS sample_rate
FROM first_per_impression
WHERE (action IS NOT NULL
  OR MOD(ABS(CAST(HASH_CODE(MD5(request_id || '|' || CAST(item_id AS STRING))) AS BIGINT)), 1000000)
     < ${negatives_kept_per_million});

-- Orphan actions: no impression of theirs within the window, found by the mirror
-- image of the join above (on the impressions' keys only, to keep its state small).
-- Each is emitted once the watermark passes, and dead-lettered (insert.sql).
CREATE TEMPORARY VIEW orphan_actions AS
SELECT
  'actions' AS source,
  'orphan action: no impression with this request_id and item_id within the window' AS reason,
  a.payload
FROM actions AS a
LEFT JOIN (SELECT request_id, item_id, rowtime FROM impressions) AS i
  ON i.request_id = a.request_id
  AND i.item_id = a.item_id
  AND a.rowtime BETWEEN i.rowtime AND i.rowtime + ${window}
WHERE i.request_id IS NULL;
