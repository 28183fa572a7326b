"""What the experiments share: the MovieLens model, seeds, AUC over time, output files.

Examples
--------
>>> ts = np.array([0, 1000, 2000, 3000]) ; labels = np.array([0, 1, 0, 1])
>>> starts, aucs, counts = auc_over_time(ts, np.array([0.1, 0.9, 0.2, 0.8]), labels, 2.0)
>>> starts.tolist(), aucs.tolist(), counts.tolist()
([0.0, 2000.0], [1.0, 1.0], [2, 2])
>>> mean_std([0.5, 0.7])
{'mean': 0.6, 'std': 0.1, 'n': 2}
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freshet.config import Config, TrainConfig, load_config
from ps.evaluation import auc

MICRO_BATCH = 32  # the trainer's default step size (TrainConfig.micro_batch)


def train_config(seed: int) -> TrainConfig:
    return TrainConfig(micro_batch=MICRO_BATCH, seed=seed)


def auc_over_time(
    ts_ms: np.ndarray, scores: np.ndarray, labels: np.ndarray, bucket_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUC per event-time bucket: ``(bucket start ms, auc, examples)``.

    Buckets are aligned to multiples of ``bucket_s``; buckets with one class only are
    left out.
    """
    bucket = (ts_ms // (bucket_s * 1000)).astype(np.int64)
    starts, aucs, counts = [], [], []
    for b in np.unique(bucket):
        m = bucket == b
        if 0 < labels[m].sum() < m.sum():
            starts.append(b * bucket_s * 1000)
            aucs.append(auc(scores[m], labels[m]))
            counts.append(int(m.sum()))
    return np.array(starts, float), np.array(aucs), np.array(counts)


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation (over seeds) and count, rounded for reports."""
    v = np.asarray(values, float)
    return {"mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4), "n": len(v)}


def base_args(description: str | None) -> argparse.ArgumentParser:
    """Arguments every experiment takes."""
    ap = argparse.ArgumentParser(description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="runs per variant (seeds 0..N-1)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N examples")
    ap.add_argument("--out", default="", help="output dir (default <work_dir>/experiments/NAME)")
    return ap


def out_dir(name: str, out: str = "", cfg: Config | None = None) -> Path:
    cfg = cfg or load_config()
    path = Path(out) if out else cfg.path(f"experiments/{name}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_result(path: Path, result: dict[str, Any]) -> None:
    """``result.json`` in ``path``; the JSON is also printed as the last line."""
    text = json.dumps(result, sort_keys=False)
    (path / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"results and plots in {path}", flush=True)
    print(text, flush=True)
