"""Fixtures for the trainer tests: a small learnable example stream (no broker, no MovieLens)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from freshet.config import ModelConfig
from freshet.topics import Example, encode_examples
from ps.config import SlotConfig

SLOTS = ["user_id", "item_id", "genre"]


def model_config(kind: str = "deepfm", dim: int = 8) -> ModelConfig:
    return ModelConfig(kind=kind, slots=[SlotConfig(s, dim=dim) for s in SLOTS], hidden=[16])


def examples(n: int, seed: int = 0, users: int = 50, items: int = 80) -> list[Example]:
    """Label ~ Bernoulli(sigmoid(user bias + item bias)); genre is multi-hot (0-2 IDs)."""
    rng = np.random.default_rng(seed)
    ub, ib = rng.normal(0, 1.5, users), rng.normal(0, 1.5, items)
    out = []
    for i in range(n):
        u, it = int(rng.integers(users)), int(rng.integers(items))
        y = int(rng.random() < 1 / (1 + np.exp(-(ub[u] + ib[it]))))
        genres = sorted({int(g) for g in rng.integers(0, 5, rng.integers(0, 3))})
        out.append(Example(f"r{seed}-{i}", it, u, 1000 * i, y,
                           slots={"user_id": [u], "item_id": [it], "genre": genres}))
    return out


def messages(exs: list[Example], size: int = 64) -> list[bytes]:
    return [encode_examples(exs[i : i + size]) for i in range(0, len(exs), size)]


@pytest.fixture
def streams() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules cannot import each other here)."""
    return SimpleNamespace(SLOTS=SLOTS, model_config=model_config, examples=examples,
                           messages=messages)
