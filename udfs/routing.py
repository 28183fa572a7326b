"""Which trainer shard a message goes to, and a Flink key that lands on that shard.

PyFlink's ``key_by`` wraps the key in a one-field ``Row`` and Flink sends it to key group
``murmur(row.hashCode()) % max_parallelism``, then to subtask
``group * parallelism // max_parallelism``. :func:`shard_keys` asks the JVM (Flink's own
``KeyGroupRangeAssignment``) for the smallest int key per subtask, so shard ``i`` is
trained by subtask ``i`` and no subtask holds two shards.

Examples
--------
>>> shard_of(b'{"v":1,"examples":[]}', 1)
0
"""

from __future__ import annotations

import zlib

MAX_PARALLELISM = 128


def subtask_of_key(key: int, max_parallelism: int, parallelism: int) -> int:
    """The subtask Flink gives the PyFlink INT key ``key`` (asks the JVM)."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    row = jvm.org.apache.flink.types.Row(1)  # what PyFlink's KeyByKeySelector keys by
    row.setField(0, jvm.java.lang.Integer(key))
    assign = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    return int(assign.assignKeyToParallelOperator(row, max_parallelism, parallelism))


def shard_keys(parallelism: int, max_parallelism: int = MAX_PARALLELISM) -> list[int]:
    """``keys[i]``: an int key that Flink routes to subtask ``i``."""
    keys: dict[int, int] = {}
    k = 0
    while len(keys) < parallelism:
        keys.setdefault(subtask_of_key(k, max_parallelism, parallelism), k)
        k += 1
    return [keys[i] for i in range(parallelism)]


def shard_of(message: bytes, shards: int) -> int:
    """A deterministic shard for a message (so a replay routes it the same way)."""
    return zlib.crc32(message[:256]) % shards if shards > 1 else 0
