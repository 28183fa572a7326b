-- Benchmark baseline: copy both input topics to the examples topic, nothing else.
-- Own source tables without event time or watermarks, so that this measures Kafka in
-- plus Kafka out alone (the joiner's tables.sql also parses `ts` for the watermark).
CREATE TEMPORARY TABLE features_copy (payload STRING) WITH (
  'connector' = 'kafka',
  'topic' = '${features_topic}',
  'format' = 'raw',
  ${source_options},
  ${features_scan}
);

CREATE TEMPORARY TABLE actions_copy (payload STRING) WITH (
  'connector' = 'kafka',
  'topic' = '${actions_topic}',
  'format' = 'raw',
  ${source_options},
  ${actions_scan}
);

CREATE TEMPORARY TABLE copy_sink (message STRING) WITH (
  'connector' = 'kafka',
  'topic' = '${examples_topic}',
  'format' = 'raw',
  ${sink_options}
);

INSERT INTO copy_sink
SELECT payload FROM features_copy
UNION ALL
SELECT payload FROM actions_copy;
