"""Shard keys land on the intended subtask, checked against Flink's own assignment."""

from __future__ import annotations

from udfs.routing import key_group, shard_keys, shard_of, subtask_of


def test_key_routing_matches_flink() -> None:
    from pyflink.java_gateway import get_gateway

    assign = get_gateway().jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    integer = get_gateway().jvm.java.lang.Integer
    for k in [0, 1, 2, 3, 4, 9, 77, 1000, 123_456, -5]:
        assert assign.assignToKeyGroup(integer(k), 128) == key_group(k)
        for p in (1, 2, 3, 4):
            assert assign.assignKeyToParallelOperator(integer(k), 128, p) == subtask_of(k, 128, p)
    for p in (1, 2, 3, 4):
        keys = shard_keys(p)
        assert [assign.assignKeyToParallelOperator(integer(k), 128, p) for k in keys] == list(
            range(p)
        )


def test_shard_of_is_deterministic_and_spreads() -> None:
    msgs = [f'{{"v":1,"examples":[{{"request_id":"r{i}"}}]}}'.encode() for i in range(400)]
    shards = [shard_of(m, 2) for m in msgs]
    assert shards == [shard_of(m, 2) for m in msgs]
    assert 150 < sum(shards) < 250
    assert {shard_of(m, 1) for m in msgs} == {0}
