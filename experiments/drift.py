"""Experiment 4: concept drift. AUC over time for online vs daily batch across a shift.

    freshet experiment drift [--seeds 3] [--impressions 100000]

The synthetic stream (:mod:`freshet.produce.synthetic`): users prefer one of 8 item
clusters (a matching impression is clicked with p 0.5, others with 0.05), new users
and items keep arriving (2% and 1% of impressions), and at the shift every user's
preference moves to the next cluster. ``impressions`` spread over ``DAYS`` days of
event time, the shift at noon of day 5. Labels are "was it clicked".

One DeepFM trainer (slots user, item, item cluster) learns every impression in time
order; serving copies score each before it is learnt: ``online_1min`` and
``online_1h`` (sparse rows every minute / hour, dense weights daily) and
``batch_daily`` (sparse and dense at each midnight only; see :mod:`experiments.sync`).
``online`` is the trainer's own score (no sync lag).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
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
from experiments.streams import micro_batches, synthetic_examples
from experiments.walkforward import DAY_S, CopySpec, walk_forward
from freshet.config import ModelConfig
from freshet.data.movielens import default_model
from freshet.produce.synthetic import SyntheticSpec
from ps.config import AdagradConfig, SlotConfig
from ps.evaluation import auc

DAYS = 10
SHIFT_AT = 0.45  # of the stream: noon of day 5 (day 4.5 from the start)
START_MS = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
BUCKET_S = 3 * 3600.0
COPIES = [CopySpec("online_1min", 60.0, DAY_S), CopySpec("online_1h", 3600.0, DAY_S),
          CopySpec("batch_daily", DAY_S, DAY_S)]


def spec(impressions: int, seed: int) -> SyntheticSpec:
    return SyntheticSpec(impressions=impressions, shift_at=SHIFT_AT, seed=seed,
                         start_ms=START_MS, event_rate=impressions / (DAYS * DAY_S))


def model() -> ModelConfig:
    """The MovieLens DeepFM settings on the synthetic stream's three slots."""
    base = default_model()
    dim = base.slots[0].dim
    return dataclasses.replace(base, slots=[SlotConfig(s, dim=dim, optimizer=AdagradConfig(0.1))
                                            for s in ("user_id", "item_id", "genre")])


def run(seeds: int = 3, impressions: int = 100_000, out: str = "") -> dict[str, Any]:
    path = out_dir("drift", out)
    shift_ms = START_MS + SHIFT_AT * DAYS * DAY_S * 1000
    names = ["online", *(c.name for c in COPIES)]
    aucs: dict[str, dict[str, list[float]]] = {
        p: {n: [] for n in names} for p in ("all", "before_shift", "day_after_shift")}
    curves: dict[str, Any] = {}
    for seed in range(seeds):
        exs = synthetic_examples(spec(impressions, seed))
        r = walk_forward(micro_batches(exs, train_config(seed).micro_batch), model(),
                         train_config(seed), copies=COPIES)
        periods = {"all": np.ones(len(r.ts), bool), "before_shift": r.ts < shift_ms,
                   "day_after_shift": (r.ts >= shift_ms) & (r.ts < shift_ms + DAY_S * 1000)}
        for n in names:
            scores = r.online if n == "online" else r.served[n]
            for p, m in periods.items():
                aucs[p][n].append(auc(scores[m], r.labels[m]))
        print(f"[drift] seed {seed}: " + ", ".join(
            f"{n} {aucs['all'][n][-1]:.4f}/{aucs['day_after_shift'][n][-1]:.4f}" for n in names)
            + f" ({r.seconds:.0f}s)", flush=True)
        if seed == 0:
            for n in names:
                scores = r.online if n == "online" else r.served[n]
                starts, w, _ = auc_over_time(r.ts, scores, r.labels, BUCKET_S)
                curves[n] = (plots.dates(starts), w)
            new_share = _new_id_share(r.ts, exs)
    result = {
        "experiment": "drift", "stream": dataclasses.asdict(spec(impressions, 0)),
        "days": DAYS, "shift_ms": int(shift_ms), "model": "deepfm",
        "auc": {p: {n: mean_std(v) for n, v in d.items()} for p, d in aucs.items()},
        "new_id_share_seed0": new_share,
    }
    plots.lines(path / "drift_auc_over_time.png", curves, "event time (3 h buckets)",
                "AUC in the bucket", "Synthetic stream with an interest shift (seed 0)",
                vline=plots.dates([shift_ms])[0], vlabel="shift")
    write_result(path, result)
    return result


def _new_id_share(ts: np.ndarray, exs: list) -> float:
    """Share of impressions whose user or item is seen for the first time that day."""
    seen: set[tuple[str, int]] = set()
    day = -1
    fresh = 0
    for e in exs:
        d = e.ts // int(DAY_S * 1000)
        if d != day:
            day = d
            today_start = set(seen)
        fresh += ("u", e.user_id) not in today_start or ("i", e.item_id) not in today_start
        seen.update({("u", e.user_id), ("i", e.item_id)})
    return round(fresh / max(len(exs), 1), 4)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = base_args(__doc__)
    ap.add_argument("--impressions", type=int, default=100_000)
    args = ap.parse_args(argv)
    return run(args.seeds, args.limit or args.impressions, args.out)


if __name__ == "__main__":
    main()
