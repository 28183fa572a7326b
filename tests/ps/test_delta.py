"""The params-topic wire format: parts, reassembly, deduplication, dense arrays."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from ps import EmbeddingCollection
from ps.config import ExpiryConfig, SlotConfig
from ps.delta import DeltaAssembler, DeltaMeta, decode, encode_dense, encode_sparse

META = {"model_id": "m", "shard": 1, "watermark_ms": 100, "wall_time_ms": 200}


def trainer_delta(n: int = 5000) -> pa.RecordBatch:
    coll = EmbeddingCollection([SlotConfig("u", dim=16, expiry=ExpiryConfig(1.0)),
                                SlotConfig("g", dim=4)])
    for name, dim in (("u", 16), ("g", 4)):
        ids = np.arange(n)
        coll.pull(name, ids, now=0.0)
        coll.push(name, ids[: n // 2], np.ones((n // 2, dim), np.float32), now=0.0)
    coll.evict_expired(now=5.0)  # u's untouched half expires: deleted rows in the delta
    return coll.drain_delta(with_optimizer_state=True)


def test_sparse_split_into_self_describing_parts() -> None:
    batch = trainer_delta()
    msgs = encode_sparse(batch, seq=3, max_part_bytes=64 * 1024, **META)
    assert len(msgs) > 3 and {k for k, _ in msgs} == {b"m/sparse/1"}
    for i, (_, value) in enumerate(msgs):
        assert len(value) <= 64 * 1024
        meta, part = decode(value)
        assert meta == DeltaMeta("m", 1, 3, "sparse", 100, 200, part=i, parts=len(msgs))
        assert part.schema.names == batch.schema.names
    parts = [decode(v)[1] for _, v in msgs]
    assert pa.Table.from_batches(parts).to_pylist() == pa.Table.from_batches([batch]).to_pylist()


def test_assembler_reorders_and_dedupes() -> None:
    batch = trainer_delta(2000)
    msgs = [v for _, v in encode_sparse(batch, seq=5, max_part_bytes=32 * 1024, **META)]
    asm = DeltaAssembler()
    shuffled = msgs + msgs[:2]  # re-delivered parts
    random.Random(0).shuffle(shuffled)
    done = [u for v in shuffled if (u := asm.feed(v)) is not None]
    assert len(done) == 1
    update = done[0]
    assert update.meta.seq == 5 and update.meta.parts == len(msgs)
    assert update.payload.to_pylist() == batch.to_pylist()
    # a full re-delivery, and an older seq, are dropped; a newer one and other shards pass
    assert all(asm.feed(v) is None for v in msgs)
    old = encode_sparse(batch.slice(0, 3), seq=4, **META)
    assert asm.feed(old[0][1]) is None
    assert asm.feed(encode_sparse(batch.slice(0, 3), seq=6, **META)[0][1]) is not None
    other = encode_sparse(batch.slice(0, 3), seq=1, **{**META, "shard": 2})
    assert asm.feed(other[0][1]) is not None
    assert asm.duplicates == len(msgs) + 2 + 1 and not asm.pending


def test_applying_reassembled_delta_on_serving_side() -> None:
    batch = trainer_delta(3000)
    server = EmbeddingCollection([SlotConfig("u", dim=16), SlotConfig("g", dim=4)])
    asm = DeltaAssembler()
    for _, v in encode_sparse(batch, seq=0, max_part_bytes=16 * 1024, **META):
        if (u := asm.feed(v)) is not None:
            server.apply(u.payload)
    live = [r for r in batch.to_pylist() if not r["deleted"]]
    assert len(server) == len(live)
    r = live[-1]
    assert server.lookup(r["slot"], np.array([r["id"]]))[0].tolist() == r["values"]


def test_dense_round_trip_with_large_arrays_split() -> None:
    rng = np.random.default_rng(0)
    weights = {
        "big": rng.normal(size=(1000, 64)).astype(np.float32),
        "bias": np.arange(3, dtype=np.float64),
        "step": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 4), np.float32),
    }
    msgs = encode_dense(weights, model_kind="deepfm", seq=9, max_part_bytes=32 * 1024, **META)
    assert len(msgs) > 5 and all(len(v) <= 32 * 1024 for _, v in msgs)
    assert {k for k, _ in msgs} == {b"m/dense/1"}
    asm = DeltaAssembler()
    done = [u for _, v in reversed(msgs) if (u := asm.feed(v)) is not None]
    assert len(done) == 1 and done[0].meta.kind == "dense"
    assert done[0].meta.model_kind == "deepfm"
    got = done[0].payload
    assert set(got) == set(weights)
    for name, arr in weights.items():
        assert got[name].dtype == arr.dtype and got[name].shape == arr.shape
        np.testing.assert_array_equal(got[name], arr)
    meta, piece = decode(msgs[0][1])  # one part of a split array: a row range
    assert meta.part == 0 and piece["big"].shape[1:] == (64,) and len(piece["big"]) < 1000


def test_rejects_foreign_messages_and_objects() -> None:
    sink = pa.BufferOutputStream()
    plain = pa.RecordBatch.from_pydict({"x": [1]})
    with pa.ipc.new_stream(sink, plain.schema) as w:
        w.write_batch(plain)
    with pytest.raises(ValueError, match="not a Freshet delta"):
        decode(sink.getvalue().to_pybytes())
    with pytest.raises(TypeError, match="not numeric"):
        encode_dense({"o": np.array([object()])}, model_kind="lr", seq=0, **META)
    with pytest.raises(ValueError, match="max_part_bytes"):
        encode_sparse(pa.RecordBatch.from_pydict({"b": [b"x" * 5000] * 2}), seq=0,
                      max_part_bytes=2048, **META)
