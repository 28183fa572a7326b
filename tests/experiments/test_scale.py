"""The one-model-across-many-trainers simulator (experiments/scale.py) at a tiny size."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import experiments.scale as scale
from experiments.scale import Setup, exchange_bytes, home, simulate
from experiments.streams import micro_batches, synthetic_examples
from experiments.walkforward import walk_forward
from freshet.config import ModelConfig, TrainConfig
from freshet.produce.synthetic import SyntheticSpec
from freshet.topics import Example
from ps.config import AdagradConfig, SlotConfig

SLOTS = ("user_id", "item_id", "genre")


def model(dim: int = 4) -> ModelConfig:
    return ModelConfig(slots=[SlotConfig(s, dim=dim, optimizer=AdagradConfig(0.1))
                              for s in SLOTS], hidden=[8], first_order_scale=3.0)


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return synthetic_examples(SyntheticSpec(impressions=640, seed=3, start_ms=1))


def test_docstring_examples() -> None:
    result = doctest.testmod(scale, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("dense", ["sum", "avg4"])
def test_one_owner_one_worker_in_sync_is_the_trainer(examples: list[Example],
                                                     dense: str) -> None:
    train = TrainConfig(micro_batch=32, seed=0)
    batches = micro_batches(examples, 32)
    base = walk_forward(batches, model(), train)
    sim = simulate(None, model(), Setup(1, 1, 0, dense, "32", "user", "owner"), train,
                   batches=batches)
    assert np.array_equal(sim.logits, base.online)  # bit for bit
    assert sim.auc() == base.auc()
    assert sim.rows_per_owner == [len(base.trainer.tables)]


def test_every_row_has_exactly_one_owner(examples: list[Example]) -> None:
    train = TrainConfig(micro_batch=32, seed=0)
    batches = micro_batches(examples, 32)
    total = len(walk_forward(batches, model(), train).trainer.tables)
    sim = simulate(None, model(), Setup(4, 2, 1, "sum", "32", "user", "row"), train,
                   batches=batches)
    assert sum(sim.rows_per_owner) == total
    assert max(sim.rows_per_owner) < total  # spread, not all on one
    parts = sim.owners.parts
    for slot in SLOTS:
        held = [parts[p].slots[slot].dump()[0] for p in range(4)]
        everywhere = np.concatenate(held)
        assert len(np.unique(everywhere)) == len(everywhere)  # on one owner only
        for p, ids in enumerate(held):
            assert (home(slot, ids, 4) == p).all()  # the owner the hash names


def test_placement_does_not_move_the_auc_with_row_init(examples: list[Example]) -> None:
    # Rows start from (seed, slot, id) and owners apply in the same order: where a row
    # lives changes nothing that is learnt.
    train = TrainConfig(micro_batch=32, seed=0)
    batches = micro_batches(examples, 32)
    one, four = (simulate(None, model(), Setup(p, 2, 1, "avg2", "32", "user", "row"), train,
                          batches=batches).logits for p in (1, 4))
    assert np.array_equal(one, four)


def test_bytes_per_example_on_a_hand_made_batch() -> None:
    # Two examples: user 1 twice, items 5 and 6, genres {7} and {7, 8}. Distinct rows:
    # user 1, items 5 and 6, genres 7 and 8 = 5 rows pulled, pushed, first-order cells.
    exs = [Example("a", 5, 1, 1000, 1, slots={"user_id": [1], "item_id": [5], "genre": [7]}),
           Example("b", 6, 1, 1000, 0, slots={"user_id": [1], "item_id": [6],
                                              "genre": [7, 8]})]
    dim, state = 4, 1  # Adagrad: one accumulator per value
    per_row = (8 + 4 * dim) + (8 + 4 * dim) + (4 * state + 8 + 4 * (1 + state))
    assert per_row == 68
    one = simulate(exs, model(dim), Setup(2, 1, 0, "sum", "32", "user", "row"))
    t = one.traffic
    assert (t.pulled, t.pushed, t.cells, one.dense_floats) == (5, 5, 5, 0)
    assert one.bytes() == 5 * per_row == exchange_bytes(5, 5, 5, dim, state, 0)
    # Worker 0 shares subtask 0 with owner 0: only rows homed on owner 1 cross.
    remote = sum(int((home(s, np.array(ids), 2) == 1).sum())
                 for s, ids in (("user_id", [1]), ("item_id", [5, 6]), ("genre", [7, 8])))
    assert one.bytes(remote=True) == remote * per_row
    # Two workers (split by user: both examples on one worker), gradients summed: the
    # dense sync adds each worker's send and receive of every dense weight per round.
    two = simulate(exs, model(dim), Setup(2, 2, 0, "sum", "32", "user", "row"))
    floats = 2 * two.dense_params * 2
    assert two.dense_floats == floats
    assert two.bytes() == 5 * per_row + 4 * floats
    assert two.bytes() / two.examples == (5 * per_row + 4 * floats) / 2
