"""The loader against the embedded broker: dedupe, restart, broker resets, the gate."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from freshet.config import Config
from freshet.kafka import producer
from freshet.topics import Example, ExampleBatch, encode_examples
from jobs.serve import numpy_forward
from ps.serving.store import Position, ServingStore
from ps.serving.synthetic import dense_messages, publish, sparse_messages, sparse_rows
from server.gate import ValidationGate
from server.loader import DeltaLoader
from server.window import ExampleWindow

MODEL = "m"


def rows(seq: int, n: int = 300, start: int = 0):
    """Update ``seq``: items start..start+n-1, every value = seq."""
    ids = np.arange(start, start + n)
    return sparse_rows({"item_id": (ids, np.full((n, 16), float(seq), np.float32))})


def loader_for(cfg: Config, store: ServingStore | None = None, **kw) -> DeltaLoader:
    state, position = store.load(cfg.model.slots) if store else (None, Position())
    if state is None:
        from ps.serving.state import ServingState
        state = ServingState(cfg.model.slots)
    ld = DeltaLoader(cfg, state, position, MODEL, store=store, **kw)
    ld.open()
    return ld


def pump(ld: DeltaLoader, until: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll until ``until()`` holds, then until the topic is idle for a moment."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "loader did not get there in time"
        ld.poll(0.1)
    idle = time.monotonic()
    while time.monotonic() - idle < 0.5:
        if ld.poll(0.1):
            idle = time.monotonic()


def item(ld: DeltaLoader, ids) -> np.ndarray:
    return ld.state.read({"item_id": np.asarray(ids)}).embeddings["item_id"][:, 0]


def test_duplicates_and_redeliveries_are_harmless(cfg: Config) -> None:
    topic, p = cfg.topics.name("params"), producer(cfg)
    one = sparse_messages(rows(1), MODEL, seq=1, max_part_bytes=8 * 1024)
    two = sparse_messages(rows(2, start=100), MODEL, seq=2, max_part_bytes=8 * 1024)
    assert len(one) > 2  # several parts
    # Out-of-order duplicate parts, a whole re-delivery, and a stale re-delivery after 2.
    publish(p, topic, [one[1], *one, *one, *two, *one, two[0]])
    ld = loader_for(cfg)
    pump(ld, lambda: ld.state.versions.table >= 2)
    assert ld.applied == 2 and ld.state.versions.table == 2
    assert item(ld, [0, 99, 100, 399]).tolist() == [1.0, 1.0, 2.0, 2.0]  # 2 not rolled back
    assert ld.metrics.duplicates._value.get() >= len(one) * 2
    ld._consumer.close()


def test_update_that_does_not_fit_is_skipped_and_loading_goes_on(cfg: Config) -> None:
    topic, p = cfg.topics.name("params"), producer(cfg)
    wrong_dim = sparse_rows({"item_id": (np.arange(5), np.ones((5, 3), np.float32))})
    publish(p, topic, sparse_messages(wrong_dim, MODEL, seq=1)
            + sparse_messages(rows(2), MODEL, seq=2))
    ld = loader_for(cfg)
    pump(ld, lambda: ld.state.versions.table == 1)
    assert ld.applied == 1
    assert len(ld.rejected) == 1 and "serving dim is 16" in ld.rejected[0]
    assert item(ld, [0, 299]).tolist() == [2.0, 2.0]
    ld._consumer.close()


def test_restart_resumes_without_replay(cfg: Config) -> None:
    topic, p = cfg.topics.name("params"), producer(cfg)
    store = ServingStore(cfg.path("serving"))
    for seq in (1, 2, 3):
        publish(p, topic, sparse_messages(rows(seq, start=100 * seq), MODEL, seq))
    a = loader_for(cfg, store)
    pump(a, lambda: a.applied == 3)
    a.snapshot(force=True)
    a._consumer.close()
    for seq in (4, 5):
        publish(p, topic, sparse_messages(rows(seq, start=100 * seq), MODEL, seq))
    b = loader_for(cfg, store)
    assert b.state.versions.table == 3  # restored, not replayed
    pump(b, lambda: b.state.versions.table == 5)
    assert b.applied == 2 and not b.resets
    assert item(b, [100, 200, 300, 400, 500]).tolist() == [1, 2, 3, 4, 5]
    b._consumer.close()


def test_snapshot_mid_update_resumes_before_its_first_part(cfg: Config) -> None:
    topic, p = cfg.topics.name("params"), producer(cfg)
    store = ServingStore(cfg.path("serving"))
    publish(p, topic, sparse_messages(rows(1), MODEL, seq=1))
    parts = sparse_messages(rows(2, n=2000, start=1000), MODEL, seq=2, max_part_bytes=16 * 1024)
    publish(p, topic, parts[:2])  # the trainer crashed (or is slow) mid-update
    a = loader_for(cfg, store)
    pump(a, lambda: a.next[0] == 3)
    assert a.applied == 1 and a.position().offsets == {0: 1}
    a.snapshot(force=True)
    a._consumer.close()
    publish(p, topic, parts[2:])
    b = loader_for(cfg, store)
    pump(b, lambda: b.state.versions.table == 2)
    assert item(b, [0, 1000, 2999]).tolist() == [1.0, 2.0, 2.0]
    b._consumer.close()


@pytest.mark.parametrize("how", ["shorter", "different"])
def test_topic_reset_is_detected_and_reread(cfg: Config, how: str) -> None:
    topic, p = cfg.topics.name("params"), producer(cfg)
    store = ServingStore(cfg.path("serving"))
    publish(p, topic, sparse_messages(rows(7), MODEL, seq=7))
    ld = loader_for(cfg, store)
    pump(ld, lambda: ld.applied == 1)
    # Pretend the snapshot came from an older, longer topic (the broker restarted).
    stale = Position(offsets={0: 50 if how == "shorter" else 1}, last_crc={0: 12345},
                     seqs={f"{MODEL}/sparse/0": 99})
    store.save(ld.state, stale)
    ld._consumer.close()
    b = loader_for(cfg, store, probe_timeout_s=1.0)
    pump(b, lambda: b.applied == 1)  # seq 7 < 99, applied only because seqs were cleared
    assert len(b.resets) == 1 and b.metrics.offset_resets._value.get() == 1
    assert ("shorter" in b.resets[0]) == (how == "shorter")
    b._consumer.close()


def deepfm(sign: float) -> dict[str, np.ndarray]:
    """3 slots x dim 16: one hidden unit reads the item's first factor (MLP input 15);
    ``sign`` +1 ranks items with a positive factor first, -1 last."""
    k0 = np.zeros((45, 1), np.float32)
    k0[15, 0] = 1.0
    return {"bias": np.zeros(1, np.float32), "mlp/0/kernel": k0,
            "mlp/0/bias": np.ones(1, np.float32),
            "mlp/out/kernel": np.array([[sign]], np.float32),
            "mlp/out/bias": np.zeros(1, np.float32)}


def test_rejected_dense_update_leaves_old_model_serving(cfg: Config) -> None:
    topic, p = cfg.topics.name("params"), producer(cfg)
    n = 400
    ids, labels = np.arange(n), np.arange(n) % 2
    vals = np.zeros((n, 16), np.float32)
    vals[:, 1] = np.where(labels == 1, 1.0, -1.0)  # the item's first factor predicts clicks
    publish(p, topic, sparse_messages(sparse_rows({"item_id": (ids, vals)}), MODEL, seq=1))
    window = ExampleWindow(1000)
    window.add(ExampleBatch.from_json(encode_examples([
        Example(f"r{i}", int(i), 0, 0, int(labels[i]), slots={"item_id": [int(i)]})
        for i in ids])))
    slots = [s.name for s in cfg.model.slots]
    gate = ValidationGate(numpy_forward(), slots, 16, margin=0.01, min_examples=100)
    publish(p, topic, dense_messages(deepfm(+1.0), MODEL, seq=1, model_kind="deepfm")
            # ranks every pair wrong
            + dense_messages(deepfm(-1.0), MODEL, seq=2, model_kind="deepfm")
            + dense_messages({"bias": np.array([np.inf], np.float32)}, MODEL, seq=3,
                             model_kind="deepfm"))
    ld = loader_for(cfg, gate=gate, window=window)
    pump(ld, lambda: len(ld.decisions) == 3)
    assert ld.state.dense.seq == 1 and ld.state.versions.model == 1
    worse, diverged = ld.decisions[1], ld.decisions[2]
    assert not worse.accepted and "below current" in worse.reason
    assert (worse.auc_candidate, worse.auc_current) == (0.0, 1.0)
    assert not diverged.accepted and "non-finite" in diverged.reason
    assert ld.metrics.gate.labels("rejected")._value.get() == 2
    # The old model still scores: clicked items above the others.
    view = ld.state.read({"item_id": ids})
    logits = numpy_forward()(view.dense.weights, np.stack(
        [np.zeros((n, 16)), view.embeddings["item_id"], np.zeros((n, 16))], axis=1),
        view.dense.kind)
    assert (logits[labels == 1].min() > logits[labels == 0].max())
    ld._consumer.close()
