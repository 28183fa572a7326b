"""Freshet's ground and its application (docs/architecture.md has the layers).

The modules here are the ground every layer stands on: errors, config, topics and
event schemas, Kafka, the embedded broker, the JVM and Flink environments. Above
them: :mod:`freshet.data` (data sets and their model presets), :mod:`freshet.produce`
(event sources) and, on top, :mod:`freshet.app` (the CLI, submit, the demo).
"""
