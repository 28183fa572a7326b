"""The loader: a thread that applies the ``params`` topic to a :class:`ServingState`.

It reads every partition of the params topic by manual assignment (no consumer
group: the position lives in our snapshots),
reassembles parts with :class:`ps.delta.DeltaAssembler` (which drops re-deliveries
by seq), and applies each complete update atomically: sparse rows into the tables,
dense weights through the :class:`~server.gate.ValidationGate` and one
reference swap. A dense update is scored by the model its header names
(``model_kind``); one whose kind is not registered here is refused, never swapped in.

Position and restart. After each record the loader knows a *safe point* per
partition: the offset from which every not-yet-applied update can be read again
in full (it stays before the first part of an incomplete update). Snapshots store
the safe points, the CRC32 of the record just before each, and the last applied
seq per stream; a restarted loader restores the tables and resumes there, and
seq deduplication skips updates it had already applied.

A topic that was deleted and recreated (or a broker that lost its data) is noticed,
not silently skipped over: the loader first re-reads the record before its stored
offset and compares its CRC. If that record is missing (the topic is now shorter)
or different, it logs an error, counts an offset reset, clears its seq memory (a
fresh topic's seqs may restart) and reads the topic from the beginning.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import deque

from confluent_kafka import Message, TopicPartition

from freshet.config import Config
from freshet.kafka import consumer, partitions
from ps.delta import DeltaAssembler, Update
from ps.serving.metrics import ServingMetrics
from ps.serving.state import DenseModel, ServingState
from ps.serving.store import Position, ServingStore
from server.gate import GateDecision, ValidationGate
from server.window import ExampleWindow
from udfs.models import UnknownModelKind, architecture

log = logging.getLogger(__name__)


def stream_key(stream: tuple[str, int, str]) -> str:
    """``(model_id, shard, kind)`` -> ``"model_id/kind/shard"`` (as in snapshots)."""
    model_id, shard, kind = stream
    return f"{model_id}/{kind}/{shard}"


def parse_stream_key(key: str) -> tuple[str, int, str]:
    """Inverse of :func:`stream_key` (model IDs may contain ``/``).

    >>> parse_stream_key(stream_key(("a/b", 3, "dense")))
    ('a/b', 3, 'dense')
    """
    model_id, kind, shard = key.rsplit("/", 2)
    return model_id, int(shard), kind


def unservable(kind: str) -> str | None:
    """Why serving cannot score a dense model of ``kind``; None when it can.

    >>> unservable("lr") is None
    True
    >>> unservable("")
    'it names no model kind (written before dense updates carried one)'
    """
    if not kind:
        return "it names no model kind (written before dense updates carried one)"
    try:
        architecture(kind)
    except UnknownModelKind as e:
        return f"{e} (a trainer newer than this server?)"
    return None


class DeltaLoader(threading.Thread):
    """Consumes parameter deltas into ``state`` until :meth:`stop`.

    Parameters
    ----------
    cfg : Config
        Broker, topic names.
    state : ServingState
        What is served; only this thread writes to it.
    position : Position
        Where to resume (from :meth:`ServingStore.load`), empty for the beginning.
    model_id : str
        Updates of other models on the topic are skipped.
    store : ServingStore, optional
        Where to snapshot every ``store_interval_s`` and on stop.
    gate, window : ValidationGate, ExampleWindow, optional
        Dense updates are validated when a gate is given.
    """

    def __init__(
        self,
        cfg: Config,
        state: ServingState,
        position: Position,
        model_id: str,
        store: ServingStore | None = None,
        gate: ValidationGate | None = None,
        window: ExampleWindow | None = None,
        metrics: ServingMetrics | None = None,
        store_interval_s: float = 5.0,
        probe_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(name="delta-loader", daemon=True)
        self.cfg = cfg
        self.topic = cfg.topics.name("params")
        self.state = state
        self.model_id = model_id
        self.store = store
        self.gate = gate
        self.window = window
        self.metrics = metrics or ServingMetrics()
        self.store_interval_s = store_interval_s
        self.probe_timeout_s = probe_timeout_s
        self.assembler = _assembler(position)
        self.next: dict[int, int] = dict(position.offsets)  # next offset to read
        # partition -> (safe offset, the record just before it, or its CRC if restored)
        self.safe: dict[int, tuple[int, bytes | int | None]] = {
            p: (o, position.last_crc.get(p)) for p, o in position.offsets.items()
        }
        self.probing: dict[int, float] = {}  # partition -> deadline to see its last record
        self.pending_partition: dict[tuple, int] = {}  # incomplete update -> partition
        self.decisions: deque[GateDecision] = deque(maxlen=50)
        self.resets: list[str] = []
        # Updates that did not fit the tables, or whose model kind is not known here.
        self.rejected: deque[str] = deque(maxlen=50)
        self.applied = 0  # complete updates applied since start
        self.caught_up = threading.Event()  # set once the topic was read to its end
        self._dirty = False
        self._last_snapshot = time.monotonic()
        self._last_gauges = 0.0
        self._halt = threading.Event()
        self._consumer = None
        self._duplicates = self.assembler.duplicates
        restored = state.dense
        if restored is not None and (why := unservable(restored.kind)) is not None:
            # Serving it would fail every request; without it the server answers "no
            # model yet" until the trainer's next dense update.
            self._refuse(f"restored dense shard {restored.shard} seq {restored.seq}: {why}")
            state.restore_versions(state.versions, None)

    # -- lifecycle -----------------------------------------------------------------
    def open(self) -> None:
        """Connect and assign partitions at the stored position (probing each)."""
        self._consumer = consumer(
            self.cfg, group=f"freshet-serve-{self.model_id}",
            **{"fetch.wait.max.ms": 50, "enable.partition.eof": False},
        )
        self.parts = partitions(self.cfg, self.topic)
        deadline = time.monotonic() + self.probe_timeout_s
        for p in self.parts:
            self.next.setdefault(p, 0)
            self.safe.setdefault(p, (0, None))
            if self.next[p] > 0:
                self.probing[p] = deadline
        self._assign()

    def _assign(self) -> None:
        # A probing partition starts one record early: the last record already read.
        self._consumer.assign([
            TopicPartition(self.topic, p, self.next[p] - (1 if p in self.probing else 0))
            for p in self.parts
        ])

    def run(self) -> None:
        try:
            if self._consumer is None:
                self.open()
            while not self._halt.is_set():
                self.poll(0.05)
        except Exception:
            log.exception("loader failed; serving goes on with the last applied state")
            raise
        finally:
            try:
                self.snapshot(force=True)
            finally:
                if self._consumer is not None:
                    self._consumer.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout_s)

    # -- one step ------------------------------------------------------------------
    def poll(self, timeout_s: float) -> int:
        """Read what is available (waiting up to ``timeout_s`` for the first record),
        apply complete updates, snapshot if due. Returns records handled."""
        first = self._consumer.poll(timeout_s)
        msgs = [first] if first is not None else []
        if msgs:
            msgs += self._consumer.consume(2000, timeout=0)
        reset: set[int] = set()
        for m in msgs:
            if m.error() is not None:
                log.warning("params consumer: %s", m.error())
                continue
            if m.partition() in reset:
                continue  # stale: read before this partition was reset
            if not self._handle(m):
                reset.add(m.partition())
        now = time.monotonic()
        for p, deadline in list(self.probing.items()):
            if now > deadline:
                self._reset(p, f"no record at offset {self.next[p] - 1} within "
                               f"{self.probe_timeout_s}s: the topic is shorter than the "
                               "snapshot (topic deleted and recreated, or a wiped broker?)")
        if not msgs and not self.probing:
            self.caught_up.set()
        self._update_gauges()
        self.snapshot()
        return len(msgs)

    def _handle(self, m: Message) -> bool:
        """Handle one record; False if it showed the partition must be re-read."""
        p, o, value = m.partition(), m.offset(), m.value()
        if p in self.probing:
            del self.probing[p]
            stored = self.safe[p][1]
            expected = self.next[p] - 1
            if o == expected and zlib.crc32(value) == stored:
                return True  # the record the snapshot ends with: the topic is intact
            if o != expected:  # the broker moved the read elsewhere: offset out of range
                self._reset(p, f"no record at offset {expected}: the topic is shorter than "
                               "the snapshot (recreated or truncated?)")
            else:
                self._reset(p, f"record at offset {o} is not the one the snapshot ended "
                               "with (topic recreated?)")
            return False
        try:
            update = self.assembler.feed(value)
        except Exception as e:  # not a Freshet delta: skip it, never stop serving
            self.metrics.malformed.inc()
            log.warning("params %s[%d]@%d: undecodable record skipped: %s", self.topic, p, o, e)
            update = None
        dup = self.assembler.duplicates - self._duplicates
        if dup:
            self.metrics.duplicates.inc(dup)
            self._duplicates = self.assembler.duplicates
        self._track_pending(p)
        if update is not None:
            self._apply(update)
        self.next[p] = o + 1
        if p not in self.pending_partition.values():
            self.safe[p] = (o + 1, value)
        return True

    def _track_pending(self, p: int) -> None:
        pending = self.assembler.pending
        for uid in pending:
            self.pending_partition.setdefault(uid, p)
        for uid in [u for u in self.pending_partition if u not in pending]:
            del self.pending_partition[uid]

    def _reset(self, p: int, why: str) -> None:
        log.error("params %s[%d]: %s; clearing seq memory and reading from offset 0",
                  self.topic, p, why)
        self.metrics.offset_resets.inc()
        self.resets.append(f"partition {p}: {why}")
        self.probing.pop(p, None)
        self.assembler = DeltaAssembler()
        self._duplicates = 0
        self.pending_partition.clear()
        self.next[p] = 0
        self.safe[p] = (0, None)
        self._assign()

    # -- applying ------------------------------------------------------------------
    def _apply(self, update: Update) -> None:
        meta = update.meta
        if meta.model_id != self.model_id:
            return
        now_ms = time.time() * 1000
        if meta.kind == "sparse":
            try:
                version = self.state.apply_sparse(update.payload, meta.shard, meta.watermark_ms)
            except ValueError as e:  # does not fit this server's slots: skip, keep serving
                self.metrics.malformed.inc()
                self.rejected.append(f"sparse shard {meta.shard} seq {meta.seq}: {e}")
                log.error("sparse update shard %d seq %d not applied: %s", meta.shard,
                          meta.seq, e)
                return
            self.metrics.table_version.set(version)
            self.metrics.freshness.observe(max(0.0, (now_ms - meta.watermark_ms) / 1000))
        else:
            why = unservable(meta.model_kind)
            if why is not None:
                self._refuse(f"dense shard {meta.shard} seq {meta.seq}: {why}")
                return
            self._apply_dense(DenseModel(update.payload, meta.shard, meta.seq,
                                         meta.watermark_ms, meta.wall_time_ms,
                                         meta.model_kind))
        self.metrics.delta_lag.labels(meta.kind).observe(
            max(0.0, (now_ms - meta.wall_time_ms) / 1000))
        self.metrics.updates.labels(meta.kind).inc()
        self.applied += 1
        self._dirty = True

    def _refuse(self, what: str) -> None:
        """A dense model not served (the current one stays)."""
        self.metrics.malformed.inc()
        self.rejected.append(what)
        log.error("%s; not served, keeping the current model", what)

    def _apply_dense(self, candidate: DenseModel) -> None:
        if self.gate is None:
            decision = GateDecision(candidate.shard, candidate.seq, True, "no gate",
                                    None, None, 0, int(time.time() * 1000))
        else:
            window = self.window.batch() if self.window is not None else None
            decision = self.gate.check(candidate, self.state.dense, self.state, window)
        self.decisions.append(decision)
        self.metrics.gate.labels("accepted" if decision.accepted else "rejected").inc()
        if decision.accepted:
            version = self.state.set_dense(candidate)
            self.metrics.model_version.set(version)
            self.metrics.model_seq.set(candidate.seq)
            log.info("dense shard %d seq %d swapped in: %s", candidate.shard, candidate.seq,
                     decision.reason)
        else:
            log.warning("dense shard %d seq %d REJECTED, keeping the current model: %s",
                        candidate.shard, candidate.seq, decision.reason)

    # -- persistence ---------------------------------------------------------------
    def position(self) -> Position:
        """The safe point per partition and the applied seqs (what a snapshot stores)."""
        crc = {p: (zlib.crc32(v) if isinstance(v, bytes) else v)
               for p, (_, v) in self.safe.items() if v is not None}
        return Position(
            offsets={p: o for p, (o, _) in self.safe.items()},
            last_crc=crc,
            seqs={stream_key(s): seq for s, seq in self.assembler.done.items()},
        )

    def snapshot(self, force: bool = False) -> None:
        """Save state and position if something changed and one is due (or forced)."""
        if self.store is None or not self._dirty or self.probing:
            return
        if not force and time.monotonic() - self._last_snapshot < self.store_interval_s:
            return
        t0 = time.monotonic()
        self.store.save(self.state, self.position())
        self._dirty = False
        self._last_snapshot = time.monotonic()
        self.metrics.snapshots.inc()
        log.debug("snapshot in %.3fs", self._last_snapshot - t0)

    def _update_gauges(self) -> None:
        now = time.monotonic()
        if now - self._last_gauges < 1.0:
            return
        self._last_gauges = now
        for slot, rows in self.state.table_rows().items():
            self.metrics.table_rows.labels(slot).set(rows)
        self.metrics.table_bytes.set(self.state.nbytes())


def _assembler(position: Position) -> DeltaAssembler:
    asm = DeltaAssembler()
    asm.done = {parse_stream_key(k): seq for k, seq in position.seqs.items()}
    return asm
