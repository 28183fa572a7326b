"""Issue 21: which fresh serving-time signals beat a per-second LR on MovieLens-100K.

    freshet experiment fresh_signals [--seeds 3] [--workers 2] [--kind deepfm|lr|dcn]
        [--limit N] [--drift-impressions 20000] [--datasets movielens,drift] [--no-micro32]

Every rating (impression) is scored by a model that knows only whole seconds strictly
before its own (:mod:`ps.signals` defines the point-in-time rule). The stream is cut
into one batch per event-time second (:func:`experiments.streams.second_batches`), so
a serving copy synced every second (:mod:`experiments.walkforward`, the trainer
``udfs.trainer.Trainer`` and its copies in :mod:`experiments.serving_copy`) scores a
second's ratings after the trainer has learnt every earlier second and nothing of
this one. Side by side, in one run:

- ``today``: the model (``--kind``, default DeepFM) on MovieLens' six slots;
  ``stats``: plus the bucketised statistics (:data:`STATS`); ``history``: plus the
  user's raw recent history (:data:`HISTORY`, the last 10 positives, a multi-hot slot
  of item IDs in a table of its own, not ``item_id``'s); ``both``. Signal slots learn
  at 0.01 and the history at 0.005 (:class:`Settings`; at the ID slots' 0.1 they cost
  more, docs/results.md).
  Each is served by a copy with sparse rows every 1 s and dense weights daily (the
  setting of ``experiment sync``), and the trainer's own progressive AUC is reported
  beside it (``online_*``);
- ``deepfm_micro32``: today's DeepFM as ``experiment sync`` runs it (32-rating steps,
  the copy synced before each; its 0.7442), for reference;
- ``popularity``: user + item positive-rate counters (:class:`udfs.popularity.
  UserItemPopularity`) knowing only earlier seconds;
- ``lr_per_second``: a River-style logistic regression in-process (:class:`PerSecondLR`:
  AdaGrad lr 0.5, one-hot user, item, gender, age, occupation, multi-hot genres);
  it scores a second's ratings before learning any; ``lr_per_second_signals``: the
  same with the signal slots of ``both`` (learning at 0.02).

Then the same on the synthetic drift stream (:mod:`freshet.produce.synthetic`:
``--drift-impressions`` at 4 a second, interests shifting halfway; its clicks counted
at the click's own time, 2 s after the impression; half-lives 1 h and 5 min; no
rating, so no ``vmean``), keys prefixed ``drift_``, one stream per seed. AUCs are
means over ``--seeds``; per-quarter AUCs (the stream cut in four by example count,
means over seeds) go under ``quarters``. Progress goes to stderr; the JSON of the
result is the last line on stdout.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.common import base_args, mean_std, out_dir, write_result
from experiments.streams import micro_batches, second_batches
from experiments.walkforward import DAY_S, CopySpec, walk_forward
from freshet.config import ModelConfig, TrainConfig
from freshet.data.movielens import (
    HISTORY_LR,
    LIKE_RATING,
    SIGNAL_LR,
    load_ratings,
    signals_model,
)
from freshet.data.movielens import examples as movielens_rows
from freshet.produce.synthetic import SyntheticSpec
from freshet.produce.synthetic import events as synthetic_events
from freshet.topics import Action, Example, Impression
from ps.evaluation import auc
from ps.signals import Event, SignalSpec, point_in_time
from udfs.popularity import UserItemPopularity

STATS = ("item_n", "item_rate", "item_vmean", "user_n", "user_rate", "user_vmean",
         "user_rate_recent", "cat_rate", "ucat_rate")
HISTORY = ("hist_pos",)
VARIANTS: dict[str, tuple[str, ...]] = {
    "today": (), "stats": STATS, "history": HISTORY, "both": STATS + HISTORY}
BASE_SLOTS = ("user_id", "item_id", "genre", "gender", "age", "occupation")
COPY = CopySpec("served", 1.0, DAY_S)  # sparse rows every second, dense weights daily
QUARTERS = 4


def log(msg: str) -> None:
    """Progress, on stderr (stdout's last line is the result)."""
    print(f"[fresh_signals] {msg}", file=sys.stderr, flush=True)


# -- streams: examples and the events their signals are computed from ------------------

def movielens(limit: int = 0) -> tuple[list[Example], list[Event]]:
    """MovieLens-100K in time order: the examples, and per rating one event (an
    impression with its actions at the same time; value: the rating scaled to [0, 1])."""
    ratings = load_ratings()
    ratings = ratings[:limit] if limit else ratings
    exs = [dataclasses.replace(e, like=int(r.rating >= LIKE_RATING))
           for e, r in zip(movielens_rows(ratings), ratings, strict=True)]
    events = [Event(r.ts, r.user_id, r.item_id, tuple(r.slots["genre"]), shown=1,
                    positive=int(r.positive), like=int(r.rating >= LIKE_RATING),
                    value=(r.rating - 1) / 4.0)
              for r in ratings]
    return exs, events


def drift_spec(impressions: int, seed: int) -> SyntheticSpec:
    """The drift stream: interests shift halfway; ``impressions`` at 4 a second."""
    return SyntheticSpec(impressions=impressions, shift_at=0.5, seed=seed,
                         start_ms=1_700_000_000_000, event_rate=4.0)


def synthetic(spec: SyntheticSpec) -> tuple[list[Example], list[Event], list[int]]:
    """The synthetic log: examples labelled "clicked", the events (impressions, and
    clicks at their own time), and the index of each example's impression event."""
    exs: list[Example] = []
    events: list[Event] = []
    at: list[int] = []
    shown: dict[str, Impression] = {}
    clicked: set[str] = set()
    for ev in synthetic_events(spec):
        if isinstance(ev, Impression):
            shown[ev.request_id] = ev
            at.append(len(events))
            events.append(Event(ev.ts, ev.user_id, ev.item_id, tuple(ev.slots["genre"])))
        elif isinstance(ev, Action) and ev.action == "click" and ev.request_id in shown:
            i = shown[ev.request_id]
            clicked.add(ev.request_id)
            events.append(Event(ev.ts, i.user_id, i.item_id, tuple(i.slots["genre"]),
                                shown=0, positive=1))
    for i in shown.values():
        y = int(i.request_id in clicked)
        exs.append(Example(i.request_id, i.item_id, i.user_id, i.ts, y, click=y,
                           slots=i.slots))
    return exs, events, at


def with_signals(exs: Sequence[Example], signals: Sequence[dict[str, list[int]]],
                 names: Sequence[str]) -> list[Example]:
    """The examples with the named signal slots added to their own."""
    return [dataclasses.replace(e, slots={**e.slots, **{n: s[n] for n in names}})
            for e, s in zip(exs, signals, strict=True)]


# -- the models --------------------------------------------------------------------------

class PerSecondLR:
    """River's logistic regression, in-process: one weight per (slot, ID), AdaGrad.

    The River setting of anchors.md: weights by AdaGrad (``lr``, G starts at 0,
    eps 1e-8), the intercept by plain SGD (``intercept_lr``), log loss, feature values
    1. :meth:`run` scores each second's examples before it learns any of them, then
    learns them one by one in order.

    Examples
    --------
    >>> m = PerSecondLR()
    >>> m.logit({"user_id": [1]})
    0.0
    >>> m.learn({"user_id": [1]}, 1)
    >>> round(m.logit({"user_id": [1]}), 3)  # w = 0.5 (AdaGrad's first step), b = 0.005
    0.505
    """

    def __init__(self, lr: float = 0.5, intercept_lr: float = 0.01,
                 slot_lr: dict[str, float] | None = None) -> None:
        self.lr, self.intercept_lr = lr, intercept_lr
        self.slot_lr = slot_lr or {}
        self.w: dict[tuple[str, int], float] = {}
        self.g2: dict[tuple[str, int], float] = {}
        self.bias = 0.0

    def logit(self, slots: dict[str, list[int]]) -> float:
        w = self.w
        return self.bias + sum(w.get((s, i), 0.0) for s, ids in slots.items() for i in ids)

    def learn(self, slots: dict[str, list[int]], label: int) -> None:
        z = self.logit(slots)
        g = 1.0 / (1.0 + math.exp(-max(min(z, 35.0), -35.0))) - label
        for s, ids in slots.items():
            lr = self.slot_lr.get(s, self.lr)
            for i in ids:
                k = (s, i)
                g2 = self.g2.get(k, 0.0) + g * g
                self.g2[k] = g2
                self.w[k] = self.w.get(k, 0.0) - lr * g / math.sqrt(g2 + 1e-8)
        self.bias -= self.intercept_lr * g

    def run(self, exs: Sequence[Example], slots: Sequence[str]) -> np.ndarray:
        """Logits of ``exs`` (time order), each second scored before learning it."""
        out = np.empty(len(exs))
        start = 0
        for end in _second_ends(exs):
            feats = [{s: e.slots[s] for s in slots if s in e.slots} for e in exs[start:end]]
            out[start:end] = [self.logit(f) for f in feats]
            for f, e in zip(feats, exs[start:end], strict=True):
                self.learn(f, e.label)
            start = end
        return out


def _second_ends(exs: Sequence[Example]) -> list[int]:
    """End index (exclusive) of each run of examples of one event-time second."""
    ends = [i for i in range(1, len(exs)) if exs[i].ts // 1000 != exs[i - 1].ts // 1000]
    return [*ends, len(exs)] if exs else []


def popularity(exs: Sequence[Example]) -> np.ndarray:
    """User + item popularity log-odds, each second scored before it is counted."""
    pop = UserItemPopularity()
    return np.concatenate([pop.score_then_learn(b.user_id, b.item_id, b.label)
                           for b in second_batches(exs)])


# -- the experiment ----------------------------------------------------------------------

def quarter_aucs(scores: np.ndarray, labels: np.ndarray, parts: int = QUARTERS) -> list[float]:
    """AUC of each of ``parts`` consecutive, equal-count parts of the stream.

    Examples
    --------
    >>> quarter_aucs(np.array([0.1, 0.9, 0.8, 0.2]), np.array([0, 1, 0, 1]), parts=2)
    [1.0, 0.0]
    """
    return [round(auc(s, y), 4) for s, y in zip(np.array_split(scores, parts),
                                                 np.array_split(labels, parts), strict=True)]


@dataclass(frozen=True)
class Settings:
    """What one run compares: the served model's kind, the signals' settings, and the
    learning rates of the signal slots (the trainer's and the in-process LR's)."""

    kind: str = "deepfm"
    spec: SignalSpec = field(default_factory=lambda: SignalSpec(
        signals=STATS + HISTORY, history=10))
    signal_lr: float | None = SIGNAL_LR
    history_lr: float | None = HISTORY_LR
    lr_signal_lr: float = 0.02  # PerSecondLR: 0.5 on signal slots loses (docs/results.md)
    micro32: bool = True  # also today's DeepFM in 32-rating steps (experiment sync), seed 0
    workers: int = 1  # processes for the walk-forward runs


def evaluate(exs: Sequence[Example], signals: Sequence[dict[str, list[int]]],
             base: Sequence[str], seeds: int, variants: dict[str, tuple[str, ...]],
             settings: Settings, tag: str = "") -> dict[str, Any]:
    """Every model of the module docstring on one stream: AUCs over seeds (mean and
    std) and per-quarter AUCs (means over seeds)."""
    labels = np.array([e.label for e in exs], float)
    scores: dict[str, list[np.ndarray]] = {}
    t = time.perf_counter()
    scores["popularity"] = [popularity(exs)]
    all_signals = sorted({n for v in variants.values() for n in v})
    full = with_signals(exs, signals, all_signals)
    scores["lr_per_second"] = [PerSecondLR().run(exs, base)]
    slot_lr = dict.fromkeys(all_signals, settings.lr_signal_lr)
    scores["lr_per_second_signals"] = [PerSecondLR(slot_lr=slot_lr).run(
        full, [*base, *all_signals])]
    log(f"{tag}popularity {auc(scores['popularity'][0], labels):.4f}, lr_per_second "
        f"{auc(scores['lr_per_second'][0], labels):.4f}, with signals "
        f"{auc(scores['lr_per_second_signals'][0], labels):.4f} "
        f"({time.perf_counter() - t:.0f}s)")
    jobs = [(name, seed, signals_model(settings.kind, names, base, settings.signal_lr,
                                   settings.history_lr), True)
            for seed in range(seeds) for name, names in variants.items()]
    if settings.micro32:
        jobs.append(("deepfm_micro32", 0, signals_model("deepfm", (), base), False))
    with _pool(settings.workers) as pool:
        futures = [pool.submit(_walk, full if per_second else list(exs), model, seed,
                               per_second) for name, seed, model, per_second in jobs]
        for (name, seed, _, per_second), f in zip(jobs, futures, strict=True):
            served, online, seconds = f.result()
            scores.setdefault(name, []).append(served)
            if per_second:
                scores.setdefault(f"online_{name}", []).append(online)
            log(f"{tag}seed {seed} {settings.kind if per_second else 'deepfm'} {name}: "
                f"served {auc(served, labels):.4f}, trainer {auc(online, labels):.4f} "
                f"({seconds:.0f}s)")
    aucs = {k: mean_std([auc(s, labels) for s in v]) for k, v in scores.items()}
    quarters = {k: np.mean([quarter_aucs(s, labels) for s in v], axis=0).round(4).tolist()
                for k, v in scores.items()}
    return {"auc": aucs, "quarters": quarters, "examples": len(exs)}


def _walk(exs: list[Example], model: ModelConfig, seed: int, per_second: bool
          ) -> tuple[np.ndarray, np.ndarray, float]:
    """One walk-forward: the served copy's and the trainer's logits, and its seconds.
    ``per_second``: one step per event-time second, else 32-rating steps."""
    train = TrainConfig(seed=seed)
    batches = second_batches(exs) if per_second else micro_batches(exs, train.micro_batch)
    run = walk_forward(batches, model, train, copies=[COPY])
    return run.served[COPY.name], run.online, run.seconds


def _pool(workers: int) -> Executor:
    """Processes for the walks (spawned: TensorFlow does not survive a fork), or the
    calling process when ``workers`` is 1."""
    if workers > 1:
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    return _Inline()


class _Inline(Executor):
    """Runs each submitted call at once, in this process."""

    def submit(self, fn, /, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
        f: Future = Future()
        f.set_result(fn(*args, **kwargs))
        return f


def run(seeds: int = 3, limit: int = 0, settings: Settings | None = None,
        drift_impressions: int = 20_000, datasets: Sequence[str] = ("movielens", "drift"),
        out: str = "") -> dict[str, Any]:
    """The experiment; returns (and writes) the result of the module docstring."""
    path = out_dir("fresh_signals", out)
    settings = settings or Settings()
    spec = settings.spec
    result: dict[str, Any] = {
        "experiment": "fresh_signals", "kind": settings.kind, "seeds": seeds,
        "variants": dict(VARIANTS),
        "served": "copy with sparse rows every 1 s, dense weights daily; one trainer "
                  "step per event-time second",
        "signal_spec": dataclasses.asdict(spec) | {"signals": list(spec.signals)},
        "slot_learning_rates": {"signals": settings.signal_lr,
                                "history": settings.history_lr,
                                "lr_per_second_signals": settings.lr_signal_lr},
    }
    if "movielens" in datasets:
        t = time.perf_counter()
        exs, events = movielens(limit)
        signals = point_in_time(events, spec)
        log(f"MovieLens: {len(exs)} ratings, signals in {time.perf_counter() - t:.0f}s")
        ml = evaluate(exs, signals, BASE_SLOTS, seeds, VARIANTS, settings)
        result["examples"] = ml["examples"]
        result.update({f"auc_{k}": v["mean"] for k, v in ml["auc"].items()})
        result["auc_std"] = {k: v["std"] for k, v in ml["auc"].items()}
        result["quarters"] = ml["quarters"]
        result["best_served"] = best_served(result, "")
    if "drift" in datasets:
        result.update(drift(seeds, drift_impressions, settings))
        result["drift_best_served"] = best_served(result, "drift_")
    write_result(path, result)
    return result


def drift(seeds: int, impressions: int, settings: Settings) -> dict[str, Any]:
    """The drift stream's results, keys prefixed ``drift_``: one stream per seed (its
    data and the trainer's initialisation), hours for half-lives (it spans hours)."""
    spec = dataclasses.replace(
        settings.spec, half_life_s=3_600.0, recent_half_life_s=300.0,
        signals=[s for s in settings.spec.signals if "vmean" not in s and "vstd" not in s])
    variants = {k: tuple(s for s in v if s in spec.signals) for k, v in VARIANTS.items()}
    runs = []
    for seed in range(seeds):
        exs, events, at = synthetic(drift_spec(impressions, seed))
        signals = point_in_time(events, spec)
        train = dataclasses.replace(settings, micro32=False)
        runs.append(evaluate(exs, [signals[i] for i in at], ("user_id", "item_id", "genre"),
                             1, variants, train, tag=f"drift stream {seed}: "))
    out: dict[str, Any] = {"drift_examples": runs[0]["examples"]}
    for k in runs[0]["auc"]:
        out[f"drift_auc_{k}"] = round(float(np.mean([r["auc"][k]["mean"] for r in runs])), 4)
    out["drift_auc_std"] = {k: round(float(np.std([r["auc"][k]["mean"] for r in runs])), 4)
                            for k in runs[0]["auc"]}
    out["drift_quarters"] = {k: np.mean([r["quarters"][k] for r in runs], axis=0)
                             .round(4).tolist() for k in runs[0]["quarters"]}
    return out


BAR = 0.7614  # issue 21: 0.005 above River's per-second LR (0.7564)


def best_served(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The best served variant, and whether it beats popularity on every quarter.

    Examples
    --------
    >>> r = {"auc_today": 0.70, "auc_stats": 0.76, "auc_history": 0.71, "auc_both": 0.75,
    ...      "quarters": {"stats": [0.8, 0.7], "popularity": [0.7, 0.71]}}
    >>> best_served(r, "")
    {'variant': 'stats', 'auc': 0.76, 'above_popularity_every_quarter': False, 'meets_bar': False}
    """
    served = {k: result[f"{prefix}auc_{k}"] for k in VARIANTS}
    best = max(served, key=lambda k: served[k])
    q = result[f"{prefix}quarters"]
    beats = all(a > p for a, p in zip(q[best], q["popularity"], strict=True))
    return {"variant": best, "auc": served[best], "above_popularity_every_quarter": beats,
            "meets_bar": bool(served[best] >= BAR and beats)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = base_args(__doc__)
    ap.add_argument("--kind", default="deepfm", choices=["lr", "deepfm", "dcn"],
                    help="the served model's kind for today/stats/history/both")
    ap.add_argument("--drift-impressions", type=int, default=20_000)
    ap.add_argument("--datasets", default="movielens,drift")
    ap.add_argument("--workers", type=int, default=1, help="processes for the walks")
    ap.add_argument("--no-micro32", action="store_true",
                    help="skip today's DeepFM in 32-rating steps (experiment sync's setting)")
    args = ap.parse_args(argv)
    settings = Settings(kind=args.kind, micro32=not args.no_micro32, workers=args.workers)
    return run(args.seeds, args.limit, settings, args.drift_impressions,
               args.datasets.split(","), args.out)


if __name__ == "__main__":
    main()
