"""Benchmark of the collisionless embedding table (ps/), against a Python dict.

Run ``python -m benchmarks.cuckoo [--keys N --dim D --optimizer adagrad]``. The last
line printed is one JSON object. Rates are medians over rounds; the dict baseline
is timed in the same process, interleaved round by round with the table, because
on a shared machine only ratios are stable.

Measured (batch 65,536 keys):

- ``insert_keys_per_s``: ``pull(train=True)`` of new keys (index insert, row
  allocation, initialisation, gather of the new embeddings).
- ``lookup_keys_per_s``: ``lookup`` of existing keys: probe + gather of embeddings.
- ``probe_keys_per_s``: the index probe alone (ID -> row number).
- ``dict_lookup_keys_per_s``: ``{id: row}`` dict looked up over the same batches
  (``ids.tolist()`` then one ``d[k]`` per key into an int64 array): row numbers
  only, no values, so it does less work than ``lookup``.
- ``gather_rows_per_s``: row numbers -> embeddings.
- ``push_keys_per_s``: ``push`` of gradients (optimizer step) for existing keys.
- ``numpy_probe_keys_per_s``: the same probe written as vectorized NumPy (no JIT),
  the alternative the numba kernels were chosen over.
- ``load_factor_at_grow``: load of the index when it last had to grow (the largest
  table); ``load_factor_at_grow_min``: over all growths.
- ``bytes_per_entry``: ``nbytes() / keys`` (index + committed row store);
  ``raw_bytes_per_entry``: key + embedding + optimizer state;
  ``rss_bytes_per_entry``: growth of the process RSS while inserting, as a check.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from benchmarks.proc import rss_bytes
from ps import EmbeddingCollection
from ps.config import SlotConfig, optimizer_config, optimizer_kinds
from ps.table.cuckoo import BUCKET, ROW_WORD


def rate(n: int, fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def numpy_probe(buckets: np.ndarray, n_buckets: int, seed: np.uint64, ids: np.ndarray
                ) -> np.ndarray:
    """The cuckoo probe in plain NumPy: hash, gather both buckets, compare."""
    x = ids.astype(np.uint64) ^ seed
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    mask = np.uint64(n_buckets - 1)
    rows = np.full(len(ids), -1, np.int64)
    h0 = (x & mask).astype(np.int64)
    h1 = n_buckets + ((x >> np.uint64(32)) & mask).astype(np.int64)
    rows32 = buckets.view(np.int32)
    for home in (h0, h1):
        hit = buckets[home, :BUCKET] == ids[:, None]  # (n, 5): the line's keys
        found = hit.any(axis=1)
        rows[found] = rows32[home[found], ROW_WORD + hit[found].argmax(axis=1)]
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--batch", type=int, default=65_536)
    ap.add_argument("--optimizer", default="adagrad", choices=optimizer_kinds())
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n, b, dim = args.keys, args.batch, args.dim
    rng = np.random.default_rng(args.seed)
    keys = np.unique(rng.integers(-(2**62), 2**62, int(n * 1.001)))[:n]
    rng.shuffle(keys)
    slot = SlotConfig("item_id", dim=dim, optimizer=optimizer_config(args.optimizer))

    # Warm the JIT (cached on disk after the first run) outside the timings.
    warm = EmbeddingCollection([slot])
    warm.pull("item_id", keys[:1000], now=0.0)
    warm.push("item_id", keys[:1000], np.zeros((1000, dim), np.float32), now=0.0)
    warm.lookup("item_id", keys[:1000])

    coll = EmbeddingCollection([slot], seed=args.seed)
    table = coll.slots["item_id"].table
    rss0 = rss_bytes()
    insert_rates = []
    for i in range(0, n, b):
        batch = keys[i : i + b]
        insert_rates.append(rate(len(batch), lambda batch=batch: coll.pull("item_id", batch, 0.0)))
    rss_per_entry = (rss_bytes() - rss0) / n
    assert len(coll) == n

    d = dict(zip(keys.tolist(), range(n), strict=True))
    lookup, probe, dict_rates, gather, push, np_probe = [], [], [], [], [], []
    grads = np.ones((b, dim), np.float32) * 1e-3
    for _ in range(args.rounds):
        q = keys[rng.integers(0, n, b)]
        dict_rates.append(rate(b, lambda q=q: np.fromiter((d[k] for k in q.tolist()), np.int64, b)))
        lookup.append(rate(b, lambda q=q: coll.lookup("item_id", q)))
        probe.append(rate(b, lambda q=q: table.find(q)))
        rows = table.find(q)
        gather.append(rate(b, lambda rows=rows: table.rows.gather(rows, dim)))
        push.append(rate(b, lambda q=q: coll.push("item_id", q, grads, 1.0)))
        np_probe.append(rate(b, lambda q=q: numpy_probe(
            table._buckets, table.n_buckets, table.seed, q)))
    # correctness spot check: the table agrees with the dict
    q = keys[rng.integers(0, n, b)]
    assert (table.rows.ids[table.find(q)] == q).all()
    assert (numpy_probe(table._buckets, table.n_buckets, table.seed, q) == table.find(q)).all()

    width = table.rows.width
    med = statistics.median
    result = {
        "keys": n,
        "dim": dim,
        "optimizer": args.optimizer,
        "batch": b,
        "lookup_keys_per_s": round(med(lookup)),
        "insert_keys_per_s": round(med(insert_rates)),
        "dict_lookup_keys_per_s": round(med(dict_rates)),
        "lookup_vs_dict": round(med(lookup) / med(dict_rates), 2),
        "probe_keys_per_s": round(med(probe)),
        "gather_rows_per_s": round(med(gather)),
        "push_keys_per_s": round(med(push)),
        "numpy_probe_keys_per_s": round(med(np_probe)),
        "load_factor_at_grow": round(table.grow_loads[-1], 4),
        "load_factor_at_grow_min": round(min(table.grow_loads), 4),
        "load_factor": round(len(table) / table.slots, 4),
        "bytes_per_entry": round(coll.nbytes() / n, 1),
        "raw_bytes_per_entry": 8 + 4 * width,
        "rss_bytes_per_entry": round(rss_per_entry, 1),
    }
    result["bytes_vs_raw"] = round(result["bytes_per_entry"] / result["raw_bytes_per_entry"], 3)
    for k, v in result.items():
        print(f"{k:>26}: {v}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
