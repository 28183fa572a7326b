"""The Flink operator: a keyed process function that hands message batches to shards.

Each examples-topic message is already a mini-batch (the joiner writes 256-512
examples per message), so Python sees one call per batch, and the shard writes its
keyed state once per call (:mod:`udfs.shard_state`). Keys are shard numbers mapped
to Flink keys that land one per subtask (:mod:`udfs.routing`).

Outputs: parameter deltas (Arrow IPC bytes) on the main output; metrics and dead
letters (JSON) on side outputs. Timers: a processing-time timer flushes touched rows
``sparse_sync_interval_s`` after a batch if nothing else has (and again while examples
are held); in event-time order (:mod:`udfs.hold`) an event-time timer fires when the
watermark makes the next held micro-batch due; an event-time timer at the end of time
fires when a bounded input (replay) ends: what is held is trained, everything synced.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, KeySelector, OutputTag, RuntimeContext
from pyflink.datastream.functions import TimeDomain
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from freshet.config import Config
from udfs.routing import shard_of

METRICS = OutputTag("metrics", Types.STRING())
DEAD_LETTERS = OutputTag("dead_letters", Types.STRING())
BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
END_OF_TIME = (1 << 63) - 1  # Flink's final watermark on a bounded input


class ShardKey(KeySelector):
    """Routes a message to its shard's Flink key."""

    def __init__(self, keys: list[int]) -> None:
        self.keys = keys

    def get_key(self, value: bytes) -> int:
        return self.keys[shard_of(value, len(self.keys))]


class _FlinkState:
    """:class:`udfs.shard_state.StateStore` over the current key's Flink state."""

    def __init__(self, log: Any, meta: Any, held: Any) -> None:
        self._log, self._meta, self._held = log, meta, held

    def log(self) -> Iterable[bytes]:
        return self._log.get() or []

    def append_log(self, blob: bytes) -> None:
        self._log.add(blob)

    def replace_log(self, blobs: list[bytes]) -> None:
        self._log.update(blobs)

    def meta(self) -> bytes | None:
        return self._meta.value()

    def put_meta(self, blob: bytes) -> None:
        self._meta.update(blob)

    def held(self) -> Iterable[bytes]:
        return self._held.get() or []

    def append_held(self, blob: bytes) -> None:
        self._held.add(blob)

    def replace_held(self, blobs: list[bytes]) -> None:
        self._held.update(blobs)


class TrainFunction(KeyedProcessFunction):
    """Trains the shard of the current key; see the module docstring."""

    def __init__(
        self,
        cfg_json: str,
        keys: list[int],
        start_snapshot: str | None = None,
        write_snapshot: str | None = None,
    ) -> None:
        self.cfg_json = cfg_json
        self.shard_of_key = {k: i for i, k in enumerate(keys)}
        self.start_snapshot = start_snapshot
        self.write_snapshot = write_snapshot

    def open(self, runtime_context: RuntimeContext) -> None:
        self.cfg = Config.from_json(self.cfg_json)
        log = runtime_context.get_list_state(ListStateDescriptor("model_log", BYTES))
        meta = runtime_context.get_state(ValueStateDescriptor("model_meta", BYTES))
        held = runtime_context.get_list_state(ListStateDescriptor("held_examples", BYTES))
        self.state = _FlinkState(log, meta, held)
        self.workers: dict[int, Any] = {}
        self.subtask = runtime_context.get_index_of_this_subtask()
        self.wakeup_at: dict[int, int] = {}  # key -> processing-time timer set (ms)
        self.end_armed: set[int] = set()
        self.due_armed: dict[int, int] = {}  # key -> event-time timer set for the hold

    def _worker(self, key: int) -> Any:
        w = self.workers.get(key)
        if w is None:
            _import_numba()
            from udfs.shard import ShardWorker  # imports TensorFlow: only in the worker

            w = ShardWorker(self.cfg, self.shard_of_key[key], self.state, self.start_snapshot)
            w.subtask = self.subtask
            self.workers[key] = w
        return w

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context) -> Iterator:
        key = ctx.get_current_key()
        timers = ctx.timer_service()
        worker = self._worker(key)
        out = worker.process(value, _watermark(timers))
        if key not in self.end_armed:
            timers.register_event_time_timer(END_OF_TIME)
            self.end_armed.add(key)
        self._arm(key, worker, timers)
        yield from _emit(out)

    def _arm(self, key: int, worker: Any, timers: Any) -> None:
        """Timers for what the shard has pending: a processing-time one for held examples
        (``batch_wait_ms``, ``max_hold_s``) and touched rows (the sparse sync, also when
        the stream pauses), an event-time one for when the watermark makes held
        examples due (event-time order)."""
        delay = worker.wakeup_in_s()
        if delay is not None:
            at = int(time.time() * 1000 + max(delay * 1000, 1))
            armed = self.wakeup_at.get(key)
            if armed is None or at < armed:
                timers.register_processing_time_timer(at)
                self.wakeup_at[key] = at
        due = worker.hold.next_due_ms()
        if due is not None and self.due_armed.get(key) != due:
            timers.register_event_time_timer(due)
            self.due_armed[key] = due

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        key = ctx.get_current_key()
        worker = self._worker(key)
        timers = ctx.timer_service()
        if ctx.time_domain() == TimeDomain.EVENT_TIME and timestamp == END_OF_TIME:
            out = worker.finish()
            if self.write_snapshot:
                worker.save_snapshot(self.write_snapshot)
        else:
            if ctx.time_domain() == TimeDomain.EVENT_TIME:
                self.due_armed.pop(key, None)
            elif self.wakeup_at.get(key, timestamp) <= timestamp:
                self.wakeup_at.pop(key, None)  # the earliest armed timer is the one firing
            out = worker.on_timer(_watermark(timers))
            self._arm(key, worker, timers)
        yield from _emit(out)


def _watermark(timers: Any) -> int | None:
    """The operator's event-time watermark (None before the first one)."""
    w = timers.current_watermark()
    return None if w is None or w < 0 else int(w)


def _import_numba() -> None:
    """Import numba with the real ``print``: PyFlink's worker replaces ``builtins.print``
    with a method, and numba's import fails looking it up ("has no attribute 'print'")."""
    import builtins

    patched = builtins.print
    builtins.print = getattr(getattr(patched, "__self__", None), "_print", patched)
    try:
        import numba  # noqa: F401
    finally:
        builtins.print = patched


def _emit(out: Any) -> Iterator:
    for _key, value in out.params:
        yield value
    for m in out.metrics:
        yield METRICS, m
    for d in out.dead_letters:
        yield DEAD_LETTERS, d
