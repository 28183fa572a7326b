"""Benchmarks: ``python -m benchmarks.<name>``; each prints one JSON object last."""
