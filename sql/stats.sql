-- The statistics job (docs/signals.md): impressions and actions (parse.sql's
-- `features_parsed`, `actions_parsed`) -> per-entity decayed statistics and the user's
-- recent history, point in time, as ps/signals.py defines them.
--
-- One event stream; each stage is an OVER window over it, partitioned by one entity
-- (item, user, everyone, category, (user, category)), that adds that entity's sums
-- as columns. Flink runs an OVER window's rows in rowtime order once the watermark
-- passes them; a row behind the watermark (later than out_of_orderness) is dropped by
-- Flink, so it counts nowhere (docs/signals.md). The functions (functions.sql) return
-- the state as of the start of the row's second (for impressions) and after the row
-- (for the changelog).
--
-- `${<entity>_sums}` (jobs/stats.py) is the entity's two decayed-sums columns,
-- `<entity>_l` at stats.half_life_s and `<entity>_r` at stats.recent_half_life_s:
--   decayed(ts, <half-life ms>, <ttl ms>, shown, positive, liked, val) OVER w AS <entity>_l

-- Impressions count as shown; actions as positive or like, at their own time, on the
-- action's item and user. `val` is the numeric outcome of ps.signals (none in
-- Freshet's events yet). `everyone` keys the global counter.
CREATE TEMPORARY VIEW stat_events AS
SELECT request_id, item_id, user_id, ts, slots, served_score, model_seq, table_version,
  slot_ids(slots, '${category_slot}') AS cats,
  1 AS shown, 0 AS positive, 0 AS liked, CAST(NULL AS DOUBLE) AS val, 0 AS everyone, rowtime
FROM features_parsed
WHERE reason IS NULL
UNION ALL
SELECT request_id, item_id, user_id, ts, CAST(NULL AS STRING), CAST(NULL AS DOUBLE),
  CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS ARRAY<BIGINT>),
  0, CASE WHEN action IN (${positive_actions}) THEN 1 ELSE 0 END,
  CASE WHEN action = '${like_action}' THEN 1 ELSE 0 END, CAST(NULL AS DOUBLE), 0, rowtime
FROM actions_parsed
WHERE reason IS NULL;

-- Per item; an action takes its item's categories from the item's latest impression.
CREATE TEMPORARY VIEW by_item AS
SELECT *,
  ${item_sums},
  last_ids(cats) OVER w AS item_cats
FROM stat_events
WINDOW w AS (PARTITION BY item_id ORDER BY rowtime
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- Per user, with the histories.
CREATE TEMPORARY VIEW by_user AS
SELECT *,
  ${user_sums},
  recent_items(ts, item_id, positive, ${history}, ${ttl_ms}) OVER w AS hist_pos,
  recent_items(ts, item_id, shown, ${history}, ${ttl_ms}) OVER w AS hist_shown
FROM by_item
WINDOW w AS (PARTITION BY user_id ORDER BY rowtime
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- The global counter (every rate's prior): one key, so one subtask sees every event.
CREATE TEMPORARY VIEW by_global AS
SELECT *,
  ${global_sums}
FROM by_user
WINDOW w AS (PARTITION BY everyone ORDER BY rowtime
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- One row per (event, category of its item), `pos` its place in the impression's list;
-- an event of an item without categories keeps one row with a NULL category.
CREATE TEMPORARY VIEW by_cat_rows AS
SELECT e.*, c.cat, c.pos
FROM by_global AS e
CROSS JOIN LATERAL TABLE(positions(e.item_cats)) AS c (cat, pos);

CREATE TEMPORARY VIEW by_cat AS
SELECT *,
  ${cat_sums}
FROM by_cat_rows
WINDOW w AS (PARTITION BY cat ORDER BY rowtime
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

CREATE TEMPORARY VIEW by_ucat AS
SELECT *,
  ${ucat_sums}
FROM by_cat
WINDOW w AS (PARTITION BY user_id, cat ORDER BY rowtime
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- jobs/stats.py passes `by_ucat` through a Java DataStream as `stat_rows` (as
-- jobs/join.py does after parsing), so that the two outputs below share one
-- computation of the windows instead of the optimizer copying it into each.
