-- What the joiner writes: run together as one statement set (one Flink job).
-- `joiner_output_pt` is output.sql's `joiner_output` plus `pt`, the time it reached
-- the batching: processing time online (batches close on the clock), ingestion time
-- with a watermark 200 ms behind the clock in a bounded run (jobs/join.py: _bridge).

-- Examples, batched for the trainer: one message holds the examples of one shard
-- that arrived in one batch_interval, {"v":1,"examples":[{...},...]}, so training
-- decodes a whole mini-batch per message. (A window aggregate keeps one list per
-- shard and window: no per-row ordering state, unlike numbering rows with OVER.)
CREATE TEMPORARY VIEW example_messages AS
SELECT message, shard, pt FROM joiner_output_pt WHERE kind = 'example';

INSERT INTO examples_sink
SELECT '{"v":1,"examples":[' || ARRAY_JOIN(ARRAY_AGG(message), ',') || ']}'
FROM TABLE(TUMBLE(TABLE example_messages, DESCRIPTOR(pt), ${batch_interval}))
GROUP BY window_start, window_end, shard;

-- Dead letters: invalid records of both topics, and unmatched actions.
INSERT INTO dead_letters_sink
SELECT message FROM joiner_output_pt WHERE kind = 'dead_letter';
