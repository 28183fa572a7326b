"""Each in-table optimizer against a plain NumPy reference of its update rule.

What every optimizer kind must do (zero gradient, state width, ...) is in
tests/ps/test_conformance.py, over the registry."""

from __future__ import annotations

import numpy as np
import pytest

from ps.config import AdagradConfig, FTRLConfig, OptimizerConfig, SGDConfig
from ps.optimizers import Optimizer, sum_by_row


def reference(opt, w, state, g):  # noqa: ANN001, ANN201 - test helper
    """One step of config ``opt`` on float64 copies."""
    w, state, g = w.astype(np.float64), state.astype(np.float64), g.astype(np.float64)
    if isinstance(opt, SGDConfig):
        return w - opt.learning_rate * g, state
    if isinstance(opt, AdagradConfig):
        acc = state + g * g
        return w - opt.learning_rate * g / np.sqrt(acc), acc
    dim = w.shape[1]
    z, n = state[:, :dim], state[:, dim:]
    n_new = n + g * g
    z = z + g - (np.sqrt(n_new) - np.sqrt(n)) / opt.learning_rate * w
    w = np.where(
        np.abs(z) <= opt.l1,
        0.0,
        -(z - np.sign(z) * opt.l1) / ((opt.beta + np.sqrt(n_new)) / opt.learning_rate + opt.l2),
    )
    return w, np.hstack([z, n_new])


@pytest.mark.parametrize(
    "config",
    [SGDConfig(0.1), AdagradConfig(0.2, 0.1), FTRLConfig(0.3, 1.0, 0.0, 0.0),
     FTRLConfig(0.3, 0.5, 0.05, 0.1)],
    ids=["sgd", "adagrad", "ftrl", "ftrl-l1l2"],
)
def test_matches_reference_over_steps(config: OptimizerConfig) -> None:
    opt = config.build()
    rng = np.random.default_rng(0)
    dim, n = 4, 6
    values = np.zeros((n + 2, dim + opt.state_width(dim)), np.float32)
    rows = np.array([7, 0, 3, 5, 1, 2])  # not in order; rows 4 and 6 untouched
    values[rows, :dim] = rng.normal(0, 0.1, (n, dim))
    values[rows, dim:] = opt.init_state(n, dim)
    untouched = values[[4, 6]].copy()
    w, state = values[rows, :dim], values[rows, dim:]
    for _ in range(5):
        g = rng.normal(0, 1, (n, dim)).astype(np.float32)
        opt.apply(values, rows, g, dim)
        w, state = reference(config, w, state, g)
        np.testing.assert_allclose(values[rows, :dim], w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(values[rows, dim:], state, rtol=1e-4, atol=1e-5)
    assert (values[[4, 6]] == untouched).all()


def test_ftrl_l1_zeroes_weak_weights() -> None:
    opt = FTRLConfig(0.1, l1=10.0).build()
    values = np.zeros((1, 3), np.float32)
    values[0, 0] = 0.5
    opt.apply(values, np.array([0]), np.array([[0.01]], np.float32), 1)
    assert values[0, 0] == 0.0


def test_sum_by_row() -> None:
    rows, summed = sum_by_row(np.array([1, -1, 0, 1], np.int32),
                              np.array([[1, 2], [9, 9], [3, 4], [5, 6]], np.float32))
    assert rows.tolist() == [0, 1] and summed.tolist() == [[3, 4], [6, 8]]
    rows, summed = sum_by_row(np.array([-1], np.int32), np.ones((1, 2), np.float32))
    assert rows.shape == (0,) and summed.shape == (0, 2)


def test_sum_by_row_adds_in_the_order_a_loop_would() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        rows = rng.integers(-1, 8, n).astype(np.int32)
        grads = (rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-6, 6, (n, 1))).astype(np.float32)
        uniq, summed = sum_by_row(rows, grads)
        expected = {}
        for r, g in zip(rows, grads, strict=True):  # float32 sums, in order of appearance
            if r >= 0:
                expected[int(r)] = expected.get(int(r), np.zeros(3, np.float32)) + g
        assert uniq.tolist() == sorted(expected)
        assert np.array_equal(summed, np.array([expected[r] for r in sorted(expected)],
                                               np.float32).reshape(-1, 3))


def test_the_kernel_refuses_a_code_it_has_no_branch_for() -> None:
    with pytest.raises(ValueError, match="code 7 is not a branch"):
        Optimizer("adam", code=7, hyper=(0.1, 0, 0, 0), initial_state=())
    with pytest.raises(ValueError, match="at most 2 state floats"):
        Optimizer("adam", code=1, hyper=(0.1, 0, 0, 0), initial_state=(0, 0, 0))
