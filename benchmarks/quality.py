"""Quality benchmark: the paper's two headline comparisons on MovieLens-100K.

    python -m benchmarks.quality [--seeds 1] [--limit N]

DeepFM, walk-forward in time order (each rating scored before it is learnt), with
the experiments' runner (:mod:`experiments.walkforward`):

- collisionless tables vs hashed ``user_id``/``item_id`` tables with 1/2, 1/4 and
  1/8 as many rows as distinct IDs (:mod:`experiments.hashing`);
- serving copies receiving the trainer's sparse rows every 1 s, 1 min, 1 h of event
  time (dense weights daily) vs a daily batch model (:mod:`experiments.sync`).

The last line printed is one JSON object: ``auc_collisionless`` (the trainer's own
scores), ``auc_hashed_half``/``_quarter``/``_eighth``, ``auc_online_1s``/``_1min``/
``_1h``, ``auc_batch_daily``, means over ``--seeds``. ``freshet experiment ...``
runs the full experiments with plots (``docs/results.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

import numpy as np

from experiments.common import movielens_model, train_config
from experiments.hashing import HASHED_SLOTS, distinct_ids, hashed_collection
from experiments.streams import micro_batches, movielens_examples
from experiments.sync import copies
from experiments.walkforward import walk_forward

HASHED = {"half": 1 / 2, "quarter": 1 / 4, "eighth": 1 / 8}
SYNC = {"1s": 1.0, "1min": 60.0, "1h": 3600.0}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N ratings")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    exs = movielens_examples(args.limit)
    batches = micro_batches(exs, train_config(0).micro_batch)
    model = movielens_model()
    ids = {s: distinct_ids(exs, s) for s in HASHED_SLOTS}
    specs = copies(list(SYNC.values()))
    aucs: dict[str, list[float]] = {}
    changed: dict[str, float] = {}
    for seed in range(args.seeds):
        run = walk_forward(batches, model, train_config(seed), copies=specs)
        aucs.setdefault("auc_collisionless", []).append(run.auc())
        for c in specs:
            aucs.setdefault(f"auc_{c.name}", []).append(run.auc(c.name))
            changed[f"changed_since_sync_{c.name}"] = round(float(run.stale[c.name].mean()), 4)
        for name, fraction in HASHED.items():
            rows = {s: max(1, math.ceil(len(ids[s]) * fraction)) for s in HASHED_SLOTS}
            coll = hashed_collection(model.slots, rows, seed)
            r = walk_forward(batches, model, train_config(seed), collection=coll)
            aucs.setdefault(f"auc_hashed_{name}", []).append(r.auc())
        print(json.dumps({"seed": seed, **{k: round(v[-1], 4) for k, v in aucs.items()}}),
              flush=True)
    result: dict[str, Any] = {"dataset": "movielens-100k", "model": "deepfm",
                              "examples": len(exs), "seeds": args.seeds}
    result.update({k: round(float(np.mean(v)), 4) for k, v in aucs.items()})
    if args.seeds > 1:
        result.update({f"{k}_std": round(float(np.std(v)), 4) for k, v in aucs.items()})
    result.update(changed)
    result["distinct_ids"] = {s: len(v) for s, v in ids.items()}
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
