"""Benchmark of the serving store (ps/serving/store.py) against whole-table snapshots.

Run ``python -m benchmarks.store [--rows N --updates K --rows-per-update R --rounds S]``.
The last line printed is one JSON object. A serving table of ``N`` rows (dim 16, fp32)
is saved as a base; then, ``S`` times, ``K`` sparse updates of ``R`` rows each (what
the loader applies between two saves; 10% of their IDs new) are applied and saved.
A thread sleeping 1 ms at a time measures the longest *stall*: how long a request
thread would have waited for the interpreter meanwhile. Figures:

- ``save_s``: median of the saves that appended to the log (``save_max_s``: slowest
  of all, including those that wrote a new base; ``saves_writing_a_base``);
- ``base_save_s``: the first base (every row);
- ``arrow_snapshot_s``: the tables written whole as one Arrow IPC file, the design the
  store replaced (it ran every ``serving.store_interval_s``), in the same run;
- ``load_s`` and ``arrow_restore_s``: reading each back into serving tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ps.collection import EmbeddingCollection
from ps.config import SlotConfig
from ps.serving.state import ServingState, serving_slots
from ps.serving.store import Position, ServingStore
from ps.serving.synthetic import sparse_rows

DIM = 16
SLOTS = [SlotConfig("item_id", dim=DIM)]


class StallWatch(threading.Thread):
    """The longest gap between the wake-ups of a thread that sleeps 1 ms at a time: how
    long another thread (a request) can wait for the interpreter while a save runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.gaps: list[float] = [0.0]
        self.done = threading.Event()

    def run(self) -> None:
        last = time.perf_counter()
        while not self.done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

    def timed(self, fn):  # noqa: ANN001, ANN201
        """``fn()``, its seconds and the longest stall (ms) while it ran."""
        self.gaps = [0.0]
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t, max(self.gaps) * 1000


def benchmark(rows: int, updates: int, rows_per_update: int, rounds: int = 20,
              seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    watch = StallWatch()
    watch.start()
    with tempfile.TemporaryDirectory() as tmp:
        store = ServingStore(Path(tmp) / "store")
        state = ServingState(SLOTS)
        for a in range(0, rows, 500_000):
            ids = np.arange(a, min(rows, a + 500_000))
            state.apply_sparse(sparse_rows({"item_id": (ids, rng.normal(size=(len(ids), DIM)))}),
                               0, 1)
        # A state the store did not load: its first save writes a base.
        base, base_s, base_stall = watch.timed(lambda: store.save(state, Position()))
        print(f"base of {base:,} rows in {base_s:.1f}s", file=sys.stderr, flush=True)
        fresh, saves, stalls, written = rows, [], [], []
        for _ in range(rounds):
            for _ in range(updates):
                n_new = rows_per_update // 10
                ids = np.concatenate([rng.integers(0, rows, rows_per_update - n_new),
                                      np.arange(fresh, fresh + n_new)])
                fresh += n_new
                state.apply_sparse(
                    sparse_rows({"item_id": (ids, rng.normal(size=(len(ids), DIM)))}), 0, 2)
            n, seconds, stall = watch.timed(lambda: store.save(state, Position()))
            written.append(n)
            saves.append(seconds)
            stalls.append(stall)
        logged = [s for s, n in zip(saves, written, strict=True) if n == updates * rows_per_update]
        store.close()
        arrow = Path(tmp) / "arrow"
        _, arrow_s, arrow_stall = watch.timed(lambda: state.tables.snapshot(arrow))
        with ServingStore(Path(tmp) / "store") as again:
            (back, _), load_s, _ = watch.timed(lambda: again.load(SLOTS))
        restored, arrow_restore_s, _ = watch.timed(
            lambda: EmbeddingCollection.restore(arrow, serving_slots(SLOTS)))
        probe = rng.integers(0, fresh, 10_000)
        same = ServingState(SLOTS, restored).read({"item_id": probe}).embeddings["item_id"]
        if not np.array_equal(back.read({"item_id": probe}).embeddings["item_id"], same):
            raise RuntimeError("the store's rows differ from the Arrow snapshot's")
    watch.done.set()
    save_s = statistics.median(logged)
    return {
        "rows": fresh, "dim": DIM, "updates": updates, "rows_per_update": rows_per_update,
        "rounds": rounds, "saves_writing_a_base": rounds - len(logged),
        "save_s": round(save_s, 4), "save_max_s": round(max(saves), 3),
        "save_stall_max_ms": round(max(stalls), 1),
        "base_save_s": round(base_s, 3), "base_stall_ms": round(base_stall, 1),
        "arrow_snapshot_s": round(arrow_s, 3), "arrow_snapshot_stall_ms": round(arrow_stall, 1),
        "arrow_over_save": round(arrow_s / save_s, 1),
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
