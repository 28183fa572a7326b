"""The training job on the mini-cluster: replay a time range, then continue online.

One test, two Flink jobs (~1 min): replay trains the messages before a cut-off time
and writes its model; the online job starts from that model at the replay's stop
offsets and trains the rest. Every example must be trained exactly once across the
two, and the params topic must rebuild exactly the trainer's final tables.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from freshet import kafka
from freshet.config import Config, ModelConfig, SyncConfig, TrainConfig
from freshet.topics import Example, encode_examples
from jobs.manifest import ReplayModel
from jobs.replay import replay
from jobs.train import build
from ps import EmbeddingCollection
from ps.config import HashedTableConfig, SlotConfig
from ps.delta import DeltaAssembler
from udfs.shard_state import unpack_meta
from udfs.trainer import Ledger

MESSAGES, PER_MESSAGE, CUT = 30, 200, 18


def stream() -> list[list[Example]]:
    rng = np.random.default_rng(0)
    bias = rng.normal(0, 1.5, 100)
    out = []
    for m in range(MESSAGES):
        batch = []
        for i in range(PER_MESSAGE):
            u, it = int(rng.integers(40)), int(rng.integers(60))
            y = int(rng.random() < 1 / (1 + np.exp(-(bias[u] + bias[40 + it]))))
            batch.append(Example(f"r{m}-{i}", it, u, 1_000_000 + m * 1000 + i, y,
                                 slots={"user_id": [u], "item_id": [it], "genre": [it % 7]}))
        out.append(batch)
    return out


def finals(cfg: Config) -> list[dict]:
    ms = [json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("metrics"), 1.0)]
    return [m for m in ms if m["name"] == "trained_examples" and m["labels"]["final"] == "true"]


def ledger_of(batches: list[list[Example]]) -> Ledger:
    ledger = Ledger()
    for b in batches:
        ledger.add([e.request_id for e in b])
    return ledger


def test_replay_then_online_trains_each_example_once_and_params_rebuild_the_model(
    cfg: Config, tmp_path: Path
) -> None:
    cfg = dataclasses.replace(
        cfg,
        model=ModelConfig(kind="deepfm", hidden=[16],
                          slots=[SlotConfig(s, dim=8) for s in ("user_id", "item_id", "genre")]),
        train=TrainConfig(micro_batch=64, eval_window_examples=2000),
        sync=SyncConfig(sparse_sync_interval_s=0.2, max_part_bytes=16384),
    )
    batches = stream()
    p = kafka.producer(cfg)
    for m, batch in enumerate(batches):  # round-robin over the 4 partitions, time order
        p.produce(cfg.topics.name("examples"), encode_examples(batch), partition=m % 4,
                  timestamp=batch[-1].ts)
    assert p.flush(10) == 0

    replayed = tmp_path / "replay"
    # Messages stamped before message CUT's time: 0 .. CUT-1 (the range excludes --to).
    manifest = replay(cfg, None, batches[CUT][-1].ts, replayed)
    assert manifest.messages == CUT
    first = finals(cfg)
    assert [m["value"] for m in first] == [CUT * PER_MESSAGE]
    assert first[0]["labels"]["fingerprint"] == str(ledger_of(batches[:CUT]).fingerprint)

    online = tmp_path / "online"
    end = kafka.end_offsets(cfg, cfg.topics.name("examples"))
    build(cfg, start=ReplayModel.read(replayed).online_start, stop=end,
          start_snapshot=str(replayed),
          write_snapshot=str(online)).execute("test-online")
    last = [m for m in finals(cfg) if m not in first]
    assert [m["value"] for m in last] == [MESSAGES * PER_MESSAGE]  # no gap, no overlap
    assert last[0]["labels"]["fingerprint"] == str(ledger_of(batches).fingerprint)

    # The params topic (both jobs) rebuilds exactly the final tables and dense weights.
    asm, serving, dense = DeltaAssembler(), EmbeddingCollection(cfg.model.slots), None
    for m in kafka.read(cfg, cfg.topics.name("params"), idle_s=1.0):
        u = asm.feed(m.value())
        if u is not None and u.meta.kind == "sparse":
            serving.apply(u.payload)
        elif u is not None:
            dense = u.payload
    final = EmbeddingCollection.restore(online / "shard-0" / "tables", cfg.model.slots)
    for slot in cfg.model.slots:
        ids, values, _ = final.slots[slot.name].dump()
        served_ids, _, _ = serving.slots[slot.name].dump()
        assert sorted(served_ids.tolist()) == sorted(ids.tolist())
        np.testing.assert_array_equal(serving.lookup(slot.name, ids), values[:, : slot.dim])
    arrays, _ = unpack_meta((online / "shard-0" / "dense.npz").read_bytes())
    assert dense is not None and dense.keys() == {k[2:] for k in arrays if k.startswith("w/")}
    for k, v in dense.items():
        np.testing.assert_array_equal(v, arrays[f"w/{k}"])


def train_bounded(cfg: Config, train: TrainConfig, messages: int, name: str) -> tuple:
    """The first ``messages`` of :func:`stream` through a bounded training job with
    ``train``; returns (the batches, the final ``trained_examples`` reports)."""
    cfg = dataclasses.replace(
        cfg,
        model=ModelConfig(kind="deepfm", hidden=[16],
                          slots=[SlotConfig(s, dim=8) for s in ("user_id", "item_id", "genre")]),
        train=train,
    )
    batches = stream()[:messages]
    p = kafka.producer(cfg)
    for m, batch in enumerate(batches):
        p.produce(cfg.topics.name("examples"), encode_examples(batch), partition=m % 4)
    assert p.flush(10) == 0
    end = kafka.end_offsets(cfg, cfg.topics.name("examples"))
    build(cfg, start={q: 0 for q in end}, stop=end).execute(name)
    return batches, finals(cfg)


def test_two_shards_run_on_two_subtasks_and_together_train_each_example_once(
    cfg: Config,
) -> None:
    batches, done = train_bounded(
        cfg, TrainConfig(parallelism=2, micro_batch=64, eval_window_examples=2000), 16,
        "test-two-shards")
    assert sorted(m["labels"]["subtask"] for m in done) == ["0", "1"]
    assert sorted(m["labels"]["shard"] for m in done) == ["0", "1"]
    assert all(m["value"] > 0 for m in done)  # both shards got messages
    assert sum(m["value"] for m in done) == 16 * PER_MESSAGE
    fingerprint = sum(int(m["labels"]["fingerprint"]) for m in done) % (1 << 63)
    assert fingerprint == ledger_of(batches).fingerprint


def test_hashed_tables_train_through_the_flink_job(cfg: Config) -> None:
    """``train.table = {kind = "hashed", rows = 50}`` reaches the Flink worker's tables: a
    bounded job trains every example on them."""
    train = TrainConfig(parallelism=1, micro_batch=64, eval_window_examples=2000,
                        table=HashedTableConfig(rows=50))
    batches, done = train_bounded(cfg, train, 4, "test-hashed")
    assert [m["value"] for m in done] == [4 * PER_MESSAGE]
    assert done[0]["labels"]["fingerprint"] == str(ledger_of(batches).fingerprint)
