"""Benchmark of the serving store (ps/serving/store.py): incremental saves vs whole tables.

Run ``python -m benchmarks.store [--rows N --updates K --rows-per-update R]``. The last
line printed is one JSON object. A serving table of ``N`` rows (dim 16, fp32) is saved
once; then ``K`` sparse updates of ``R`` rows each (what the loader applies between two
saves; 10% of their IDs new) are applied and saved. Baselines in the same run, on the
same state:

- ``incremental_save_s``: the store's save after the updates (rows of the updates only);
- ``full_save_s``: the same store format rewriting every row (a state it did not load);
- ``arrow_snapshot_s``: the tables written whole as Arrow IPC (the format the store
  replaced, which ran every ``serving.snapshot_interval_s``);
- ``load_s`` and ``arrow_restore_s``: reading them back into serving tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from freshet.config import SlotConfig
from ps.collection import EmbeddingCollection
from ps.serving.state import ServingState, serving_slots
from ps.serving.store import Position, SnapshotStore
from ps.serving.synthetic import sparse_rows

DIM = 16
SLOTS = [SlotConfig("item_id", dim=DIM)]


def timed(fn):  # noqa: ANN001, ANN201
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def benchmark(rows: int, updates: int, rows_per_update: int, rounds: int = 20,
              seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = SnapshotStore(Path(tmp) / "store")
        state, _ = store.load(SLOTS)
        for a in range(0, rows, 500_000):
            ids = np.arange(a, min(rows, a + 500_000))
            state.apply_sparse(sparse_rows({"item_id": (ids, rng.normal(size=(len(ids), DIM)))}),
                               0, 1)
        written, first_s = timed(lambda: store.save(state, Position(offsets={0: 1})))
        print(f"saved {written:,} rows in {first_s:.1f}s", file=sys.stderr, flush=True)
        fresh, saves = rows, []
        for _ in range(rounds):
            for _ in range(updates):
                n_new = rows_per_update // 10
                ids = np.concatenate([rng.integers(0, rows, rows_per_update - n_new),
                                      np.arange(fresh, fresh + n_new)])
                fresh += n_new
                state.apply_sparse(
                    sparse_rows({"item_id": (ids, rng.normal(size=(len(ids), DIM)))}), 0, 2)
            changed, seconds = timed(lambda: store.save(state, Position(offsets={0: 2})))
            saves.append(seconds)
        incremental_s = statistics.median(saves)
        store.close()
        with SnapshotStore(Path(tmp) / "full") as other:
            full, full_s = timed(lambda: other.save(state, Position()))
        print(f"incremental {changed:,} rows in {incremental_s:.3f}s; full {full:,} rows in "
              f"{full_s:.1f}s", file=sys.stderr, flush=True)
        arrow = Path(tmp) / "arrow"
        _, arrow_s = timed(lambda: state.tables.snapshot(arrow))
        with SnapshotStore(Path(tmp) / "store") as again:
            (back, _), load_s = timed(lambda: again.load(SLOTS))
        restored, arrow_restore_s = timed(
            lambda: EmbeddingCollection.restore(arrow, serving_slots(SLOTS)))
        probe = rng.integers(0, fresh, 10_000)
        same = ServingState(SLOTS, restored).read({"item_id": probe}).embeddings["item_id"]
        if not np.array_equal(back.read({"item_id": probe}).embeddings["item_id"], same):
            raise RuntimeError("the store's rows differ from the Arrow snapshot's")
    return {
        "rows": fresh, "dim": DIM, "updates": updates, "rows_per_update": rows_per_update,
        "rows_written_incremental": changed, "rows_written_full": full,
        "rounds": rounds, "initial_save_s": round(first_s, 3),
        "incremental_save_s": round(incremental_s, 4),
        "incremental_save_first_last_max_s": [round(x, 4) for x in (saves[0], saves[-1],
                                                                   max(saves))],
        "full_save_s": round(full_s, 3), "arrow_snapshot_s": round(arrow_s, 3),
        "full_over_incremental": round(full_s / incremental_s, 1),
        "arrow_over_incremental": round(arrow_s / incremental_s, 1),
        "load_s": round(load_s, 3), "arrow_restore_s": round(arrow_restore_s, 3),
        "load_over_arrow_restore": round(load_s / arrow_restore_s, 2),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--updates", type=int, default=100, help="updates between two saves")
    ap.add_argument("--rows-per-update", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=20, help="saves timed (median reported)")
    args = ap.parse_args(argv)
    print(json.dumps(benchmark(args.rows, args.updates, args.rows_per_update, args.rounds)))


if __name__ == "__main__":
    main()
