-- Benchmark baseline: the joiner's own sources and parsing (tables.sql, parse.sql, with
-- the bridge after parsing) and nothing else: no join, no state. Each parsed record's
-- request_id, or its reason if invalid, goes to the examples topic. Any joiner that
-- must parse every record (to dead-letter the bad ones with a reason) is at most this
-- fast here; benchmarks.join reports it as `parse_only_events_per_s`.
INSERT INTO examples_sink (message)
SELECT COALESCE(request_id, reason) FROM features_parsed
UNION ALL
SELECT COALESCE(request_id, reason) FROM actions_parsed;
