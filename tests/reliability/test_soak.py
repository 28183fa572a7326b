"""Soak: millions of distinct user IDs through one trainer shard with expiry on.

Every example carries a user ID never seen before, so without expiry the user table
(and the shard's state log) would grow by one row per example. With ``ttl_s`` on the
slot, rows idle for longer than the ttl (event time) are evicted at each sparse sync,
and the process's resident memory must level off. The test drives
:class:`udfs.shard.ShardWorker` (what the Flink operator runs, minus Flink) with an
in-memory state store, samples RSS along the way, and checks the plateau.

Size: ``make test`` runs 2,000,000 IDs (~30-60 s on 2 shared cores): ttl x rate keeps
~120,000 user rows live, so the second quarter of the run (which the last is compared
with) starts after 4 x that many IDs, and a run without expiry fails both checks (at
2M IDs: live rows 2M, RSS 967 -> 1,291 MiB from the 2nd to the last quarter, measured
with ``soak(ttl_s=0)``). The full 10,000,000 IDs of ``docs/reliability.md`` (~4-20 min):
``FRESHET_SOAK_IDS=10000000 .venv/bin/python -m pytest -q -s tests/reliability/test_soak.py``,
or ``python tests/reliability/test_soak.py OUT_DIR`` (10M unless ``FRESHET_SOAK_IDS``
says otherwise), which writes ``soak.json`` and ``soak_rss.png`` (the figures there).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from freshet.config import Config, ModelConfig, SyncConfig, TrainConfig
from ps.config import ExpiryConfig, SlotConfig

FULL = 10_000_000  # docs/reliability.md's run
TOTAL = int(os.environ.get("FRESHET_SOAK_IDS", 2_000_000))  # make test's
PER_MESSAGE = 2_000
EVENT_MS_PER_EXAMPLE = 1  # 1,000 examples per event-time second
TTL_S = 120.0  # so about 120,000 user rows are live at any time
ITEMS = 50_000  # item IDs repeat (a catalogue); users never do


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def message(first: int, rng: np.random.Generator) -> bytes:
    """One examples-topic message: users ``first .. first+PER_MESSAGE-1``."""
    items = rng.integers(ITEMS, size=PER_MESSAGE).tolist()
    labels = (rng.random(PER_MESSAGE) < 0.3).tolist()
    rows = [{"request_id": f"s{u}", "item_id": it, "user_id": u,
             "ts": u * EVENT_MS_PER_EXAMPLE, "label": int(y),
             "slots": {"user_id": [u], "item_id": [it]}}
            for u, it, y in zip(range(first, first + PER_MESSAGE), items, labels, strict=True)]
    return orjson.dumps({"v": 1, "examples": rows})


def soak(total: int = TOTAL, samples: int = 200, ttl_s: float = TTL_S) -> dict:
    """Run the soak; return the RSS curve and live-row counts (``ttl_s`` 0: no expiry)."""
    from udfs.shard import ShardWorker
    from udfs.shard_state import MemoryState

    cfg = Config(
        model=ModelConfig(kind="deepfm", hidden=[16], slots=[
            SlotConfig("user_id", dim=8, expiry=ExpiryConfig(ttl_s)),
            SlotConfig("item_id", dim=8, expiry=ExpiryConfig(ttl_s)),
        ]),
        train=TrainConfig(micro_batch=256, eval_window_examples=100_000, compact_every=64),
        sync=SyncConfig(sparse_sync_interval_s=0.2),
    )
    state = MemoryState()
    worker = ShardWorker(cfg, 0, state)
    rng = np.random.default_rng(0)
    every = max(1, total // PER_MESSAGE // samples)
    curve: list[dict] = []
    t0 = time.monotonic()
    for i, first in enumerate(range(0, total, PER_MESSAGE)):
        out = worker.process(message(first, rng))
        assert not out.dead_letters, out.dead_letters[:1]
        if i % every == 0 or first + PER_MESSAGE >= total:
            tables = worker.trainer.tables
            curve.append({
                "examples": first + PER_MESSAGE, "seconds": round(time.monotonic() - t0, 1),
                "rss_mib": round(rss_mib(), 1),
                "user_rows": len(tables.slots["user_id"]), "rows": len(tables),
                "table_mib": round(tables.nbytes() / 2**20, 1),
                "state_log_mib": round(sum(len(b) for b in state.entries) / 2**20, 1),
            })
    ledger = worker.trainer.ledger
    return {"examples": ledger.examples, "distinct_user_ids": total,
            "ttl_s": ttl_s, "seconds": round(time.monotonic() - t0, 1), "curve": curve}


def plateau(result: dict) -> dict[str, float]:
    """RSS over the second and the last quarter of the run, and the final live rows."""
    curve = result["curve"]
    n = len(curve)
    q2 = [c["rss_mib"] for c in curve[n // 4 : n // 2]]
    q4 = [c["rss_mib"] for c in curve[3 * n // 4 :]]
    return {"rss_q2_mib": float(np.mean(q2)), "rss_q4_mib": float(np.mean(q4)),
            "rss_max_mib": max(c["rss_mib"] for c in curve),
            "user_rows_max": max(c["user_rows"] for c in curve[n // 4 :])}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result["curve"]
    x = [p["examples"] / 1e6 for p in c]
    fig, ax = plt.subplots(figsize=(6, 3), dpi=90)
    ax.plot(x, [p["rss_mib"] for p in c], label="process RSS (MiB)")
    ax.plot(x, [p["user_rows"] / 1000 for p in c], label="live user rows (thousands)")
    ax.set_xlabel("distinct user IDs trained (millions)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="center right", fontsize=8)
    ax.set_title(f"Soak: {result['distinct_user_ids']:,} new IDs, ttl {TTL_S:.0f} s", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def test_rss_plateaus_with_expiry_over_millions_of_distinct_ids(tmp_path: Path) -> None:
    result = soak()
    p = plateau(result)
    out = Path(os.environ.get("FRESHET_REPORT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps({**result, "plateau": p}, indent=1))
    print(f"\nsoak: {result['examples']:,} examples in {result['seconds']} s; {p}")
    assert result["examples"] == TOTAL
    # Expiry bounds the live rows: about ttl x 1,000 users per event-second, plus what
    # arrives between two evictions (a generous 50% margin).
    assert p["user_rows_max"] < 1.5 * TTL_S * 1000 / EVENT_MS_PER_EXAMPLE
    # Without expiry the last quarter would hold ~5M more rows than the second quarter
    # (hundreds of MiB); a plateau grows by much less than that.
    assert p["rss_q4_mib"] < p["rss_q2_mib"] * 1.15 + 64, p


if __name__ == "__main__":
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".freshet/reports")
    out_dir.mkdir(parents=True, exist_ok=True)
    res = soak(int(os.environ.get("FRESHET_SOAK_IDS", FULL)))
    res["plateau"] = plateau(res)
    (out_dir / "soak.json").write_text(json.dumps(res, indent=1))
    plot(res, out_dir / "soak_rss.png")
    print(json.dumps(res["plateau"]))
