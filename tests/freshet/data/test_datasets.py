"""What every data set module declares, checked for each module under ``freshet/data/``.

The modules are found by listing the package, never by a list kept here: a data set
declares its slots in the models' order (``SLOTS``), their split into a request's user
side and each candidate's item side, its records as examples and a default model
preset whose slots are exactly its own (docs/architecture.md, "A data set").
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import freshet.data
from freshet.config import ModelConfig

NAMES = sorted(m.name for m in pkgutil.iter_modules(freshet.data.__path__)
               if not m.name.startswith("_"))


@pytest.fixture(params=NAMES)
def dataset(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(f"freshet.data.{request.param}")


def test_there_are_data_sets() -> None:
    assert "movielens" in NAMES


def test_a_data_set_declares_its_slots_split_into_user_and_item(dataset: ModuleType) -> None:
    slots, user, item = list(dataset.SLOTS), list(dataset.USER_SLOTS), list(dataset.ITEM_SLOTS)
    assert len(set(slots)) == len(slots), "a slot named twice"
    assert not set(user) & set(item), f"on both sides: {sorted(set(user) & set(item))}"
    assert sorted(user + item) == sorted(slots), "the user/item split must cover SLOTS exactly"


def test_its_default_model_has_exactly_its_slots(dataset: ModuleType) -> None:
    model = dataset.default_model()
    assert isinstance(model, ModelConfig)
    assert [s.name for s in model.slots] == list(dataset.SLOTS)
    for preset in dataset.model_configs(8):
        assert [s.name for s in preset.slots] == list(dataset.SLOTS)


def test_its_records_become_examples(dataset: ModuleType) -> None:
    assert dataset.examples([]) == []
