"""What every registered dense model must do, checked for each kind in the registry.

The list of models is the registry (``model_kinds()``), never a list kept here, so a
model is checked the moment it is registered: its two halves agree, its weights are
named once and travel whole, its kind travels in the dense delta's header and
serving scores it, and its NumPy half runs without TensorFlow.
"""

from __future__ import annotations

import doctest
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from freshet.config import TrainConfig, load_config
from freshet.topics import ExampleBatch
from jobs.serve import numpy_forward as serving_forward
from ps.config import SlotConfig
from ps.delta import DeltaAssembler, encode_dense
from ps.serving.state import ServingState
from ps.serving.store import Position
from server.loader import DeltaLoader
from udfs.models import architecture, model_kinds, numpy_forward
from udfs.models.base import Architecture, export_weights, import_weights

# Input shapes every model must take: several slots with an MLP, and one slot
# without (dim 3: column 0 plus two factors).
SHAPES = {"wide": {"n_slots": 4, "dim": 6, "hidden": [8, 4]},
          "one-slot": {"n_slots": 1, "dim": 3, "hidden": []}}


@pytest.fixture(params=model_kinds())
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=sorted(SHAPES))
def arch(kind: str, request: pytest.FixtureRequest) -> Architecture:
    return architecture(kind)(**SHAPES[request.param], first_order_scale=2.0)


def pooled_for(arch: Architecture, n: int = 32, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, arch.n_slots, arch.dim)).astype(np.float32)


def keras_logits(arch: Architecture, weights: dict[str, np.ndarray],
                 pooled: np.ndarray) -> np.ndarray:
    model = arch.build_keras()
    import_weights(model, weights)
    return np.asarray(model(pooled))


def test_registered_under_its_kind(kind: str) -> None:
    cls = architecture(kind)
    assert issubclass(cls, Architecture) and cls.kind == kind


def test_numpy_forward_equals_keras_on_random_weights(arch: Architecture) -> None:
    # Random weights, not Keras' initial ones: those start every bias at zero.
    weights, pooled = arch.random_weights(seed=3), pooled_for(arch)
    want = keras_logits(arch, weights, pooled)
    np.testing.assert_allclose(arch.forward(weights, pooled), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(numpy_forward(weights, pooled, arch.kind), want,
                               rtol=1e-4, atol=1e-4)
    assert want.shape == (len(pooled),) and want.std() > 0.1  # not a comparison of constants


def test_every_weight_moves_the_logits(arch: Architecture) -> None:
    """A weight the forward ignores would be trained, shipped and never served."""
    weights, pooled = arch.random_weights(seed=4), pooled_for(arch)
    base = arch.forward(weights, pooled)
    for name in weights:
        nudged = {**weights, name: weights[name] + 0.5}
        assert not np.allclose(arch.forward(nudged, pooled), base), name


def test_first_order_column_enters_linearly_with_its_scale(arch: Architecture) -> None:
    """The trainer's per-example first-order steps (udfs/first_order.py) move a logit by
    ``first_order_scale`` times the change of column 0: every model must agree."""
    weights, pooled = arch.random_weights(seed=5), pooled_for(arch).astype(np.float64)
    scale = float(weights["first_order_scale"][0])
    base = arch.forward(weights, pooled)
    for s in range(arch.n_slots):
        moved = pooled.copy()
        moved[:, s, 0] += 0.25
        np.testing.assert_allclose(arch.forward(weights, moved) - base, 0.25 * scale,
                                   rtol=1e-3, atol=1e-3)


def test_weights_export_and_import_round_trip(arch: Architecture) -> None:
    model = arch.build_keras()
    exported = export_weights(model)
    assert list(exported) == arch.weight_names()
    assert {k: v.shape for k, v in exported.items()} == arch.weight_shapes()
    assert all(v.dtype == np.float32 for v in exported.values())
    weights = arch.random_weights(seed=6)
    import_weights(model, weights)
    again = export_weights(model)
    for k, v in weights.items():
        np.testing.assert_array_equal(again[k], v)
    pooled = pooled_for(arch)  # a fresh model given the weights scores the same
    np.testing.assert_array_equal(keras_logits(arch, again, pooled), np.asarray(model(pooled)))
    with pytest.raises(ValueError, match="do not match"):
        import_weights(model, {k: v for k, v in weights.items() if k != "bias"})
    with pytest.raises(ValueError, match="do not match"):
        import_weights(model, {**weights, "stray": np.zeros(1, np.float32)})


def test_weight_names_are_unique_complete_and_stable(arch: Architecture) -> None:
    import keras

    keras.utils.set_random_seed(1)
    model = arch.build_keras()
    named = model.named_weights()
    assert len({id(v) for v in named.values()}) == len(named)  # no two names, one variable
    # Every variable is exported: one left out would train but never reach serving.
    assert {id(v) for v in model.weights} == {id(v) for v in named.values()}
    assert all(n and n == n.strip("/") and n.replace("/", "").replace("_", "").isalnum()
               for n in named), list(named)
    keras.utils.set_random_seed(2)
    assert list(arch.build_keras().named_weights()) == list(named)  # not seed- or run-dependent
    rebuilt = architecture(arch.kind)(arch.n_slots, arch.dim, arch.hidden, 2.0)
    assert rebuilt.weight_shapes() == arch.weight_shapes()


def test_kind_round_trips_through_the_dense_delta_header(arch: Architecture) -> None:
    weights, pooled = arch.random_weights(seed=7), pooled_for(arch)
    msgs = encode_dense(weights, model_kind=arch.kind, model_id="m", shard=0, seq=1,
                        watermark_ms=0, wall_time_ms=0)
    asm = DeltaAssembler()
    (update,) = [u for _, v in msgs if (u := asm.feed(v)) is not None]
    assert update.meta.kind == "dense" and update.meta.model_kind == arch.kind
    np.testing.assert_allclose(numpy_forward(update.payload, pooled, update.meta.model_kind),
                               keras_logits(arch, weights, pooled), rtol=1e-4, atol=1e-4)


def test_serving_loads_and_scores_it(arch: Architecture) -> None:
    weights, pooled = arch.random_weights(seed=8), pooled_for(arch)
    loader = offline_loader()
    (update,) = [u for _, v in encode_dense(weights, model_kind=arch.kind, model_id="m",
                                            shard=0, seq=1, watermark_ms=0, wall_time_ms=0)
                 if (u := loader.assembler.feed(v)) is not None]
    loader._apply(update)
    served = loader.state.read({}).dense
    assert served is not None and served.kind == arch.kind and not loader.rejected
    np.testing.assert_allclose(serving_forward()(served.weights, pooled, served.kind),
                               arch.forward(weights, pooled), rtol=1e-6)


def test_config_accepts_it(kind: str) -> None:
    assert load_config(path=None, environ={"FRESHET__MODEL__KIND": kind}).model.kind == kind


def test_trains_on_a_learnable_stream(kind: str, streams: SimpleNamespace) -> None:
    from udfs.trainer import Trainer

    tr = Trainer(streams.model_config(kind), TrainConfig(micro_batch=32, eval_window_examples=512))
    for m in streams.messages(streams.examples(3000), size=256):
        tr.train_batch(ExampleBatch.from_json(m))
    assert tr.eval.auc() > 0.75, tr.eval.auc()


def test_module_examples_run(kind: str) -> None:
    module = sys.modules[architecture(kind).__module__]
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_numpy_halves_never_import_tensorflow() -> None:
    code = ("import sys, numpy as np; from udfs.models import architecture, model_kinds\n"
            "for k in model_kinds():\n"
            "    a = architecture(k)(n_slots=2, dim=3, hidden=[4])\n"
            "    assert a.forward(a.random_weights(), np.ones((5, 2, 3), np.float32)).shape"
            " == (5,)\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "print('ok', len(model_kinds()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == f"ok {len(model_kinds())}", out.stderr[-2000:]


# -- a kind that is not registered is refused everywhere ---------------------------------
def offline_loader(state: ServingState | None = None) -> DeltaLoader:
    """A loader fed by hand (no broker): its updates go through :meth:`_apply`."""
    cfg = load_config(path=None, environ={})
    return DeltaLoader(cfg, state or ServingState([SlotConfig("item_id", dim=4)]), Position(),
                       "m")


def dense_update(loader: DeltaLoader, model_kind: str, seq: int = 1) -> None:
    weights = {"bias": np.zeros(1, np.float32)}
    for _, v in encode_dense(weights, model_kind=model_kind, model_id="m", shard=0, seq=seq,
                             watermark_ms=0, wall_time_ms=0):
        if (u := loader.assembler.feed(v)) is not None:
            loader._apply(u)


def test_the_forward_refuses_an_unknown_kind() -> None:
    w, pooled = {"bias": np.zeros(1, np.float32)}, np.zeros((1, 2, 3), np.float32)
    for forward in (numpy_forward, serving_forward()):
        with pytest.raises(ValueError, match="unknown model kind 'mlp'; known: ") as e:
            forward(w, pooled, "mlp")
        assert all(k in str(e.value) for k in model_kinds())


def test_the_loader_refuses_an_unknown_kind_and_keeps_its_model() -> None:
    loader = offline_loader()
    dense_update(loader, "lr", seq=1)
    dense_update(loader, "mlp", seq=2)
    served = loader.state.read({}).dense
    assert served.kind == "lr" and served.seq == 1
    assert len(loader.rejected) == 1 and "unknown model kind 'mlp'" in loader.rejected[0]
    assert "dense shard 0 seq 2" in loader.rejected[0]
    assert loader.metrics.malformed._value.get() == 1


def test_a_dense_update_without_a_kind_is_refused() -> None:
    """A trainer from before the kind travelled: its update still decodes, and is refused."""
    import pyarrow as pa

    loader = offline_loader()
    (key, value), = encode_dense({"bias": np.zeros(1, np.float32)}, model_kind="lr",
                                 model_id="m", shard=0, seq=1, watermark_ms=0, wall_time_ms=0)
    reader = pa.ipc.open_stream(value)
    batch = reader.read_next_batch()
    old = {k: v for k, v in batch.schema.metadata.items() if b"model_kind" not in k}
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema.with_metadata(old)) as w:
        w.write_batch(batch.replace_schema_metadata(old))
    update = loader.assembler.feed(sink.getvalue().to_pybytes())
    assert update is not None and update.meta.model_kind == ""
    loader._apply(update)
    assert loader.state.read({}).dense is None
    assert "names no model kind" in loader.rejected[0]


def test_a_restored_model_of_unknown_kind_is_not_served() -> None:
    from ps.serving.state import DenseModel

    state = ServingState([SlotConfig("item_id", dim=4)])
    state.set_dense(DenseModel({"bias": np.zeros(1, np.float32)}, 0, 3, 0, 0, "mlp"))
    loader = offline_loader(state)
    assert state.read({}).dense is None
    assert "restored dense shard 0 seq 3" in loader.rejected[0]


def test_encode_dense_needs_a_kind() -> None:
    with pytest.raises(ValueError, match="model_kind"):
        encode_dense({"bias": np.zeros(1, np.float32)}, model_kind="", model_id="m", shard=0,
                     seq=1, watermark_ms=0, wall_time_ms=0)
