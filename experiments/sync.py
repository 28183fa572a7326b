"""Experiment 2: sparse sync interval vs a daily batch model (the paper's Table 2).

    freshet experiment sync [--seeds 3] [--intervals 1,10,60,600,3600,21600,86400,604800]
    freshet experiment sync --per-rating [--intervals 64,500,1000,2000,4000,8000,16000]

One DeepFM trainer learns every MovieLens-100K rating in time order. Serving copies
score each rating before the trainer learns it, holding only what they received:

- ``online_S``: the trainer's changed embedding rows every ``S`` seconds of event
  time, dense weights daily (Monolith's production setting: sparse often, dense
  daily). Rows travel the serving path: drained from the trainer's tables, encoded
  for the params topic, reassembled and applied (:mod:`experiments.serving_copy`).
- ``batch_daily``: sparse rows and dense weights at each UTC midnight only: a model
  built from all data up to the day boundary and deployed then, stale within the day.
  Trained in one time-ordered pass, that model is exactly the trainer's state at
  midnight, so it is not trained separately.
- ``online`` (no sync lag): the trainer's own scores, the limit of ``S -> 0``.

``--per-rating`` counts the intervals in ratings instead: each rating is stamped with
its index (one second per rating), and each copy takes sparse rows and dense weights
every ``S`` ratings. That is the yardstick for the demo, whose replay compresses seven
months into ~90 s, so a lag of a few wall seconds is thousands of ratings.

Per copy the result also gives the share of ratings whose user or item row the
trainer had changed since the copy's last sparse sync: only those ratings can score
differently from the trainer's own, which bounds what any sync interval can change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from experiments import plots
from experiments.common import (
    auc_over_time,
    base_args,
    mean_std,
    out_dir,
    train_config,
    write_result,
)
from experiments.streams import micro_batches, movielens_examples
from experiments.walkforward import DAY_S, CopySpec, Run, walk_forward
from freshet.data.movielens import default_model
from freshet.topics import Example

INTERVALS = (1.0, 10.0, 60.0, 600.0, 3600.0, 21_600.0, DAY_S, 7 * DAY_S)
PER_RATING_INTERVALS = (64.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16_000.0)
HEADLINE = {"online_1s": 1.0, "online_1min": 60.0, "online_1h": 3600.0}
WEEK_S = 7 * DAY_S


def interval_name(seconds: float) -> str:
    """``online_1s``, ``online_10min``, ``online_6h``, ``online_1d`` ...

    Examples
    --------
    >>> [interval_name(s) for s in (1, 60, 600, 3600, 86400)]
    ['online_1s', 'online_1min', 'online_10min', 'online_1h', 'online_1d']
    """
    for unit, size in (("d", DAY_S), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"online_{int(seconds // size)}{unit}"
    return f"online_{seconds:g}s"


def copies(intervals: Sequence[float]) -> list[CopySpec]:
    """A copy per sparse interval (dense daily) and the daily batch model."""
    out = [CopySpec(interval_name(s), s, DAY_S) for s in intervals]
    return [*out, CopySpec("batch_daily", DAY_S, DAY_S)]


def _walk_seeds(batches: Sequence[Any], specs: Sequence[CopySpec], seeds: int
                ) -> tuple[dict[str, list[float]], Run | None]:
    """AUCs per seed of the trainer and every copy, and seed 0's run."""
    model = default_model()
    aucs: dict[str, list[float]] = {"online": [], **{c.name: [] for c in specs}}
    first = None
    for seed in range(seeds):
        r = walk_forward(batches, model, train_config(seed), copies=specs)
        aucs["online"].append(r.auc())
        for c in specs:
            aucs[c.name].append(r.auc(c.name))
        print(f"[sync] seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in aucs.items())
              + f" ({r.seconds:.0f}s)", flush=True)
        if first is None:
            first = r
    return aucs, first


def run(seeds: int = 3, intervals: Sequence[float] = INTERVALS, limit: int = 0,
        out: str = "") -> dict[str, Any]:
    path = out_dir("sync", out)
    exs = movielens_examples(limit)
    specs = copies(intervals)
    aucs, r = _walk_seeds(micro_batches(exs, train_config(0).micro_batch), specs, seeds)
    stale: dict[str, float] = {}
    syncs: dict[str, int] = {}
    sync_mb: dict[str, float] = {}
    curves: dict[str, Any] = {}
    if r is not None:
        stale = {c.name: round(float(r.stale[c.name].mean()), 4) for c in specs}
        syncs = dict(r.syncs)
        sync_mb = {k: round(v / 1e6, 2) for k, v in r.sync_bytes.items()}
        for name in ("online", "online_1s", "online_1h", "batch_daily"):
            if name == "online" or name in r.served:
                scores = r.online if name == "online" else r.served[name]
                starts, w, _ = auc_over_time(r.ts, scores, r.labels, WEEK_S)
                curves[name] = (plots.dates(starts), w)
    result = {
        "experiment": "sync", "dataset": "movielens-100k", "model": "deepfm",
        "examples": len(exs), "dense_sync": "daily (batch_daily: daily too)",
        "auc": {k: mean_std(v) for k, v in aucs.items()},
        "changed_since_sync": stale, "sparse_syncs": syncs, "sync_mb": sync_mb,
    }
    online = [c for c in specs if c.name != "batch_daily"]
    xs = [c.sparse_every_s for c in online]
    plots.lines(
        path / "sync_auc_vs_interval.png",
        {"online, sparse every S (dense daily)": (xs, [result["auc"][c.name]["mean"]
                                                        for c in online]),
         "batch daily": (xs, [result["auc"]["batch_daily"]["mean"]] * len(xs)),
         "no sync lag (trainer)": (xs, [result["auc"]["online"]["mean"]] * len(xs))},
        "sparse sync interval S, event-time seconds (log)", "walk-forward AUC",
        f"MovieLens-100K DeepFM, mean of {seeds} seeds", logx=True, markers=True,
    )
    plots.lines(
        path / "sync_changed_share.png",
        {"ratings whose user/item row changed since the last sync":
             (xs, [stale.get(c.name, 0.0) for c in online])},
        "sparse sync interval S, event-time seconds (log)", "share of ratings",
        "What a sync interval can change (seed 0)", logx=True, markers=True,
    )
    plots.lines(path / "sync_auc_weekly.png", curves, "week (event time)", "AUC that week",
                "Walk-forward AUC per week, seed 0")
    write_result(path, result)
    return result


def by_rating_index(examples: Sequence[Example]) -> list[Example]:
    """The examples stamped one second apart, in order: event time counts ratings.

    Examples
    --------
    >>> from freshet.topics import Example
    >>> exs = [Example("r", 1, 2, 881250949000, 1), Example("s", 1, 3, 881250949000, 0)]
    >>> [e.ts for e in by_rating_index(exs)]
    [0, 1000]
    """
    return [dataclasses.replace(e, ts=i * 1000) for i, e in enumerate(examples)]


def run_per_rating(seeds: int = 3, intervals: Sequence[float] = PER_RATING_INTERVALS,
                   limit: int = 0, out: str = "") -> dict[str, Any]:
    """Copies syncing sparse rows and dense weights every ``S`` ratings."""
    path = out_dir("sync_per_rating", out)
    exs = by_rating_index(movielens_examples(limit))
    specs = [CopySpec(f"every_{s:g}_ratings", s, s) for s in intervals]
    aucs, _ = _walk_seeds(micro_batches(exs, train_config(0).micro_batch), specs, seeds)
    result = {
        "experiment": "sync_per_rating", "dataset": "movielens-100k", "model": "deepfm",
        "examples": len(exs), "dense_sync": "with the sparse rows",
        "auc": {k: mean_std(v) for k, v in aucs.items()},
    }
    write_result(path, result)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = base_args(__doc__)
    ap.add_argument("--intervals", default="",
                    help="sync intervals: event-time seconds (sparse; dense daily), or "
                         "ratings with --per-rating (sparse and dense)")
    ap.add_argument("--per-rating", action="store_true",
                    help="count intervals in ratings, not event-time seconds")
    args = ap.parse_args(argv)
    given = [float(x) for x in args.intervals.split(",")] if args.intervals else None
    if args.per_rating:
        return run_per_rating(args.seeds, given or PER_RATING_INTERVALS, args.limit, args.out)
    return run(args.seeds, given or INTERVALS, args.limit, args.out)


if __name__ == "__main__":
    main()
