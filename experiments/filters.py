"""Experiment 3: occurrence threshold and expiry vs table memory vs AUC.

    freshet experiment filters [--seeds 3]

DeepFM on MovieLens-100K, walk-forward, collisionless tables. The ``user_id`` and
``item_id`` slots get

- an occurrence threshold ``min_count``: an ID gets a row only from its
  ``min_count``-th sighting (a count-min sketch of 4 x 16,384 counters per slot);
  until then it reads zeros and is not trained;
- or an expiry ``ttl``: a row not updated for ``ttl`` of event time is deleted
  (checked every hour of event time); a returning ID starts from a fresh row.

Reported: walk-forward AUC, live rows at the end and at their peak, the tables'
committed bytes and the sketches' bytes, and live rows over time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from experiments import plots
from experiments.common import (
    base_args,
    mean_std,
    out_dir,
    train_config,
    write_result,
)
from experiments.streams import micro_batches, movielens_examples
from experiments.walkforward import DAY_S, walk_forward
from freshet.config import ModelConfig
from freshet.data.movielens import default_model
from ps.config import AdmissionConfig, ExpiryConfig

FILTERED_SLOTS = ("user_id", "item_id")
MIN_COUNTS = (1, 2, 3, 5, 10)
TTLS_DAYS = (30.0, 7.0, 1.0)
SKETCH_WIDTH = 1 << 14  # plenty for 2,625 IDs; the default 2**20 would dwarf the tables


def with_policy(model: ModelConfig, min_count: int = 1, ttl_s: float = 0.0) -> ModelConfig:
    """``model`` with the threshold and expiry set on the user and item slots."""
    slots = [
        dataclasses.replace(s, admission=AdmissionConfig(min_count, sketch_width=SKETCH_WIDTH),
                            expiry=ExpiryConfig(ttl_s))
        if s.name in FILTERED_SLOTS else s
        for s in model.slots
    ]
    return dataclasses.replace(model, slots=slots)


def variants() -> dict[str, tuple[int, float]]:
    """Name -> (min_count, ttl_s)."""
    out = {f"min_count_{k}": (k, 0.0) for k in MIN_COUNTS}
    out.update({f"ttl_{d:g}d": (1, d * DAY_S) for d in TTLS_DAYS})
    return out


def run(seeds: int = 3, limit: int = 0, out: str = "") -> dict[str, Any]:
    path = out_dir("filters", out)
    exs = movielens_examples(limit)
    batches = micro_batches(exs, train_config(0).micro_batch)
    base = default_model()
    aucs: dict[str, list[float]] = {name: [] for name in variants()}
    memory: dict[str, dict[str, int]] = {}
    curves: dict[str, Any] = {}
    for seed in range(seeds):
        for name, (min_count, ttl_s) in variants().items():
            model = with_policy(base, min_count, ttl_s)
            r = walk_forward(batches, model, train_config(seed),
                             evict_every_s=3600.0 if ttl_s else 0.0)
            aucs[name].append(r.auc())
            print(f"[filters] seed {seed} {name}: auc {r.auc():.4f} rows {len(r.trainer.tables)}"
                  f" ({r.seconds:.0f}s)", flush=True)
            if seed == 0:
                tables = r.trainer.tables.slots
                memory[name] = {
                    "rows_final": r.sizes[-1]["rows"],
                    "rows_peak": max(s["rows"] for s in r.sizes),
                    "table_bytes": sum(s.table.nbytes for s in tables.values()),
                    "sketch_bytes": sum(s.filter.nbytes for s in tables.values()),
                    "filtered_sightings": sum(s.filtered for s in tables.values()),
                }
                curves[name] = (plots.dates([s["ts"] for s in r.sizes]),
                                [s["rows"] for s in r.sizes])
    result = {
        "experiment": "filters", "dataset": "movielens-100k", "model": "deepfm",
        "examples": len(exs), "slots_filtered": list(FILTERED_SLOTS),
        "auc": {k: mean_std(v) for k, v in aucs.items()}, "memory": memory,
    }
    names = list(aucs)
    plots.lines(
        path / "filters_auc_vs_rows.png",
        {n: ([memory[n]["rows_peak"]], [result["auc"][n]["mean"]]) for n in names},
        "peak live rows (all slots)", "walk-forward AUC",
        f"Threshold / expiry: memory vs AUC (mean of {seeds} seeds)", markers=True,
    )
    plots.lines(path / "filters_rows_over_time.png",
                {n: curves[n] for n in ("min_count_1", "ttl_30d", "ttl_7d", "ttl_1d",
                                        "min_count_5") if n in curves},
                "event time", "live rows", "Table rows over time (seed 0)")
    write_result(path, result)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = base_args(__doc__).parse_args(argv)
    return run(args.seeds, args.limit, args.out)


if __name__ == "__main__":
    main()
