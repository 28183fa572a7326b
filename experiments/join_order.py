"""Why the demo's progressive AUC is higher than the walk-forward AUC: join order.

    freshet experiment join_order [--seeds 3]
    freshet experiment join_order --delay-ratings 0,250,1000 [--sync-every 1000]

The online joiner emits a positive when its click arrives (``action_delay_s`` after
the impression in the MovieLens replay) and a negative only when the join window
closes (``window_s`` plus the allowed out-of-orderness later). So the trainer reads
examples in an order that depends on their labels: runs of positives, then the
negatives of the same period. This experiment trains the same DeepFM walk-forward on
MovieLens in event-time order and in that emission order, and reports both AUCs.

With ``--delay-ratings`` the delay is counted in ratings instead, as the demo makes it:
it replays seven months in ~90 s (~1,100 ratings per wall second), and a negative
leaves its joiner a median 200 ms after the positives of the same event time (output
batches and watermark ticks; p99 3-4 s), i.e. hundreds of ratings later. Each negative
is trained ``K`` ratings after its impression (positives at once), and a serving copy
syncs every ``--sync-every`` ratings. The copy scores every rating when it is shown
(at its place in rating order, before the trainer has its label), as the demo's server
does; the trainer scores each example when it arrives, as the demo's trainer does.
Reported: both AUCs and the copy's mean predicted probability against the positive
share.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.common import (
    base_args,
    mean_std,
    out_dir,
    train_config,
    write_result,
)
from experiments.streams import micro_batches, movielens_examples
from experiments.walkforward import CopySpec, walk_forward
from freshet.config import JoinerConfig
from freshet.data.movielens import default_model
from freshet.topics import Example, ExampleBatch
from ps import evaluation

ACTION_DELAY_S = 5.0  # freshet.produce.movielens default


def joined_order(examples: list[Example], action_delay_s: float, close_s: float
                 ) -> list[Example]:
    """``examples`` in the order the joiner emits them: positives at their action,
    negatives at window close (stable for ties).

    Examples
    --------
    >>> e = [Example(str(i), 1, 1, ts, label) for i, (ts, label) in
    ...      enumerate([(0, 0), (1000, 1), (2000, 0), (70000, 1)])]
    >>> [x.request_id for x in joined_order(e, 5.0, 65.0)]
    ['1', '0', '2', '3']
    """
    def emitted(e: Example) -> float:
        return e.ts + 1000 * (action_delay_s if e.label else close_s)

    return sorted(examples, key=emitted)


def negatives_delayed(examples: Sequence[Example], delay: int) -> list[Example]:
    """``examples`` with each negative moved ``delay`` ratings later, stamped with
    their new position (one second a rating, so a copy's interval counts ratings).

    Examples
    --------
    >>> e = [Example(str(i), 1, 1, 0, label) for i, label in enumerate([0, 1, 1, 0])]
    >>> [(x.request_id, x.ts) for x in negatives_delayed(e, 2)]
    [('1', 1000), ('0', 2000), ('2', 2000), ('3', 5000)]
    """
    keyed = sorted((i + (0 if e.label else delay), i) for i, e in enumerate(examples))
    return [dataclasses.replace(examples[i], ts=k * 1000) for k, i in keyed]


def shown_per_step(examples: Sequence[Example], steps: Sequence[ExampleBatch]
                   ) -> list[ExampleBatch | None]:
    """Per step of :func:`negatives_delayed` batches: the examples shown (in rating
    order) from that step's first arrival up to the next step's, to score unlabelled.

    Examples
    --------
    >>> e = [Example(str(i), 1, 1, 0, label) for i, label in enumerate([0, 1, 1, 0])]
    >>> steps = micro_batches(negatives_delayed(e, 2), 2)
    >>> [None if b is None else b.request_id for b in shown_per_step(e, steps)]
    [['0', '1'], ['2', '3']]
    """
    bounds = [0, *(int(b.ts[0]) // 1000 for b in steps[1:]), len(examples)]
    out: list[ExampleBatch | None] = []
    for a, b in itertools.pairwise(bounds):
        shown = examples[a:b]
        out.append(micro_batches(shown, len(shown))[0] if shown else None)
    return out


def run_delayed(seeds: int = 3, delays: Sequence[int] = (0, 250, 1000),
                sync_every: float = 1000.0, limit: int = 0, out: str = "") -> dict[str, Any]:
    """Negatives ``K`` ratings late, for each ``K`` in ``delays``; a copy every
    ``sync_every`` ratings."""
    path = out_dir("join_order_delayed", out)
    exs = movielens_examples(limit)
    model = default_model()
    copy = CopySpec("copy", sync_every, sync_every)
    rows: dict[str, dict[str, list[float]]] = {}
    for delay in delays:
        steps = micro_batches(negatives_delayed(exs, delay), train_config(0).micro_batch)
        shown = shown_per_step(exs, steps)
        row = rows[f"{delay}"] = {"trainer_auc": [], "copy_auc": [], "copy_mean_p": []}
        for seed in range(seeds):
            r = walk_forward(steps, model, train_config(seed), copies=[copy], probes=shown)
            copy_auc = evaluation.auc(r.probed["copy"], r.probe_labels)
            mean_p = float(np.mean(1.0 / (1.0 + np.exp(-r.probed["copy"]))))
            row["trainer_auc"].append(r.auc())
            row["copy_auc"].append(copy_auc)
            row["copy_mean_p"].append(mean_p)
            print(f"[join_order] negatives {delay} ratings late, seed {seed}: trainer "
                  f"{r.auc():.4f}, copy {copy_auc:.4f}, copy mean p {mean_p:.3f}",
                  flush=True)
    result = {"experiment": "join_order_delayed", "dataset": "movielens-100k",
              "model": "deepfm", "sync_every_ratings": sync_every,
              "positive_share": float(np.mean([e.label for e in exs])),
              "by_delay_ratings": {k: {m: mean_std(v) for m, v in row.items()}
                                   for k, row in rows.items()}}
    write_result(path, result)
    return result


def run(seeds: int = 3, limit: int = 0, out: str = "") -> dict[str, Any]:
    path = out_dir("join_order", out)
    exs = movielens_examples(limit)
    j = JoinerConfig()
    orders = {"event_time": exs,
              "joiner_emission": joined_order(exs, ACTION_DELAY_S,
                                              j.window_s + j.out_of_orderness_s)}
    model = default_model()
    aucs: dict[str, list[float]] = {k: [] for k in orders}
    for seed in range(seeds):
        for name, order in orders.items():
            r = walk_forward(micro_batches(order, train_config(seed).micro_batch), model,
                             train_config(seed))
            aucs[name].append(r.auc())
            print(f"[join_order] seed {seed} {name}: auc {r.auc():.4f}", flush=True)
    result = {"experiment": "join_order", "dataset": "movielens-100k", "model": "deepfm",
              "action_delay_s": ACTION_DELAY_S, "window_close_s": j.window_s +
              j.out_of_orderness_s, "auc": {k: mean_std(v) for k, v in aucs.items()}}
    write_result(path, result)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = base_args(__doc__)
    ap.add_argument("--delay-ratings", default="",
                    help="comma-separated delays of the negatives, in ratings")
    ap.add_argument("--sync-every", type=float, default=1000.0,
                    help="with --delay-ratings: the copy's sync interval, in ratings")
    args = ap.parse_args(argv)
    if args.delay_ratings:
        delays = [int(x) for x in args.delay_ratings.split(",")]
        return run_delayed(args.seeds, delays, args.sync_every, args.limit, args.out)
    return run(args.seeds, args.limit, args.out)


if __name__ == "__main__":
    main()
