"""Experiment 1: collisionless vs hashed embedding tables (the paper's Table 1 / Fig. 7).

    freshet experiment hashing [--seeds 3] [--fractions 0.5,0.25,0.125]

DeepFM on MovieLens-100K, walk-forward (each rating scored before it is learnt).
The collisionless run gives every user and item ID its own row (cuckoo tables). Each
hashed run gives the ``user_id`` and ``item_id`` slots a fixed table with a fraction
of as many rows as that slot has distinct IDs (``row = mix64(id) mod rows``), so
colliding IDs share and train one embedding. The small slots (genre, gender, age,
occupation: at most 21 IDs) stay collisionless in every run, as the paper hashes
user and movie IDs only. Reported per table: the share of IDs that share their row
with another ID (the paper's "colliding IDs"), and the walk-forward AUC.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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
from experiments.walkforward import walk_forward
from freshet.data.movielens import default_model
from freshet.topics import Example
from ps import EmbeddingCollection
from ps.config import HashedTableConfig, SlotConfig
from ps.hashing import mix64_array

HASHED_SLOTS = ("user_id", "item_id")
FRACTIONS = (1 / 2, 1 / 4, 1 / 8)
WEEK_S = 7 * 86_400.0


def distinct_ids(examples: Sequence[Example], slot: str) -> np.ndarray:
    return np.unique(np.array([i for e in examples for i in e.slots.get(slot, [])], np.int64))


def hashed_collection(
    slots: Sequence[SlotConfig], rows: Mapping[str, int], seed: int
) -> EmbeddingCollection:
    """Collisionless tables, except a hashed table of ``rows[name]`` rows per named slot."""
    return EmbeddingCollection(
        [dataclasses.replace(s, table=HashedTableConfig(rows[s.name])) if s.name in rows else s
         for s in slots], seed=seed)


def colliding_share(coll: EmbeddingCollection, slot: str, ids: np.ndarray) -> float:
    """Share of ``ids`` whose row some other of ``ids`` maps to as well."""
    table = coll.slots[slot].table
    if table.collisionless:
        return 0.0
    homes = (mix64_array(ids, table.seed) % np.uint64(table.n_rows)).astype(np.int64)
    _, inverse, counts = np.unique(homes, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean())


def label(fraction: float | None) -> str:
    """``collisionless``, ``hashed_1/4`` (a quarter as many rows as IDs), ``hashed_8x``."""
    if fraction is None:
        return "collisionless"
    return f"hashed_{fraction:g}x" if fraction >= 1 else f"hashed_1/{round(1 / fraction)}"


def run(seeds: int = 3, fractions: Sequence[float] = FRACTIONS, limit: int = 0,
        out: str = "") -> dict[str, Any]:
    """Every variant for every seed; writes ``result.json`` and plots."""
    path = out_dir("hashing", out)
    exs = movielens_examples(limit)
    batches = micro_batches(exs, train_config(0).micro_batch)
    model = default_model()
    ids = {s: distinct_ids(exs, s) for s in HASHED_SLOTS}
    variants: list[float | None] = [None, *fractions]
    aucs: dict[str, list[float]] = {label(f): [] for f in variants}
    collide: dict[str, dict[str, float]] = {}
    curves: dict[str, tuple[Any, Any]] = {}
    for seed in range(seeds):
        for f in variants:
            name = label(f)
            coll = None
            if f is not None:
                rows = {s: max(1, math.ceil(len(ids[s]) * f)) for s in HASHED_SLOTS}
                coll = hashed_collection(model.slots, rows, seed)
            r = walk_forward(batches, model, train_config(seed), collection=coll)
            aucs[name].append(r.auc())
            print(f"[hashing] seed {seed} {name}: auc {r.auc():.4f} ({r.seconds:.0f}s)",
                  flush=True)
            if seed == 0:
                tables = r.trainer.tables
                collide[name] = {
                    **{f"{s}_rows": len(tables.slots[s]) for s in HASHED_SLOTS},
                    **{f"{s}_colliding": round(colliding_share(tables, s, ids[s]), 4)
                       for s in HASHED_SLOTS},
                }
                starts, w_auc, _ = auc_over_time(r.ts, r.online, r.labels, WEEK_S)
                curves[name] = (plots.dates(starts), w_auc)
    result = {
        "experiment": "hashing", "dataset": "movielens-100k", "model": "deepfm",
        "examples": len(exs), "distinct_ids": {s: len(v) for s, v in ids.items()},
        "auc": {k: mean_std(v) for k, v in aucs.items()},
        "tables": collide,
    }
    names = list(aucs)
    plots.bars(path / "hashing_auc.png", names, [result["auc"][n]["mean"] for n in names],
               [result["auc"][n]["std"] for n in names], "walk-forward AUC",
               f"DeepFM on MovieLens-100K, mean of {seeds} seeds",
               ylim=(min(result["auc"][n]["mean"] for n in names) - 0.02,
                     max(result["auc"][n]["mean"] for n in names) + 0.01))
    plots.lines(path / "hashing_auc_weekly.png", curves, "week (event time)", "AUC that week",
                "Walk-forward AUC per week, seed 0")
    write_result(path, result)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = base_args(__doc__)
    ap.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS),
                    help="hashed rows as fractions of each slot's distinct IDs")
    args = ap.parse_args(argv)
    return run(args.seeds, [float(x) for x in args.fractions.split(",")], args.limit, args.out)


if __name__ == "__main__":
    main()
