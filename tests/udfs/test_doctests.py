"""The examples in the trainer modules' docstrings run (udfs/ is not a doctest path:
collecting it would import TensorFlow and PyFlink)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["udfs.evaluation", "udfs.popularity", "udfs.routing",
           "udfs.param_sync", "udfs.shard_state", "udfs.slot_check", "udfs.trainer",
           "udfs.models.base",
           "udfs.models.registry",
           "jobs.train", "jobs.replay", "udfs.hold"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
