"""Python functions that run inside Flink operators (in Python worker processes)."""
