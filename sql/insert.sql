-- What the joiner writes: run together as one statement set (one Flink job).
-- `joiner_output_pt` is output.sql's `joiner_output` plus `pt`, the time it reached
-- the batching (ingestion time, with a watermark 0.2 s behind the wall clock).

-- Examples, batched for the trainer: one message holds up to batch_size examples,
-- {"v":1,"examples":[{...},...]}, so training decodes a whole mini-batch per message.
-- A batch closes every batch_interval (of ingestion time) or when it is full: the
-- running count per shard numbers the examples, and (n - 1) / batch_size splits a
-- window's examples into batches of at most batch_size.
CREATE TEMPORARY VIEW numbered_examples AS
SELECT
  message, shard, pt,
  COUNT(*) OVER (PARTITION BY shard ORDER BY pt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n
FROM joiner_output_pt
WHERE kind = 'example';

INSERT INTO examples_sink
SELECT '{"v":1,"examples":[' || ARRAY_JOIN(ARRAY_AGG(message), ',') || ']}'
FROM TABLE(TUMBLE(TABLE numbered_examples, DESCRIPTOR(pt), ${batch_interval}))
GROUP BY window_start, window_end, shard, (n - 1) / ${batch_size};

-- Dead letters: invalid records of both topics, and orphan actions.
INSERT INTO dead_letters_sink
SELECT message FROM joiner_output_pt WHERE kind = 'dead_letter';
