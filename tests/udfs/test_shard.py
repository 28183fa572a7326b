"""A trainer shard's state, restore and parameter sync, without Flink."""

from __future__ import annotations

import copy
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from freshet.config import Config, SyncConfig, TrainConfig
from ps import EmbeddingCollection
from ps.delta import DeltaAssembler
from udfs.shard import ShardWorker
from udfs.shard_state import MemoryState


def make_cfg(streams: SimpleNamespace, sync_s: float = 0.0, compact_every: int = 4) -> Config:
    return dataclasses.replace(
        Config(),
        model=streams.model_config("deepfm"),
        train=TrainConfig(micro_batch=16, eval_window=256, compact_every=compact_every),
        sync=SyncConfig(sparse_sync_interval_s=sync_s, max_part_bytes=4096),
    )


def table_rows(coll: EmbeddingCollection) -> dict[tuple[str, int], np.ndarray]:
    out = {}
    for name, slot in coll.slots.items():
        ids, values, _ = slot.dump()
        out.update({(name, int(i)): values[k, : slot.dim].copy() for k, i in enumerate(ids)})
    return out


def run_and_restart(cfg: Config, msgs: list[bytes]) -> tuple[ShardWorker, ShardWorker]:
    """``a`` trains every message; ``b`` starts from a's checkpoint after batch 5 ("kill
    -9" later, restart from there) and trains the rest."""
    state = MemoryState()
    a = ShardWorker(cfg, 0, state)
    checkpoint = None
    for i, m in enumerate(msgs):
        a.process(m)
        if i == 5:  # after a compaction (every 4 batches) and two more batches
            checkpoint = copy.deepcopy(state)
    b = ShardWorker(cfg, 0, checkpoint)
    assert b.trainer.ledger.examples == sum(len(json.loads(m)["examples"]) for m in msgs[:6])
    for m in msgs[6:]:
        b.process(m)
    return a, b


def assert_same_rows(a: EmbeddingCollection, b: EmbeddingCollection) -> None:
    ra, rb = table_rows(a), table_rows(b)
    assert ra.keys() == rb.keys()
    for k in ra:
        np.testing.assert_allclose(rb[k], ra[k], rtol=1e-5, atol=1e-7, err_msg=str(k))


def test_restore_from_a_checkpoint_continues_exactly(streams: SimpleNamespace) -> None:
    cfg = make_cfg(streams, sync_s=1e9)
    a, b = run_and_restart(cfg, streams.messages(streams.examples(1400, seed=1), size=100))
    assert b.trainer.ledger == a.trainer.ledger  # every example once, none twice
    assert b.trainer.eval.auc() == a.trainer.eval.auc()
    for k, v in a.trainer.dense_state().items():
        np.testing.assert_allclose(b.trainer.dense_state()[k], v, rtol=1e-5, atol=1e-7,
                                   err_msg=k)
    assert_same_rows(a.trainer.tables, b.trainer.tables)


def test_restore_keeps_the_admission_filters(streams: SimpleNamespace) -> None:
    # Occurrence and probabilistic filters: which IDs get a row depends on every earlier
    # sighting (sketch counters, their halving, the coin's RNG), so a restore must bring
    # the filters back exactly or the restored trainer admits different IDs.
    base = make_cfg(streams, sync_s=1e9)
    slots = [dataclasses.replace(s, min_count=3, filter_width=256) if s.name == "user_id"
             else dataclasses.replace(s, admit_prob=0.3) if s.name == "item_id" else s
             for s in base.model.slots]
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, slots=slots))
    msgs = streams.messages(streams.examples(1400, seed=2, users=400, items=600), size=100)
    a, b = run_and_restart(cfg, msgs)
    for name in ("user_id", "item_id"):
        fa, fb = a.trainer.tables.slots[name].filter, b.trainer.tables.slots[name].filter
        assert fa.state()[1] == fb.state()[1], name  # sketch additions and coin RNG
        np.testing.assert_array_equal(fb.state()[0], fa.state()[0], err_msg=name)
        assert b.trainer.tables.slots[name].filtered == a.trainer.tables.slots[name].filtered
    assert a.trainer.tables.slots["user_id"].filtered > 0  # the filters did refuse IDs
    assert a.trainer.tables.slots["item_id"].filtered > 0
    assert_same_rows(a.trainer.tables, b.trainer.tables)


def test_each_sparse_delta_holds_exactly_the_rows_that_changed(streams: SimpleNamespace) -> None:
    cfg = make_cfg(streams, sync_s=0.0, compact_every=1000)  # sync after every batch
    w = ShardWorker(cfg, 0, MemoryState())
    asm = DeltaAssembler()
    before = table_rows(w.trainer.tables)
    syncs = split = 0
    for m in streams.messages(streams.examples(600, seed=2), size=100):
        out = w.process(m)
        updates = [u for _, v in out.params if (u := asm.feed(v)) is not None]
        assert len(updates) == 1 and updates[0].meta.kind == "sparse"
        split += len(out.params) > 1  # 4 KiB parts: big updates are split, then reassembled
        after = table_rows(w.trainer.tables)
        changed = {k for k, v in after.items() if k not in before or not np.array_equal(
            before[k], v)}
        serving = EmbeddingCollection(cfg.model.slots)
        serving.apply(updates[0].payload)
        got = table_rows(serving)
        assert set(got) == changed
        for k in changed:
            np.testing.assert_array_equal(got[k], after[k])
        before = after
        syncs += 1
    assert syncs == 6 and split > 0


def test_serving_rebuilt_from_deltas_matches_the_trainer_across_a_restore(
    streams: SimpleNamespace,
) -> None:
    """Rows trained after the last sync before a checkpoint are re-sent after restore."""
    cfg = make_cfg(streams, sync_s=1e9, compact_every=1000)
    msgs = streams.messages(streams.examples(1000, seed=4), size=100)
    state = MemoryState()
    a = ShardWorker(cfg, 0, state)
    sent = []
    for i, m in enumerate(msgs[:7]):
        out = a.process(m)
        if i == 2:
            sent += a.sync_sparse().params  # one sync mid-way, then 4 unsynced batches
            a._save_meta()
        sent += out.params
        if i == 4:
            checkpoint = copy.deepcopy(state)
    b = ShardWorker(cfg, 0, checkpoint)
    for m in msgs[5:]:
        sent += b.process(m).params
    sent += b.finish().params
    asm = DeltaAssembler()
    serving = EmbeddingCollection(cfg.model.slots)
    for _, v in sent:
        u = asm.feed(v)
        if u is not None and u.meta.kind == "sparse":
            serving.apply(u.payload)
    trained, served = table_rows(b.trainer.tables), table_rows(serving)
    assert served.keys() == trained.keys()
    for k in trained:
        np.testing.assert_array_equal(served[k], trained[k])


def test_bad_messages_go_to_dead_letters(streams: SimpleNamespace) -> None:
    w = ShardWorker(make_cfg(streams), 0, MemoryState())
    out = w.process(b'{"v":1,"examples":[{"request_id":"x"}]}')
    assert len(out.dead_letters) == 1 and "malformed" in out.dead_letters[0]
    assert w.trainer.ledger.examples == 0


def test_finish_reports_final_figures_and_dense_weights(streams: SimpleNamespace) -> None:
    w = ShardWorker(make_cfg(streams), 0, MemoryState())
    for m in streams.messages(streams.examples(300), size=100):
        w.process(m)
    out = w.finish()
    asm = DeltaAssembler()
    kinds = {u.meta.kind for _, v in out.params if (u := asm.feed(v)) is not None}
    assert kinds == {"dense"}  # sparse rows already went out (sync interval 0)

    final = [json.loads(m) for m in out.metrics if '"final":"true"' in m.replace(" ", "")]
    by_name = {m["name"]: m for m in final}
    assert by_name["trained_examples"]["value"] == 300
    assert by_name["progressive_auc"]["value"] == pytest.approx(w.trainer.eval.auc())


def test_expired_rows_are_deleted_in_state_and_on_the_params_topic(
    streams: SimpleNamespace,
) -> None:
    cfg = make_cfg(streams, sync_s=0.0, compact_every=1000)
    slots = [dataclasses.replace(s, ttl_s=5.0) if s.name == "user_id" else s
             for s in cfg.model.slots]
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, slots=slots))
    early = streams.examples(100, seed=5, users=10)  # ts 0 .. 99 s: users 0-9
    late = [dataclasses.replace(e, ts=e.ts + 1_000_000, user_id=e.user_id + 100,
                                slots={**e.slots, "user_id": [e.user_id + 100]})
            for e in streams.examples(100, seed=6, users=10)]  # users 100-109, much later
    state = MemoryState()
    w = ShardWorker(cfg, 0, state)
    asm, deleted = DeltaAssembler(), set()
    for m in streams.messages(early + late, size=100):
        for _, v in w.process(m).params:
            u = asm.feed(v)
            if u is not None:
                rows = u.payload
                flags = rows.column("deleted").to_pylist()
                deleted |= {i for i, d in zip(rows.column("id").to_pylist(), flags, strict=True)
                            if d}
    assert deleted == set(range(10))  # the early users, idle for > ttl_s of event time
    assert set(table_rows(w.trainer.tables)) & {("user_id", i) for i in range(10)} == set()
    restored = ShardWorker(cfg, 0, copy.deepcopy(state))
    assert table_rows(restored.trainer.tables).keys() == table_rows(w.trainer.tables).keys()


def hold_cfg(streams: SimpleNamespace, hold_s: float) -> Config:
    cfg = make_cfg(streams, sync_s=1e9)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train,
                                                              hold_for_negatives_s=hold_s))


def test_held_examples_train_in_event_time_order_once_negatives_as_late_arrive(
        streams: SimpleNamespace) -> None:
    # As the joiner emits them: a period's positives first, its negatives later.
    exs = streams.examples(600, seed=3)
    pos, neg = [e for e in exs if e.label], [e for e in exs if not e.label]
    held = ShardWorker(hold_cfg(streams, 60.0), 0, MemoryState())
    half = len(pos) // 2
    for part in (pos[half:], pos[:half]):  # out of event-time order
        held.process(streams.messages(part, size=len(part))[0])
    assert held.trainer.ledger.examples == 0 and len(held.hold) == len(pos)
    closing = neg[210:]  # a later message of negatives
    held.process(streams.messages(closing, size=len(closing))[0])
    frontier = closing[0].ts  # the message's earliest negative
    due = sorted((e for e in pos + closing if e.ts <= frontier), key=lambda e: e.ts)
    assert len(due) % 16 and due[-1].ts > pos[half].ts  # both messages' positives
    due = due[: len(due) - len(due) % 16]  # whole micro-batches only
    assert held.trainer.ledger.examples == len(due)
    assert len(held.hold) == len(pos) + len(closing) - len(due)
    # the same as training those examples in one message in event-time order
    plain = ShardWorker(make_cfg(streams, sync_s=1e9), 0, MemoryState())
    plain.process(streams.messages(due, size=len(due))[0])
    assert held.trainer.ledger == plain.trainer.ledger
    for k, v in plain.trainer.dense_state().items():
        np.testing.assert_array_equal(held.trainer.dense_state()[k], v, err_msg=k)
    assert_same_rows(held.trainer.tables, plain.trainer.tables)


def test_held_examples_survive_a_restore_and_are_trained_once(
        streams: SimpleNamespace) -> None:
    exs = streams.examples(900, seed=4)
    cfg = hold_cfg(streams, 60.0)
    msgs = streams.messages([e for e in exs if e.label], size=100) + streams.messages(
        [e for e in exs if not e.label], size=100)
    state = MemoryState()
    a = ShardWorker(cfg, 0, state)
    for m in msgs[:4]:
        a.process(m)
    assert len(a.hold) > 0
    b = ShardWorker(cfg, 0, copy.deepcopy(state))  # killed here, restarted from state
    assert len(b.hold) == len(a.hold) and b.hold.frontier == a.hold.frontier
    for m in msgs[4:]:
        b.process(m)
    b.finish()  # end of input: what is still held is trained too
    assert len(b.hold) == 0
    everything = ShardWorker(make_cfg(streams, sync_s=1e9), 0, MemoryState())
    everything.process(streams.messages(exs, size=len(exs))[0])
    assert b.trainer.ledger == everything.trainer.ledger  # each example once


def test_examples_held_too_long_are_trained_on_the_timer(streams: SimpleNamespace) -> None:
    import time

    w = ShardWorker(hold_cfg(streams, 0.05), 0, MemoryState())
    positives = [e for e in streams.examples(200, seed=5) if e.label]
    w.process(streams.messages(positives, size=len(positives))[0])
    assert w.trainer.ledger.examples == 0
    time.sleep(0.1)
    w.on_timer()
    assert w.trainer.ledger.examples == len(positives) and len(w.hold) == 0
