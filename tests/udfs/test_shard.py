"""A trainer shard's state, restore and parameter sync, without Flink."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from freshet.config import Config, SyncConfig, TrainConfig, load_config
from ps import EmbeddingCollection
from ps.config import AdmissionConfig, CuckooTableConfig, ExpiryConfig, HashedTableConfig
from ps.delta import DeltaAssembler
from udfs.shard import ShardWorker
from udfs.shard_state import MemoryState


def make_cfg(streams: SimpleNamespace, sync_s: float = 0.0, compact_every: int = 4) -> Config:
    return dataclasses.replace(
        Config(),
        model=streams.model_config("deepfm"),
        train=TrainConfig(micro_batch=16, eval_window_examples=256, compact_every=compact_every,
                          batch_examples=1),  # every message trains at once
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
    slots = [dataclasses.replace(s, admission=AdmissionConfig(3, sketch_width=256))
             if s.name == "user_id" else
             dataclasses.replace(s, admission=AdmissionConfig(admit_prob=0.3))
             if s.name == "item_id" else s
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
        kinds = [u.meta.kind for u in updates]
        # The first sparse sync carries the first dense model too (a fresh deployment
        # serves at once); later ones wait for dense_sync_interval_s.
        assert kinds == (["sparse", "dense"] if syncs == 0 else ["sparse"])
        updates = updates[:1]
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
    updates = [u for _, v in out.params if (u := asm.feed(v)) is not None]
    assert {u.meta.kind for u in updates} == {"dense"}  # sparse rows went out (interval 0)
    assert {u.meta.model_kind for u in updates} == {"deepfm"}  # serving scores by it

    final = [json.loads(m) for m in out.metrics if '"final":"true"' in m.replace(" ", "")]
    by_name = {m["name"]: m for m in final}
    assert by_name["trained_examples"]["value"] == 300
    assert by_name["progressive_auc"]["value"] == pytest.approx(w.trainer.eval.auc())


def test_expired_rows_are_deleted_in_state_and_on_the_params_topic(
    streams: SimpleNamespace,
) -> None:
    cfg = make_cfg(streams, sync_s=0.0, compact_every=1000)
    slots = [dataclasses.replace(s, expiry=ExpiryConfig(5.0)) if s.name == "user_id" else s
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
            if u is not None and u.meta.kind == "sparse":
                rows = u.payload
                flags = rows.column("deleted").to_pylist()
                deleted |= {i for i, d in zip(rows.column("id").to_pylist(), flags, strict=True)
                            if d}
    assert deleted == set(range(10))  # the early users, idle for > ttl_s of event time
    assert set(table_rows(w.trainer.tables)) & {("user_id", i) for i in range(10)} == set()
    restored = ShardWorker(cfg, 0, copy.deepcopy(state))
    assert table_rows(restored.trainer.tables).keys() == table_rows(w.trainer.tables).keys()


def event_cfg(streams: SimpleNamespace, max_hold_s: float = 0.0) -> Config:
    cfg = make_cfg(streams, sync_s=1e9)
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, order="event_time", max_hold_s=max_hold_s))


def in_key_order(exs: list) -> list:
    from udfs.hold import event_key

    return sorted(exs, key=lambda e: event_key(e.to_dict()))


def trained_in_order(streams: SimpleNamespace, exs: list, step: int = 16) -> ShardWorker:
    """A shard that was given ``exs`` one micro-batch per message, in event-time order."""
    plain = ShardWorker(make_cfg(streams, sync_s=1e9), 0, MemoryState())
    for m in streams.messages(in_key_order(exs), size=step):
        plain.process(m)
    return plain


def assert_same_model(a: ShardWorker, b: ShardWorker) -> None:
    """Same examples, weights, rows and cumulative figures (the current evaluation
    window closes wherever a call ends, so its counts are left out)."""
    assert a.trainer.ledger == b.trainer.ledger
    mine = a.trainer.dense_state()
    for k, v in b.trainer.dense_state().items():
        if k == "eval/scalars":  # loss, count, window loss, window count
            np.testing.assert_array_equal(mine[k][:2], v[:2], err_msg=k)
        elif not k.startswith("eval/w_"):
            np.testing.assert_array_equal(mine[k], v, err_msg=k)
    assert_same_rows(a.trainer.tables, b.trainer.tables)


def test_event_time_order_trains_what_the_watermark_passed_in_key_order(
        streams: SimpleNamespace) -> None:
    # As the joiner emits them: a period's positives first, its negatives later.
    exs = streams.examples(600, seed=3)
    pos, neg = [e for e in exs if e.label], [e for e in exs if not e.label]
    held = ShardWorker(event_cfg(streams), 0, MemoryState())
    half = len(pos) // 2
    for part in (pos[half:], pos[:half]):  # out of event-time order, no watermark yet
        held.process(streams.messages(part, size=len(part))[0], watermark_ms=None)
    assert held.trainer.ledger.examples == 0 and len(held.hold) == len(pos)
    frontier = neg[210].ts  # the joiner has decided up to here
    held.process(streams.messages(neg, size=len(neg))[0], watermark_ms=frontier)
    due = [e for e in exs if e.ts <= frontier]
    whole = len(due) - len(due) % 16
    assert len(due) % 16 and held.trainer.ledger.examples == whole  # whole micro-batches
    assert len(held.hold) == len(exs) - whole
    assert_same_model(held, trained_in_order(streams, in_key_order(due)[:whole]))
    held.finish()  # end of input: the rest, in order
    assert_same_model(held, trained_in_order(streams, exs))
    assert held.hold.late == 0


def test_the_progressive_figure_does_not_depend_on_the_arrival_order(
        streams: SimpleNamespace) -> None:
    """A planted label order (every positive first) changes the arrival-order figure but
    not the event-time one, which equals training in event-time order."""
    exs = streams.examples(1200, seed=8)
    planted = [e for e in exs if e.label] + [e for e in exs if not e.label]

    def final_auc(cfg: Config, order: list) -> float:
        w = ShardWorker(cfg, 0, MemoryState())
        for m in streams.messages(order, size=100):
            w.process(m, watermark_ms=None)  # the watermark only passes at the end
        out = w.finish()
        (auc,) = [json.loads(m)["value"] for m in out.metrics
                  if '"progressive_auc"' in m and '"final":"true"' in m]
        return auc

    event_time = final_auc(event_cfg(streams), planted)
    assert event_time == pytest.approx(final_auc(event_cfg(streams), exs), abs=1e-9)
    assert event_time == pytest.approx(trained_in_order(streams, exs).trainer.eval.auc(),
                                       abs=1e-9)
    arrival = final_auc(make_cfg(streams, sync_s=1e9), planted)
    assert arrival > event_time + 0.05  # what the order alone is worth on this stream


def test_late_examples_are_trained_at_once_and_counted(streams: SimpleNamespace) -> None:
    exs = in_key_order(streams.examples(96, seed=2))
    w = ShardWorker(event_cfg(streams), 0, MemoryState())
    w.process(streams.messages(exs[32:], size=64)[0], watermark_ms=exs[-1].ts)
    assert w.trainer.ledger.examples == 64
    w.process(streams.messages(exs[:32], size=32)[0], watermark_ms=exs[-1].ts)  # behind it
    assert w.trainer.ledger.examples == 96 and w.hold.late == 32
    late = [json.loads(m) for m in w.finish().metrics if '"late_examples"' in m]
    assert late and late[-1]["value"] == 32


def test_held_examples_survive_a_restore_and_are_trained_once(
        streams: SimpleNamespace) -> None:
    exs = streams.examples(900, seed=4)
    cfg = event_cfg(streams)
    positives = streams.messages([e for e in exs if e.label], size=100)
    negatives = [e for e in in_key_order(exs) if not e.label]
    # The positives first; then the negatives, each message with the joiner's frontier:
    # every example before the next message's first negative has arrived.
    feed = [(m, None) for m in positives] + [
        (streams.messages(negatives[a:a + 50], size=50)[0],
         negatives[a + 50].ts - 1 if a + 50 < len(negatives) else None)
        for a in range(0, len(negatives), 50)]
    state = MemoryState()
    a = ShardWorker(cfg, 0, state)
    for m, frontier in feed[:len(positives) + 4]:
        a.process(m, watermark_ms=frontier)
    assert a.trainer.ledger.examples > 0 and len(a.hold) > 0
    b = ShardWorker(cfg, 0, copy.deepcopy(state))  # killed here, restarted from state
    assert len(b.hold) == len(a.hold) and b.hold.last_key == a.hold.last_key
    for m, frontier in feed[len(positives) + 4:]:
        b.process(m, watermark_ms=frontier)
    b.finish()  # end of input: what is still held is trained too
    assert len(b.hold) == 0 and b.hold.late == 0
    assert_same_model(b, trained_in_order(streams, exs))  # each example once, in order


def test_the_held_list_is_rewritten_once_mostly_trained(streams: SimpleNamespace) -> None:
    exs = in_key_order(streams.examples(9000, seed=6))
    state = MemoryState()
    w = ShardWorker(event_cfg(streams), 0, state)
    for m in streams.messages(exs, size=100):
        w.process(m, watermark_ms=json.loads(m)["examples"][-1]["ts"] - 50_000)
    stored = sum(len(json.loads(b)["examples"]) for b in state.held_blobs)
    assert stored <= 2 * len(w.hold) + 4096 + 100 and stored < len(exs)
    again = ShardWorker(event_cfg(streams), 0, copy.deepcopy(state))
    assert sorted(r["request_id"] for r in again.hold.rows()) == sorted(
        r["request_id"] for r in w.hold.rows())


def test_examples_held_too_long_are_trained_on_the_timer(streams: SimpleNamespace) -> None:
    import time

    w = ShardWorker(event_cfg(streams, max_hold_s=0.05), 0, MemoryState())
    positives = [e for e in streams.examples(200, seed=5) if e.label]
    w.process(streams.messages(positives, size=len(positives))[0])
    assert w.trainer.ledger.examples == 0
    time.sleep(0.1)
    w.on_timer()
    assert w.trainer.ledger.examples == len(positives) and len(w.hold) == 0


def batching_cfg(streams: SimpleNamespace, examples: int, wait_ms: int = 60_000) -> Config:
    cfg = make_cfg(streams, sync_s=1e9)
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, batch_examples=examples, batch_wait_ms=wait_ms))


def test_small_messages_are_trained_together_as_large_ones_would_be(
        streams: SimpleNamespace) -> None:
    """Eight 64-example messages train as one 512-example message: the same steps, the
    same model; the held ones are state, and a restore trains them once."""
    exs = streams.examples(1024, seed=9)
    state = MemoryState()
    small = ShardWorker(batching_cfg(streams, 512), 0, state)
    msgs = streams.messages(exs, size=64)
    for i, m in enumerate(msgs[:11]):
        small.process(m)
        assert small.trainer.ledger.examples == (512 if i >= 7 else 0)
    assert len(small.hold) == 3 * 64 and len(state.held_blobs) == 3  # emptied at 512
    restored = ShardWorker(batching_cfg(streams, 512), 0, copy.deepcopy(state))
    for m in msgs[11:]:
        restored.process(m)
    large = ShardWorker(make_cfg(streams, sync_s=1e9), 0, MemoryState())
    for m in streams.messages(exs, size=512):
        large.process(m)
    assert_same_model(restored, large)


def test_held_examples_go_once_the_oldest_has_waited(streams: SimpleNamespace) -> None:
    import time

    w = ShardWorker(batching_cfg(streams, 10_000, wait_ms=50), 0, MemoryState())
    w.process(streams.messages(streams.examples(64, seed=1), size=64)[0])
    assert w.trainer.ledger.examples == 0 and 0 < w.wakeup_in_s() <= 0.05
    time.sleep(0.06)
    w.on_timer()
    assert w.trainer.ledger.examples == 64 and len(w.hold) == 0


def test_a_paused_stream_still_reports_its_last_trained_examples(
        streams: SimpleNamespace) -> None:
    """The timer that trains the last held examples may come soon after a report; the
    worker keeps asking for a timer until those examples are reported too (else a
    stream that pauses never reports them)."""
    import time

    import udfs.shard

    w = ShardWorker(batching_cfg(streams, 10_000, wait_ms=10), 0, MemoryState())
    w.process(streams.messages(streams.examples(64, seed=2), size=64)[0])
    time.sleep(0.02)
    w.last_report = time.monotonic()  # a report just went out
    out = w.on_timer()
    assert w.trainer.ledger.examples == 64 and not out.metrics
    delay = w.wakeup_in_s()
    assert delay is not None and delay <= udfs.shard.REPORT_EVERY_S
    time.sleep(delay + 0.01)
    out = w.on_timer()
    reports = [json.loads(m) for m in out.metrics]
    assert [m["value"] for m in reports if m["name"] == "trained_examples"] == [64]
    assert w.reported == 64  # nothing left to report: no timer for it


def test_a_configured_slot_the_examples_never_carry_is_named_once(
        streams: SimpleNamespace) -> None:
    """``genres`` configured, ``genre`` sent: after the first 1,000 examples the shard
    reports it on the metrics topic (``freshet train`` prints it), once."""
    cfg = make_cfg(streams, sync_s=1e9)
    slots = [*cfg.model.slots, dataclasses.replace(cfg.model.slots[0], name="genres")]
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, slots=slots))
    w = ShardWorker(cfg, 0, MemoryState())
    warnings = []
    for m in streams.messages(streams.examples(2000, seed=4), size=250):
        out = w.process(m)
        warnings += [json.loads(x) for x in out.metrics if json.loads(x)["name"] == "warning"]
    assert len(warnings) == 1
    message = warnings[0]["labels"]["message"]
    assert message.startswith("slot genres is configured but none of the first 1,000")
    carried = {s.name for s in cfg.model.slots if s.name != "genres"}
    assert message.endswith("they carry: " + ", ".join(sorted(carried)))


def test_slot_policies_from_toml_reach_the_shard_through_the_shipped_config(
        streams: SimpleNamespace, tmp_path: Path) -> None:
    """What ``freshet train`` does short of Flink: load the TOML, ship ``to_json`` to the
    worker, build the shard from it. Every policy is in the shard's tables, and a shard
    restored from a checkpoint continues exactly on them."""
    f = tmp_path / "freshet.toml"
    f.write_text("""
[model]
kind = "deepfm"
hidden = [16]
[train]
micro_batch = 16
eval_window_examples = 256
compact_every = 4
batch_examples = 1
table = {kind = "hashed", rows = 64}
[[model.slots]]
name = "user_id"
dim = 8
optimizer = {kind = "ftrl", learning_rate = 0.2, l1 = 0.001}
admission = {min_count = 2, sketch_width = 256}
expiry = {ttl_s = 20}
table = {kind = "cuckoo"}
[[model.slots]]
name = "item_id"
dim = 8
optimizer = {kind = "sgd", learning_rate = 0.05}
admission = {admit_prob = 0.5}
[[model.slots]]
name = "genre"
dim = 8
""")
    cfg = Config.from_json(load_config(f, environ={}).to_json())
    msgs = streams.messages(streams.examples(1400, seed=2), size=100)
    a, b = run_and_restart(cfg, msgs)
    slots = a.trainer.tables.slots
    assert {n: s.table_config for n, s in slots.items()} == {
        "user_id": CuckooTableConfig(), "item_id": HashedTableConfig(64),
        "genre": HashedTableConfig(64)}
    assert [s.optimizer.kind for s in slots.values()] == ["ftrl", "sgd", "adagrad"]
    assert slots["item_id"].optimizer.hyper()[0] == np.float32(0.05)
    assert slots["user_id"].filter.min_count == 2 and slots["user_id"].filtered > 0
    assert slots["item_id"].filter.admit_prob == 0.5 and slots["item_id"].filtered > 0
    assert a.expiring and slots["user_id"].config.expiry.ttl_s == 20.0
    assert b.trainer.ledger == a.trainer.ledger and b.trainer.eval.auc() == a.trainer.eval.auc()
    assert_same_rows(a.trainer.tables, b.trainer.tables)
