-- What the joiner writes: run together as one statement set (one Flink job).

-- Examples, batched for the trainer (jobs/join.py: example_batches): one message
-- holds the examples of one shard that reached the batching in one batch_interval,
-- {"v":1,"examples":[{...},...]}, so training decodes a whole mini-batch per message.
-- Its Kafka timestamp (`decided`) is the event time up to which the join had emitted
-- every example when the message was written: the trainer's event-time order waits
-- for it (udfs/hold.py), and a replay's --from/--to select messages by it.
INSERT INTO examples_sink
SELECT message, decided FROM example_batches;

-- Dead letters: invalid records of both topics, and unmatched actions.
INSERT INTO dead_letters_sink
SELECT message FROM joiner_rows WHERE kind = 'dead_letter';
