-- Kafka tables of the online joiner.
--
-- jobs/join.py fills in the ${...} placeholders from the one config (freshet.toml);
-- everything else here is plain Flink SQL, to read and edit.
--
-- Sources use the `raw` format (the whole record value as one STRING): Flink's json
-- format would skip malformed records silently; this way every record reaches
-- parse.sql, which sends the bad ones to the dead-letter topic with a reason.
--
-- Event time is the record's `ts` if that is within max_clock_skew of the broker
-- timestamp, else the broker timestamp: a missing or absurd `ts` (dead-lettered in
-- parse.sql) must not drag the watermark to 1970 or to the year 3000. `record_ts`
-- (functions.sql) reads `ts` from the record.

-- Impressions: features logged at serving time, one per (request_id, item_id) shown.
CREATE TEMPORARY TABLE features_raw (
  payload STRING,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  rowtime AS CASE
    WHEN TO_TIMESTAMP_LTZ(record_ts(payload), 3)
         BETWEEN kafka_ts - ${max_clock_skew} AND kafka_ts + ${max_clock_skew}
    THEN TO_TIMESTAMP_LTZ(record_ts(payload), 3)
    ELSE kafka_ts
  END,
  WATERMARK FOR rowtime AS rowtime - ${out_of_orderness}
) WITH (
  'connector' = 'kafka',
  'topic' = '${features_topic}',
  'format' = 'raw',
  ${source_options},
  ${features_scan}
);

-- User actions (click, like, finish) on an impression.
CREATE TEMPORARY TABLE actions_raw (
  payload STRING,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  rowtime AS CASE
    WHEN TO_TIMESTAMP_LTZ(record_ts(payload), 3)
         BETWEEN kafka_ts - ${max_clock_skew} AND kafka_ts + ${max_clock_skew}
    THEN TO_TIMESTAMP_LTZ(record_ts(payload), 3)
    ELSE kafka_ts
  END,
  WATERMARK FOR rowtime AS rowtime - ${out_of_orderness}
) WITH (
  'connector' = 'kafka',
  'topic' = '${actions_topic}',
  'format' = 'raw',
  ${source_options},
  ${actions_scan}
);

-- Labelled examples: each message is one batch, {"v":1,"examples":[...]} (docs/joiner.md),
-- its timestamp the event time up to which the joiner had decided (insert.sql). Each
-- writing subtask keeps to its own partition, so a partition's timestamps never
-- decrease (udfs/java: ExampleBatcher, SubtaskPartitioner).
CREATE TEMPORARY TABLE examples_sink (
  message STRING,
  decided TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  'connector' = 'kafka',
  'topic' = '${examples_topic}',
  'format' = 'raw',
  'sink.partitioner' = 'io.freshet.udf.SubtaskPartitioner',
  ${examples_sink_options}
);

-- Dead letters: {"v":1,"source":...,"reason":...,"payload":...,"ts":...} (docs/events.md).
CREATE TEMPORARY TABLE dead_letters_sink (
  message STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${dead_letters_topic}',
  'format' = 'raw',
  ${dead_letters_sink_options}
);
