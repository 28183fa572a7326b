"""The walk-forward runner and its serving copies on small synthetic streams."""

from __future__ import annotations

import dataclasses
import doctest
import importlib

import numpy as np
import pytest

from experiments.hashing import colliding_share, hashed_collection
from experiments.streams import micro_batches, synthetic_examples
from experiments.sync import by_rating_index
from experiments.walkforward import DAY_S, CopySpec, walk_forward
from freshet.config import ModelConfig, TrainConfig
from freshet.produce.synthetic import SyntheticSpec
from ps.config import AdagradConfig, ExpiryConfig, SlotConfig

DAY_MS = int(DAY_S * 1000)
MODULES = ["experiments.streams", "experiments.serving_copy", "experiments.walkforward",
           "experiments.common", "experiments.plots", "experiments.sync",
           "experiments.join_order"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def model(init_std: float = 0.01) -> ModelConfig:
    slots = [SlotConfig(s, dim=4, optimizer=AdagradConfig(0.1), init_std=init_std)
             for s in ("user_id", "item_id", "genre")]
    return ModelConfig(slots=slots, hidden=[8])


def stream(days: float = 3.0, impressions: int = 1500, seed: int = 0) -> list:
    spec = SyntheticSpec(impressions=impressions, seed=seed, start_ms=DAY_MS * 19_000,
                         event_rate=impressions / (days * DAY_S))
    return micro_batches(synthetic_examples(spec), 32)


@pytest.mark.parametrize("per_example", [False, True])
def test_sync_every_step_scores_like_the_trainer(per_example: bool) -> None:
    # With zero-initialised rows, a new ID reads zeros in the trainer as in the copy.
    run = walk_forward(stream(), model(init_std=0.0),
                       TrainConfig(first_order_per_example=per_example),
                       copies=[CopySpec("every_step", 0.0)])
    assert run.syncs["every_step"] == len(stream())
    assert not run.stale["every_step"].any()
    served, online = run.served["every_step"], run.online
    if not per_example:
        np.testing.assert_allclose(served, online, atol=1e-4)
        return
    # Per-example first-order steps: a step's first example is scored alike; the
    # trainer scores the others after learning from the ones before them in the step.
    first = np.cumsum([0] + [len(b) for b in stream()])[:-1]
    np.testing.assert_allclose(served[first], online[first], atol=1e-4)
    rest = np.setdiff1d(np.arange(len(online)), first)
    assert np.abs(served[rest] - online[rest]).max() > 0.01


def test_probes_are_scored_by_the_copies_at_their_step_and_not_trained() -> None:
    batches = stream()
    copy = [CopySpec("hourly", 3600.0)]
    plain = walk_forward(batches, model(), TrainConfig(), copies=copy)
    probes: list = [None] * len(batches)
    probes[9] = batches[9]
    probed = walk_forward(batches, model(), TrainConfig(), copies=copy, probes=probes)
    np.testing.assert_array_equal(probed.online, plain.online)  # probes train nothing
    at = sum(len(b) for b in batches[:9])
    np.testing.assert_array_equal(probed.probed["hourly"],
                                  plain.served["hourly"][at : at + len(batches[9])])
    assert probed.probe_labels.tolist() == batches[9].label.tolist()
    # the copy, not the trainer, scored them
    assert not np.allclose(probed.probed["hourly"], plain.online[at : at + len(batches[9])])


def test_daily_model_is_stale_within_the_day() -> None:
    run = walk_forward(stream(), model(), TrainConfig(), copies=[CopySpec("daily", DAY_S)])
    batches = stream()
    # A copy syncs between steps: an example counts in the day its step started.
    day = np.concatenate([np.full(len(b), b.ts[0] // DAY_MS) for b in batches])
    served = run.served["daily"]
    # Day one: nothing synced yet, every score is the untrained model's on zero rows.
    assert np.ptp(served[day == day[0]]) == 0.0
    assert np.ptp(run.online[day == day[0]]) > 0.0
    # Later days: a (user, item) pair scores the same all day, though the trainer learns.
    keys: dict[tuple[int, int, int], set[float]] = {}
    users = np.concatenate([b.user_id for b in batches])
    items = np.concatenate([b.item_id for b in batches])
    for d, u, i, s in zip(day.tolist(), users.tolist(), items.tolist(), served.tolist(),
                          strict=True):
        keys.setdefault((d, u, i), set()).add(round(s, 5))
    assert all(len(v) == 1 for v in keys.values())
    assert run.syncs["daily"] == len(np.unique(day))
    assert run.stale["daily"].mean() > 0.5


def test_hashed_tiny_table_collides_and_collisionless_does_not() -> None:
    m = model()
    coll = hashed_collection(m.slots, {"user_id": 4}, seed=0)
    run = walk_forward(stream(days=1.0, impressions=600), m, TrainConfig(), collection=coll)
    users = np.unique(np.concatenate([b.user_id for b in stream(days=1.0, impressions=600)]))
    assert len(users) > 8
    assert len(run.trainer.tables.slots["user_id"]) <= 4  # many users, four rows
    assert colliding_share(run.trainer.tables, "user_id", users) == 1.0
    assert colliding_share(run.trainer.tables, "item_id", users) == 0.0
    plain = walk_forward(stream(days=1.0, impressions=600), m, TrainConfig())
    assert len(plain.trainer.tables.slots["user_id"]) == len(users)


def test_serving_copies_refuse_hashed_trainer_tables() -> None:
    m = model()
    with pytest.raises(ValueError, match="collisionless"):
        walk_forward(stream(days=1.0, impressions=64), m, TrainConfig(),
                     collection=hashed_collection(m.slots, {"user_id": 4}, 0),
                     copies=[CopySpec("c", 1.0)])


def test_expiry_deletes_rows_in_the_trainer_and_in_the_copy() -> None:
    m = model()
    m = dataclasses.replace(m, slots=[dataclasses.replace(s, expiry=ExpiryConfig(3600.0))
                                      for s in m.slots])
    run = walk_forward(stream(), m, TrainConfig(), copies=[CopySpec("c", 60.0)],
                       evict_every_s=600.0)
    peak = max(s["rows"] for s in run.sizes)
    kept = walk_forward(stream(), model(), TrainConfig())
    assert len(run.trainer.tables) < len(kept.trainer.tables)
    assert peak <= len(kept.trainer.tables)


def test_per_rating_intervals_count_ratings() -> None:
    # Stamped by index, a 32-rating interval is one micro-batch: a sync before every
    # step, scoring like the trainer; 64 ratings syncs before every second step.
    spec = SyntheticSpec(impressions=1500, seed=0, start_ms=DAY_MS * 19_000,
                         event_rate=1500 / (3 * DAY_S))
    batches = micro_batches(by_rating_index(synthetic_examples(spec)), 32)
    run = walk_forward(batches, model(init_std=0.0), TrainConfig(first_order_per_example=False),
                       copies=[CopySpec("every_32", 32.0, 32.0), CopySpec("every_64", 64.0, 64.0)])
    assert run.syncs["every_32"] == len(batches)
    assert run.syncs["every_64"] == (len(batches) + 1) // 2
    np.testing.assert_allclose(run.served["every_32"], run.online, atol=1e-4)
    assert np.abs(run.served["every_64"] - run.online).max() > 1e-3
