"""PyFlink job entry points. Each module has ``build(cfg, env)`` and ``main()``, and
runs unchanged on the mini-cluster or under ``flink run -py``."""
