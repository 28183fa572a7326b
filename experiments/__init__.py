"""The paper's experiments, in-process on the real trainer and serving code.

Every experiment walks a stream forward in event-time order through one shared
runner (:mod:`experiments.walkforward`): each example is scored before the trainer
learns from it, by the trainer itself (pure online) and by serving copies that only
see the trainer's rows at their sync times. One module per experiment:

==================================  ===================================================
:mod:`experiments.hashing`          collisionless vs hashed tables (paper Table 1 / Fig. 7)
:mod:`experiments.sync`             sparse sync interval vs daily batch (paper Table 2)
:mod:`experiments.filters`          occurrence threshold and expiry vs memory vs AUC
:mod:`experiments.drift`            a regime change: online vs daily batch over time
:mod:`experiments.fresh_signals`    serving-time statistics and history vs a per-second LR
:mod:`experiments.scale`            one model across P row owners and W workers (issue 22)
==================================  ===================================================

Run one with ``freshet experiment NAME`` (or ``python -m experiments.NAME``); results
go to ``<work_dir>/experiments/NAME/`` (``result.json`` and PNG plots).

:mod:`experiments.tune`             (``freshet tune``) walks the same runner over a range of the
examples topic once per setting of a grid and writes the best; it trains in-process,
so it is not a Flink job.
"""
