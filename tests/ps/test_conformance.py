"""Every check of ps.checks on every registered table and optimizer kind.

The kinds come from the registries (``TableConfig.kinds``, ``OptimizerConfig.kinds``),
never from a list kept here: a kind is checked the moment it is registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ps.checks import OPTIMIZER_CHECKS, TABLE_CHECKS, WIDTH
from ps.config import AdagradConfig, OptimizerConfig, TableConfig
from ps.registry import register_optimizer


def cases(base: type) -> list:
    return [pytest.param(cls(**params), id=f"{kind}-{i}")
            for kind, cls in sorted(base.kinds.items())
            for i, params in enumerate(cls.check_params)]


@pytest.mark.parametrize("check", TABLE_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("config", cases(TableConfig))
def test_table_kind(config: TableConfig, check) -> None:  # noqa: ANN001
    check(lambda: config.build(WIDTH, seed=0))


@pytest.mark.parametrize("check", OPTIMIZER_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("config", cases(OptimizerConfig))
def test_optimizer_kind(config: OptimizerConfig, check) -> None:  # noqa: ANN001
    check(config)


def test_the_builtin_kinds_are_all_checked() -> None:
    assert {p.values[0].kind for p in cases(TableConfig)} == {"cuckoo", "hashed"}
    assert {p.values[0].kind for p in cases(OptimizerConfig)} == {"adagrad", "ftrl", "sgd"}


@dataclass(frozen=True)
class _Ascent(AdagradConfig):
    """Adagrad's state with a sign error: it climbs the loss."""

    kind: str = field(default="ascent", init=False, repr=False)

    def hyper(self) -> tuple[float, float, float, float]:
        return (-self.learning_rate, 0.0, 0.0, 0.0)


def test_registering_a_kind_that_fails_a_check_refuses_it() -> None:
    with pytest.raises(AssertionError, match="20 steps on sum"):
        register_optimizer(_Ascent)
    assert "ascent" not in OptimizerConfig.kinds

