"""Quality benchmark: the paper's two headline comparisons on MovieLens-100K.

    python -m benchmarks.quality [--seeds 1] [--limit N]

DeepFM, walk-forward in time order (each rating scored before it is learnt), with
the experiments' runner (:mod:`experiments.walkforward`):

- collisionless tables vs hashed ``user_id``/``item_id`` tables with 1/2, 1/4 and
  1/8 as many rows as distinct IDs (:mod:`experiments.hashing`); at the paper's
  collision rates (Table 1: 7.73% of user IDs and 2.86% of movie IDs share a row,
  ``auc_hashed_paper_rate``); and with as many bytes as the collisionless tables hold
  (``auc_hashed_equal_memory``);
- serving copies receiving the trainer's sparse rows every 1 s, 1 min, 1 h of event
  time (dense weights daily) vs the online model copied at each midnight
  (``auc_batch_daily``, :mod:`experiments.sync`) and vs a model retrained from scratch
  each midnight on all data so far, three shuffled epochs (``auc_batch_retrained_daily``,
  :mod:`experiments.batch`; ``auc_online_1s_after_first_day`` scores the same days);
- the strongest simple baselines: user + item popularity counters scored per rating
  (``auc_popularity_user_item``) and before anything of the same second is known
  (``..._earlier_seconds``), and a logistic regression whose serving copy takes its
  rows and weights every second (``auc_lr_per_second``).

The last line printed is one JSON object; AUCs are means over ``--seeds``.
``freshet experiment ...`` runs the full experiments with plots (``docs/results.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

import numpy as np

from experiments.batch import DAY_MS, retrained_daily
from experiments.common import train_config
from experiments.hashing import HASHED_SLOTS, distinct_ids, hashed_collection
from experiments.streams import micro_batches, movielens_examples, second_batches
from experiments.sync import copies
from experiments.walkforward import CopySpec, walk_forward
from freshet.data.movielens import default_model, model_configs
from freshet.topics import Example
from ps import EmbeddingSlot
from ps.config import HashedTableConfig
from ps.evaluation import auc
from ps.hashing import mix64_array

HASHED = {"half": 1 / 2, "quarter": 1 / 4, "eighth": 1 / 8}
SYNC = {"1s": 1.0, "1min": 60.0, "1h": 3600.0}
PAPER_COLLIDING = {"user_id": 0.0773, "item_id": 0.0286}  # Monolith Table 1, MovieLens-25M


def colliding(ids: np.ndarray, rows: int, seed: int) -> float:
    """Share of ``ids`` whose hashed row another of them maps to as well."""
    homes = mix64_array(ids, seed) % np.uint64(rows)
    _, inverse, counts = np.unique(homes, return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean())


def rows_for_colliding(ids: np.ndarray, share: float, seed: int) -> int:
    """The fewest rows at which at most ``share`` of ``ids`` collide (bisection)."""
    lo, hi = len(ids), len(ids) * 4096
    while lo < hi:
        mid = (lo + hi) // 2
        if colliding(ids, mid, seed) <= share:
            hi = mid
        else:
            lo = mid + 1
    return lo


def popularity(exs: list[Example], by_second: bool) -> float:
    from udfs.popularity import UserItemPopularity

    pop, scores, labels = UserItemPopularity(), [], []
    batches = second_batches(exs) if by_second else micro_batches(exs, 1)
    for b in batches:
        scores.append(pop.score_then_learn(b.user_id, b.item_id, b.label))
        labels.append(b.label)
    return auc(np.concatenate(scores), np.concatenate(labels))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N ratings")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    exs = movielens_examples(args.limit)
    batches = micro_batches(exs, train_config(0).micro_batch)
    model = default_model()
    ids = {s: distinct_ids(exs, s) for s in HASHED_SLOTS}
    specs = copies(list(SYNC.values()))
    aucs: dict[str, list[float]] = {}
    changed: dict[str, float] = {}
    lr_model = model_configs(16)[1]
    by_second = second_batches(exs)
    paper_rows = {s: rows_for_colliding(ids[s], PAPER_COLLIDING[s], 0) for s in HASHED_SLOTS}
    after_first_day = np.array([e.ts // DAY_MS for e in exs]) > exs[0].ts // DAY_MS
    tables: dict[str, Any] = {}
    for seed in range(args.seeds):
        run = walk_forward(batches, model, train_config(seed), copies=specs)
        aucs.setdefault("auc_collisionless", []).append(run.auc())
        for c in specs:
            aucs.setdefault(f"auc_{c.name}", []).append(run.auc(c.name))
            changed[f"changed_since_sync_{c.name}"] = round(float(run.stale[c.name].mean()), 4)
        aucs.setdefault("auc_online_1s_after_first_day", []).append(
            auc(run.served["online_1s"][after_first_day], run.labels[after_first_day]))
        slot_bytes = {s: run.trainer.tables.slots[s].nbytes for s in HASHED_SLOTS}
        equal_rows = {s: _equal_memory_rows(model, s, slot_bytes[s]) for s in HASHED_SLOTS}
        variants = {**{name: {s: max(1, math.ceil(len(ids[s]) * f)) for s in HASHED_SLOTS}
                       for name, f in HASHED.items()},
                    "paper_rate": paper_rows, "equal_memory": equal_rows}
        for name, rows in variants.items():
            coll = hashed_collection(model.slots, rows, seed)
            r = walk_forward(batches, model, train_config(seed), collection=coll)
            aucs.setdefault(f"auc_hashed_{name}", []).append(r.auc())
            if seed == 0 and name in ("paper_rate", "equal_memory"):
                tables[name] = {s: {"rows": rows[s], "colliding": round(colliding(
                    ids[s], rows[s], coll.slots[s].table.seed), 4)} for s in HASHED_SLOTS}
        tables["collisionless_bytes"] = slot_bytes
        lr_run = walk_forward(by_second, lr_model, train_config(seed),
                              copies=[CopySpec("1s", 1.0, 1.0)])
        aucs.setdefault("auc_lr", []).append(lr_run.auc())
        aucs.setdefault("auc_lr_per_second", []).append(lr_run.auc("1s"))
        t = time.monotonic()
        logits, labels = retrained_daily(exs, model, train_config(seed), seed=seed)
        aucs.setdefault("auc_batch_retrained_daily", []).append(auc(logits, labels))
        changed["batch_retrained_daily_s"] = round(time.monotonic() - t, 1)
        print(json.dumps({"seed": seed, **{k: round(v[-1], 4) for k, v in aucs.items()}}),
              flush=True)
    aucs["auc_popularity_user_item"] = [popularity(exs, by_second=False)]
    aucs["auc_popularity_user_item_earlier_seconds"] = [popularity(exs, by_second=True)]
    result: dict[str, Any] = {"dataset": "movielens-100k", "model": "deepfm",
                              "examples": len(exs), "seeds": args.seeds}
    result.update({k: round(float(np.mean(v)), 4) for k, v in aucs.items()})
    if args.seeds > 1:
        result.update({f"{k}_std": round(float(np.std(v)), 4) for k, v in aucs.items()})
    result.update(changed)
    result["distinct_ids"] = {s: len(v) for s, v in ids.items()}
    result["hashed_tables"] = tables
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    return result


def _equal_memory_rows(model: Any, slot: str, nbytes: int) -> int:
    """Rows of a hashed table of ``slot`` that take ``nbytes`` (rows are all allocated)."""
    cfg = next(s for s in model.slots if s.name == slot)
    per_row = EmbeddingSlot(cfg, table=HashedTableConfig(rows=1024)).nbytes / 1024
    return max(1, int(nbytes // per_row))


if __name__ == "__main__":
    main()
