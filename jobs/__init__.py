"""Job entry points, one module per process (join, train, replay, serve, smoke). The
Flink jobs have ``build(cfg, ...)`` and ``main()`` and run unchanged on the
mini-cluster or under ``flink run -py``; :mod:`jobs.manifest` and :mod:`jobs.metrics`
are what they share."""
