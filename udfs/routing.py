"""Which trainer shard a message goes to, and a Flink key that lands on that shard.

Flink sends key ``k`` (an INT key: ``hashCode() == k``) to key group
``murmur(k) % max_parallelism`` and that group to subtask
``group * parallelism // max_parallelism``. :func:`shard_keys` picks, per subtask, the
smallest int key that lands on it, so shard ``i`` is trained by subtask ``i``
and no subtask holds two shards.

Checked against Flink's ``KeyGroupRangeAssignment`` in the JVM (tests/udfs/test_routing.py).

Examples
--------
>>> key_group(0, 128), subtask_of(0, 128, 2)
(94, 1)
>>> keys = shard_keys(2); keys, [subtask_of(k, 128, 2) for k in keys]
([4, 0], [0, 1])
"""

from __future__ import annotations

import zlib

MAX_PARALLELISM = 128


def _i32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _rotl(x: int, r: int) -> int:
    x &= 0xFFFFFFFF
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF


def murmur_hash(code: int) -> int:
    """Flink's ``MathUtils.murmurHash(int)``."""
    code = _rotl(code * 0xCC9E2D51, 15)
    code = _rotl(code * 0x1B873593, 13)
    code = (code * 5 + 0xE6546B64) & 0xFFFFFFFF
    code ^= 4
    code ^= code >> 16
    code = (code * 0x85EBCA6B) & 0xFFFFFFFF
    code ^= code >> 13
    code = (code * 0xC2B2AE35) & 0xFFFFFFFF
    code ^= code >> 16
    code = _i32(code)
    if code >= 0:
        return code
    return -code if code != -(1 << 31) else 0


def key_group(key: int, max_parallelism: int = MAX_PARALLELISM) -> int:
    return murmur_hash(_i32(key)) % max_parallelism


def subtask_of(key: int, max_parallelism: int, parallelism: int) -> int:
    return key_group(key, max_parallelism) * parallelism // max_parallelism


def shard_keys(parallelism: int, max_parallelism: int = MAX_PARALLELISM) -> list[int]:
    """``keys[i]``: an int key that Flink routes to subtask ``i``."""
    keys: dict[int, int] = {}
    k = 0
    while len(keys) < parallelism:
        keys.setdefault(subtask_of(k, max_parallelism, parallelism), k)
        k += 1
    return [keys[i] for i in range(parallelism)]


def shard_of(message: bytes, shards: int) -> int:
    """A deterministic shard for a message (so a replay routes it the same way)."""
    return zlib.crc32(message[:256]) % shards if shards > 1 else 0
