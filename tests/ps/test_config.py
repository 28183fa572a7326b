"""Slot policies: each value checked when made, each reaching the object it configures
from TOML through ``load_config``, and every mistake failing there with its key path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freshet.config import Config, ConfigError, load_config
from ps import EmbeddingCollection, HashedTable
from ps.config import (
    AdagradConfig,
    AdmissionConfig,
    CuckooTableConfig,
    ExpiryConfig,
    FTRLConfig,
    HashedTableConfig,
    SGDConfig,
    SlotConfig,
)
from ps.slot import EmbeddingSlot


def slots_from(tmp_path: Path, toml: str) -> list[SlotConfig]:
    f = tmp_path / "freshet.toml"
    f.write_text(toml)
    return load_config(f, environ={}).model.slots


@pytest.mark.parametrize("make, message", [
    (lambda: SGDConfig(learning_rate=0), "learning_rate: must be a finite number > 0"),
    (lambda: AdagradConfig(initial_accumulator=-1), "initial_accumulator: must be"),
    (lambda: FTRLConfig(l1=float("nan")), "l1: must be a finite number >= 0"),
    (lambda: HashedTableConfig(rows=0), "rows: must be an int >= 1"),
    (lambda: AdmissionConfig(min_count=0), r"min_count: must be an int in \[1, 255\]"),
    (lambda: AdmissionConfig(admit_prob=-0.1), r"admit_prob: must be in \[0, 1\]"),
    (lambda: AdmissionConfig(sketch_width=1000), "sketch_width: must be a power of two"),
    (lambda: ExpiryConfig(ttl_s=-1), "ttl_s: must be a finite number >= 0"),
    (lambda: SlotConfig("u", dim=0), "dim: must be an int >= 1"),
])
def test_bad_values_fail_when_made(make, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=message):
        make()


def test_a_policy_that_is_not_a_config_is_refused() -> None:
    with pytest.raises(TypeError, match="optimizer: must be an instance of OptimizerConfig"):
        SlotConfig("u", optimizer="sgd")


def test_each_optimizer_setting_reaches_the_optimizer(tmp_path: Path) -> None:
    sgd, ada, ftrl = slots_from(tmp_path, """
[[model.slots]]
name = "a"
optimizer = {kind = "sgd", learning_rate = 0.3}
[[model.slots]]
name = "b"
optimizer = {kind = "adagrad", learning_rate = 0.2, initial_accumulator = 0.5}
[[model.slots]]
name = "c"
optimizer = {kind = "ftrl", learning_rate = 0.4, beta = 0.5, l1 = 0.01, l2 = 0.02}
""")
    assert ftrl.optimizer == FTRLConfig(0.4, 0.5, 0.01, 0.02)
    built = [EmbeddingSlot(s).optimizer for s in (sgd, ada, ftrl)]
    assert [o.kind for o in built] == ["sgd", "adagrad", "ftrl"]
    np.testing.assert_array_equal(built[0].hyper(), np.float32([0.3, 0, 0, 0]))
    np.testing.assert_array_equal(built[1].hyper(), np.float32([0.2, 0, 0, 0]))
    np.testing.assert_array_equal(built[1].init_state(1, 2), np.float32([[0.5, 0.5]]))
    np.testing.assert_array_equal(built[2].hyper(), np.float32([0.4, 0.5, 0.01, 0.02]))


def test_the_default_optimizer_is_the_tuned_adagrad() -> None:
    """Unchanged defaults: Adagrad, learning rate 0.1, accumulator from 0.1."""
    opt = EmbeddingSlot(SlotConfig("u")).optimizer
    assert opt.kind == "adagrad" and opt.hyper()[0] == np.float32(0.1)
    assert opt.init_state(1, 1).tolist() == [[np.float32(0.1)]]


def test_table_settings_reach_the_tables(tmp_path: Path) -> None:
    f = tmp_path / "freshet.toml"
    f.write_text("""
[train]
table = {kind = "hashed", rows = 32}
[[model.slots]]
name = "own"
dim = 4
table = {kind = "hashed", rows = 8}
[[model.slots]]
name = "default"
dim = 4
[[model.slots]]
name = "cuckoo"
dim = 4
table = {kind = "cuckoo"}
""")
    cfg = load_config(f, environ={})
    assert cfg.train.table == HashedTableConfig(rows=32)
    coll = EmbeddingCollection(cfg.model.slots, table=cfg.train.table)
    own, default, cuckoo = (coll.slots[n].table for n in ("own", "default", "cuckoo"))
    assert isinstance(own, HashedTable) and own.n_rows == 8
    assert isinstance(default, HashedTable) and default.n_rows == 32
    assert cuckoo.collisionless and coll.tables()["cuckoo"] == CuckooTableConfig()
    env = load_config(path=None, environ={"FRESHET__TRAIN__TABLE__KIND": "hashed",
                                          "FRESHET__TRAIN__TABLE__ROWS": "50"})
    assert env.train.table == HashedTableConfig(rows=50)


def test_admission_settings_reach_the_filter(tmp_path: Path) -> None:
    (s,) = slots_from(tmp_path, """
[[model.slots]]
name = "u"
admission = {min_count = 3, admit_prob = 0.5, sketch_width = 256, sketch_depth = 2}
""")
    f = EmbeddingSlot(s).filter
    assert (f.min_count, f.admit_prob, f.sketch.table.shape) == (3, 0.5, (2, 256))


def test_expiry_setting_reaches_the_slot(tmp_path: Path) -> None:
    (s,) = slots_from(tmp_path, '[[model.slots]]\nname = "u"\ndim = 2\nexpiry = {ttl_s = 10}\n')
    slot = EmbeddingSlot(s)
    slot.pull(np.array([1]), now=0.0)
    assert slot.evict_expired(now=9.0) == 0 and slot.evict_expired(now=11.0) == 1


def test_policies_survive_the_trip_to_the_flink_workers(tmp_path: Path) -> None:
    f = tmp_path / "freshet.toml"
    f.write_text("""
[train]
table = {kind = "hashed", rows = 99}
[[model.slots]]
name = "u"
optimizer = {kind = "ftrl", l1 = 0.5}
table = {kind = "cuckoo"}
admission = {min_count = 2}
expiry = {ttl_s = 5}
[[model.slots]]
name = "i"
""")
    cfg = load_config(f, environ={})
    assert Config.from_json(cfg.to_json()) == cfg  # what jobs/train.py ships
    assert cfg.model.slots[1].table is None


@pytest.mark.parametrize("slot, message", [
    ('optimizer = {kind = "adam"}',
     "model.slots[1].optimizer.kind: 'adam' is not one of adagrad, ftrl, sgd"),
    ("optimizer = {learning_rate = 0.1}",
     "model.slots[1].optimizer.kind: missing; one of adagrad, ftrl, sgd"),
    ('optimizer = {kind = "adagrad", l1 = 0.1}',
     "model.slots[1].optimizer: unknown keys ['l1']; known: learning_rate, initial_accumulator"),
    ('optimizer = {kind = "sgd", learning_rate = -1}',
     "model.slots[1].optimizer.learning_rate: must be a finite number > 0, got -1.0"),
    ('table = {kind = "hashed"}',
     "model.slots[1].table.rows: must be an int >= 1 (the slot table's fixed row count), got 0"),
    ('table = {kind = "lsh", rows = 4}',
     "model.slots[1].table.kind: 'lsh' is not one of cuckoo, hashed"),
    ("admission = {admit_prob = 2}",
     "model.slots[1].admission.admit_prob: must be in [0, 1], got 2.0"),
    ("expiry = {ttl_s = -5}",
     "model.slots[1].expiry.ttl_s: must be a finite number >= 0, got -5.0"),
    ("expiry = 5", "model.slots[1].expiry: expected a table, got 5"),
    ("ttl_s = 5", "model.slots[1]: unknown keys ['ttl_s']"),
])
def test_a_bad_policy_fails_at_load_with_its_key_path(tmp_path: Path, slot: str,
                                                      message: str) -> None:
    f = tmp_path / "freshet.toml"
    f.write_text(f'[[model.slots]]\nname = "u"\n[[model.slots]]\nname = "i"\n{slot}\n')
    with pytest.raises(ConfigError) as e:
        load_config(f, environ={})
    assert str(e.value).startswith(message)


@pytest.mark.parametrize("environ, message", [
    ({"FRESHET__TRAIN__TABLE__KIND": "hashed"}, "train.table.rows: must be an int >= 1"),
    ({"FRESHET__TRAIN__TABLE": "hashed"}, "train.table (FRESHET__TRAIN__TABLE): expected a JSON"),
    ({"FRESHET__MODEL__SLOTS": '[{"name": "u", "optimizer": {"kind": "adam"}}]'},
     "model.slots[0].optimizer.kind: 'adam' is not one of"),
    ({"FRESHET__MODEL__SLOTS": '[{"name": "u"}, {"name": "u"}]'},
     "model.slots: slot names must differ; twice: u"),
    ({"FRESHET__MODEL__SLOTS": '[{"name": "u", "dim": 4}, {"name": "i", "dim": 8}]'},
     "model.slots: every slot needs the same dim, got u=4, i=8"),
])
def test_a_bad_environment_override_fails_at_load(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(path=None, environ=environ)
    assert str(e.value).startswith(message)
