"""Conformance checks for table and optimizer kinds (after River's ``checks``).

:func:`ps.config.register_table` and :func:`ps.config.register_optimizer` run
:func:`check_table` / :func:`check_optimizer` on a new kind before they accept it,
and ``tests/ps/test_conformance.py`` runs every check on every registered kind, so
the list of what is checked is the registries, never a list kept by hand. A check
raises ``AssertionError`` saying what the kind got wrong.

Examples
--------
>>> from ps.config import FTRLConfig, HashedTableConfig
>>> check_table(HashedTableConfig(rows=64))
>>> check_optimizer(FTRLConfig(l1=0.01))
>>> [c.__name__ for c in OPTIMIZER_CHECKS][:2]
['builds_its_kind', 'round_trips_its_dict']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ps.config import OptimizerConfig, TableConfig
from ps.optimizers import Optimizer, step
from ps.table.base import Table
from ps.table.rows import EMPTY_ID

WIDTH = 3  # values per row in the table checks


def _expect(ok: bool, what: str) -> None:
    # Not `assert`: the checks also guard registration, which must not vanish under -O.
    if not ok:
        raise AssertionError(what)


def _round_trip(config: object) -> None:
    # What freshet.config writes to JSON and TOML, and builds back by the kind key.
    data = dataclasses.asdict(config)
    _expect(data.pop("kind", None) == type(config).kind, f"asdict({config!r}) lacks its kind")
    again = type(config)(**data)
    _expect(again == config, f"{config!r} read back from {data} is {again!r}")


# -- tables ---------------------------------------------------------------------------
NewTable = Callable[[], Table]


def is_a_table(new: NewTable) -> None:
    table = new()
    _expect(isinstance(table, Table), f"build() made {table!r}, not a ps.table.Table")
    _expect(table.rows.width == WIDTH, f"rows are {table.rows.width} wide, not {WIDTH}")


def empty_finds_nothing(new: NewTable) -> None:
    table = new()
    _expect(len(table) == 0, "a new table is not empty")
    _expect(table.find(np.array([1, 2, -5])).tolist() == [-1, -1, -1],
            "a new table finds IDs")


def insert_then_find_agree_and_are_stable(new: NewTable) -> None:
    table = new()
    ids = np.array([5, 9, 5, -3, 2**40, 9])
    rows, created = table.insert(ids)
    _expect(rows[0] == rows[2] and rows[1] == rows[5], "repeats of an ID got other rows")
    _expect(bool((table.find(ids) == rows).all()), "find disagrees with insert")
    _expect(len(created) == len(set(created.tolist())) == len(table),
            "new rows are not each once, or not counted by len()")
    again, created2 = table.insert(ids)
    _expect(bool((again == rows).all()) and len(created2) == 0,
            "inserting present IDs moved or created rows")
    many = np.arange(100, 20_100)  # past any initial size: growth keeps every row
    rows, _ = table.insert(many)
    _expect(bool((table.find(many) == rows).all()), "rows changed as the table filled")
    _expect(bool((table.find(ids) >= 0).all()), "early IDs were lost as the table filled")


def rows_hold_values(new: NewTable) -> None:
    table = new()
    ids = np.arange(20)
    rows, _ = table.insert(ids)
    table.rows.values[rows, 0] = ids  # last writer wins on shared rows
    got = table.rows.gather(table.find(ids), 1)[:, 0]
    _expect(bool((got == table.rows.values[rows, 0]).all()), "find reads another row")
    if table.collisionless:
        _expect(bool((got == ids).all()), "a collisionless table shares rows")


def delete_removes(new: NewTable) -> None:
    table = new()
    table.insert(np.arange(10))
    gone = table.delete(np.array([3, 3, 99]))
    _expect(3 in gone.tolist() and 99 not in gone.tolist(),
            f"delete([3, 3, 99]) returned {gone.tolist()}")
    _expect(table.find(np.array([3])).tolist() == [-1], "a deleted ID is still found")
    _expect(len(table) < 10, "len() did not drop after a delete")


def items_match_find(new: NewTable) -> None:
    table = new()
    table.insert(np.arange(0, 300, 7))
    ids, rows = table.items()
    _expect(len(ids) == len(table), "items() and len() disagree")
    _expect(bool((table.find(ids) == rows).all()), "items() and find() disagree")


def nbytes_counts_rows(new: NewTable) -> None:
    table = new()
    before = table.nbytes
    table.insert(np.arange(1000))
    _expect(table.nbytes >= before > 0, "nbytes is 0 or shrank on inserts")


def reserved_id_rejected(new: NewTable) -> None:
    table = new()
    try:
        table.insert(np.array([EMPTY_ID]))
    except ValueError as e:
        _expect("reserved" in str(e), f"rejected EMPTY_ID with {e!r}")
        return
    raise AssertionError("inserting the reserved EMPTY_ID did not raise ValueError")


TABLE_CHECKS: tuple[Callable[[NewTable], None], ...] = (
    is_a_table, empty_finds_nothing, insert_then_find_agree_and_are_stable,
    rows_hold_values, delete_removes, items_match_find, nbytes_counts_rows,
    reserved_id_rejected,
)


def check_table(config: TableConfig) -> None:
    """Every table check on fresh tables of ``config`` (``WIDTH`` values per row)."""
    _round_trip(config)
    for check in TABLE_CHECKS:
        check(lambda: config.build(WIDTH, seed=0))


# -- optimizers -----------------------------------------------------------------------
DIM = 3


def _rows(opt: Optimizer, n: int = 4, seed: int = 0) -> np.ndarray:
    """``n`` rows ``[embedding | state]`` with random weights and their initial state."""
    rng = np.random.default_rng(seed)
    values = np.empty((n, DIM + opt.state_width(DIM)), np.float32)
    values[:, :DIM] = rng.normal(0, 1, (n, DIM))
    values[:, DIM:] = opt.init_state(n, DIM)
    return values


def builds_its_kind(config: OptimizerConfig) -> None:
    opt = config.build()
    _expect(isinstance(opt, Optimizer), f"build() made {opt!r}, not a ps.optimizers.Optimizer")
    _expect(opt.kind == config.kind and opt.code == config.code,
            f"build() made {opt!r} for kind {config.kind!r}, code {config.code}")
    _expect(opt.hyper().tolist() == np.array(config.hyper(), np.float32).tolist(),
            f"build() made hyper {opt.hyper().tolist()}, not {config.hyper()}")


def round_trips_its_dict(config: OptimizerConfig) -> None:
    _round_trip(config)


def state_width_is_what_it_declares(config: OptimizerConfig) -> None:
    opt = config.build()
    width = opt.state_width(DIM)
    initial = config.initial_state()
    _expect(width == len(initial) * DIM,
            f"state_width({DIM}) = {width}, not {len(initial)} floats per weight")
    state = opt.init_state(5, DIM)
    _expect(state.shape == (5, width) and state.dtype == np.float32,
            f"init_state(5, {DIM}) is {state.dtype} {state.shape}, not float32 (5, {width})")
    # Weight j's k-th state float is column j + DIM * k (ps.slot.Cells).
    want = np.repeat(np.array(initial, np.float32), DIM)
    _expect(bool((state == want).all()), f"init_state rows are {state[0].tolist()}, "
                                         f"not {want.tolist()} (initial_state {initial})")
    values = np.full((6, DIM + width + 2), 7.0, np.float32)  # 2 columns past the row
    values[:, : DIM + width] = _rows(opt, 6)
    before = values.copy()
    opt.apply(values, np.array([1, 4]), np.ones((2, DIM), np.float32), DIM)
    _expect(bool((values[:, DIM + width :] == 7.0).all()), "apply wrote past the row's width")
    _expect(bool((values[[0, 2, 3, 5]] == before[[0, 2, 3, 5]]).all()),
            "apply wrote rows it was not given")


def zero_gradient_changes_nothing(config: OptimizerConfig) -> None:
    # The trainer steps first-order weights itself and pushes 0 for them.
    opt = config.build()
    values = _rows(opt)
    rows = np.arange(len(values))
    opt.apply(values, rows, np.ones((len(rows), DIM), np.float32), DIM)  # some state first
    before = values.copy()
    opt.apply(values, rows, np.zeros((len(rows), DIM), np.float32), DIM)
    _expect(bool((values == before).all()), "a zero gradient changed weights or state")


def steps_reduce_a_quadratic_loss(config: OptimizerConfig) -> None:
    opt = config.build()
    values = _rows(opt)
    rows = np.arange(len(values))
    losses = [0.5 * float((values[:, :DIM].astype(np.float64) ** 2).sum())]
    for _ in range(20):
        opt.apply(values, rows, values[:, :DIM].copy(), DIM)  # d/dw of w^2 / 2
        losses.append(0.5 * float((values[:, :DIM].astype(np.float64) ** 2).sum()))
    _expect(max(losses[1:]) <= losses[0] and losses[-1] < 0.9 * losses[0],
            f"20 steps on sum(w^2)/2 went {losses[0]:.3f} -> {losses[-1]:.3f}")


def step_agrees_with_apply(config: OptimizerConfig) -> None:
    # The trainer's per-example first-order steps run `step` on one weight and its
    # state (udfs/first_order.py); pushes run `apply` on whole rows.
    opt = config.build()
    a = _rows(opt)
    rows = np.arange(len(a))
    opt.apply(a, rows, np.ones((len(a), DIM), np.float32), DIM)  # some state first
    b = a.copy()
    g = np.random.default_rng(1).normal(0, 1, (len(a), DIM)).astype(np.float32)
    opt.apply(a, rows, g, DIM)
    k = (DIM + opt.state_width(DIM)) // DIM
    h = opt.hyper()
    for r in rows:
        for j in range(DIM):
            cell = [b[r, j + DIM * m] if m < k else np.float32(0) for m in range(3)]
            w, s1, s2 = step(opt.code, h, cell[0], cell[1], cell[2], g[r, j])
            b[r, j] = w
            for m, s in ((1, s1), (2, s2)):
                if m < k:
                    b[r, j + DIM * m] = s
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7,
                               err_msg="step() and apply() step differently")


OPTIMIZER_CHECKS: tuple[Callable[[OptimizerConfig], None], ...] = (
    builds_its_kind, round_trips_its_dict, state_width_is_what_it_declares,
    zero_gradient_changes_nothing, steps_reduce_a_quadratic_loss, step_agrees_with_apply,
)


def check_optimizer(config: OptimizerConfig) -> None:
    """Every optimizer check on ``config``."""
    for check in OPTIMIZER_CHECKS:
        check(config)
