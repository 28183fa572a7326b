"""One trainer shard: trains batches, keeps its state, syncs parameters, reports metrics.

:class:`ShardWorker` is everything the Flink operator does, minus Flink: the operator
(:mod:`udfs.train_function`) hands it message payloads and timer calls and forwards
what it returns to the params, metrics and dead-letter topics. Tests drive it directly.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from freshet.config import Config
from freshet.topics import DeadLetter, ExampleBatch, Metric, SchemaError, encode_rows
from ps import EmbeddingCollection, from_ipc, to_ipc
from ps.delta import encode_dense, encode_sparse
from udfs.hold import ArrivalHold, EventTimeHold
from udfs.param_sync import SparseBuffer, Versions
from udfs.shard_state import StateStore, pack_meta, unpack_meta
from udfs.slot_check import SlotCheck
from udfs.trainer import Trainer

JOB = "train"
REPORT_EVERY_S = 1.0  # cumulative figures between windows, when the stream pauses
log = logging.getLogger("freshet.train")


@dataclass
class Outputs:
    """What one call produced, per topic."""

    params: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, Arrow IPC)
    metrics: list[str] = field(default_factory=list)  # Metric JSON
    dead_letters: list[str] = field(default_factory=list)  # DeadLetter JSON

    def extend(self, other: Outputs) -> Outputs:
        self.params += other.params
        self.metrics += other.metrics
        self.dead_letters += other.dead_letters
        return self


class ShardWorker:
    """Trains shard ``shard`` with state in ``state`` (restored lazily on creation).

    ``start_snapshot``: a replay's model directory to start from when ``state`` is
    empty (:meth:`save_snapshot` writes it).
    """

    def __init__(
        self, cfg: Config, shard: int, state: StateStore, start_snapshot: str | None = None
    ) -> None:
        self.cfg = cfg
        self.shard = shard
        self.state = state
        self.trainer = Trainer(cfg.model, cfg.train)
        self.subtask = -1  # the Flink subtask running this shard (set by the operator)
        self.sparse = SparseBuffer()
        self.event_time = cfg.train.order == "event_time"
        t = cfg.train
        self.slot_check = SlotCheck(
            [slot.name for slot in cfg.model.slots],
            buckets={s.name: len(s.boundaries) + 1 for s in cfg.model.slots if s.numeric})
        # Examples wait in the hold (and the state's held list) until trained together.
        self.hold: EventTimeHold | ArrivalHold = (
            EventTimeHold(t.micro_batch, t.max_hold_s, t.batch_examples, t.batch_wait_ms / 1000)
            if self.event_time else ArrivalHold(t.batch_examples, t.batch_wait_ms / 1000))
        self.held_written = 0  # rows in the state's held list (held or trained since)
        self.expiring = any(slot.expiry.enabled for slot in cfg.model.slots)
        self.versions = Versions()
        self.watermark_ms = 0
        self.log_len = 0
        self.synced_len = 0
        self.batches = 0  # trained since the last compaction
        self.window = 0
        self.last_sparse_sync = self.last_dense_sync = time.monotonic()
        self.restore_s = 0.0
        t = time.perf_counter()
        if self.state.meta() is not None:
            self._restore()
        elif start_snapshot:
            self._load_snapshot(Path(start_snapshot) / f"shard-{shard}")
            self._compact()  # the snapshot's rows must be in the checkpointed log
            self._save_meta()
        self.trainer.tables.start_journal()
        self.restore_s = time.perf_counter() - t
        self.restored_examples = self.trainer.ledger.examples  # trained before this start
        self._announced = False
        self.reported = self.restored_examples  # trained examples in the last report
        self.last_report = time.monotonic()

    # -- training ---------------------------------------------------------------------
    def process(self, value: bytes, watermark_ms: int | None = None) -> Outputs:
        """Take one examples-topic message; train what is due (:mod:`udfs.hold`).

        The message's examples are held (in keyed state too) until at least
        ``train.batch_examples`` are due or the oldest has waited ``train.batch_wait_ms``;
        in event-time order (``train.order``) only those the watermark ``watermark_ms``
        has passed are due.
        """
        out = Outputs()
        try:
            rows = ExampleBatch.rows_from_json(value)
            ExampleBatch.from_rows(rows)  # checks every row: a bad message is dead-lettered
        except SchemaError as e:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            dead = DeadLetter(source="examples", reason=str(e), payload=text[:10_000])
            out.dead_letters.append(dead.to_json().decode())
            return out
        if not rows:
            return out
        if self.restored_examples and not self._announced:
            # First batch after a restore: say when, and how long the state rebuild took.
            labels = {"shard": str(self.shard), "restore_s": f"{self.restore_s:.3f}",
                      "log_entries": str(self.log_len)}
            out.metrics.append(Metric(JOB, "restored_examples", self.restored_examples,
                                      labels=labels).to_json().decode())
        self._announced = True
        for warning in self.slot_check.add(rows):
            log.warning("train shard %d: %s", self.shard, warning)
            out.metrics.append(Metric(JOB, "warning", 1, labels={
                "shard": str(self.shard), "message": warning}).to_json().decode())
        late = self.hold.add(rows, time.monotonic())
        self.state.append_held(value)  # the only state write of a message that trains none
        self.held_written += len(rows)
        if late:  # below what is already trained: train now, out of order (counted)
            out.extend(self._train([ExampleBatch.from_rows(late)]))
        return out.extend(self._release(watermark_ms) or Outputs())

    def _release(self, watermark_ms: int | None, everything: bool = False) -> Outputs | None:
        """Train what the hold releases (in event-time order: micro-batch by micro-batch,
        so that a replay steps exactly as an in-process run over sorted examples)."""
        rows = self.hold.release(watermark_ms, time.monotonic(), everything)
        if rows and self.hold.clears_on_release():
            self.state.replace_held([])
            self.held_written = 0
        elif self.held_written > 2 * len(self.hold) + 4096:
            # Rewrite the held list once it is mostly trained rows (amortised O(1)).
            held = self.hold.rows()
            self.state.replace_held([encode_rows(held)] if held else [])
            self.held_written = len(held)
        if not rows:
            return None
        if not self.event_time:
            return self._train([ExampleBatch.from_rows(rows)])
        step = self.cfg.train.micro_batch
        return self._train([ExampleBatch.from_rows(rows[a:a + step])
                            for a in range(0, len(rows), step)])

    def wakeup_in_s(self) -> float | None:
        """Seconds until :meth:`on_timer` has something to do (None: nothing pending)."""
        now, due = time.monotonic(), []
        oldest = self.hold.oldest_arrival()
        if oldest is not None:
            t = self.cfg.train
            due.append(oldest + t.batch_wait_ms / 1000 - now)
            if t.max_hold_s > 0:
                due.append(oldest + t.max_hold_s - now)
        if self.sparse.rows:
            due.append(self.last_sparse_sync + self.cfg.sync.sparse_sync_interval_s - now)
        if self.trainer.ledger.examples > self.reported:
            # Else the last examples of a stream that pauses are trained but never reported.
            due.append(self.last_report + REPORT_EVERY_S - now)
        return max(min(due), 0.0) if due else None

    def _train(self, batches: list[ExampleBatch]) -> Outputs:
        """Train ``batches`` in order (each a ``train_batch`` call), then log, sync and
        write state once."""
        out = Outputs()
        for batch in batches:
            self.trainer.train_batch(batch)
            self.watermark_ms = max(self.watermark_ms, int(batch.ts.max()))
        now = time.monotonic()
        sync_due = now - self.last_sparse_sync >= self.cfg.sync.sparse_sync_interval_s
        if sync_due and self.expiring:
            # Rows idle for their slot's ttl_s (event time) go; the drain reports them
            # deleted, so the log and the params topic both carry the deletion.
            self.trainer.tables.evict_expired(self.watermark_ms / 1000.0)
        delta = self.trainer.tables.drain_delta(with_optimizer_state=True)
        self._append_log(delta)
        journal = self.trainer.tables.drain_journal()
        if journal is not None:
            self._append_log(journal)
        self.batches += 1
        self.sparse.add(delta)
        if sync_due:
            out.extend(self.sync_sparse())
        # A fresh deployment serves at once: the first dense model goes out with the
        # first sparse rows, later ones on dense_sync_interval_s.
        first_dense = sync_due and self.versions.dense == 0
        if first_dense or now - self.last_dense_sync >= self.cfg.sync.dense_sync_interval_s:
            out.extend(self.sync_dense())
        if self.batches >= self.cfg.train.compact_every:
            out.extend(self.sync_sparse())  # compaction drops per-batch entries: sync first
            self._compact()
        if self.trainer.eval.window_full():
            out.extend(self._window_metrics())
        self._save_meta()
        return out

    # -- sync -------------------------------------------------------------------------
    def sync_sparse(self) -> Outputs:
        """Rows touched since the last sync to the params topic (nothing if none)."""
        self.last_sparse_sync = time.monotonic()
        rows = self.sparse.take()
        self.synced_len = self.log_len
        if rows is None:
            return Outputs()
        msgs = encode_sparse(
            rows, model_id=self.cfg.model.model_id, shard=self.shard,
            seq=self.versions.next("sparse"), watermark_ms=self.watermark_ms,
            wall_time_ms=int(time.time() * 1000), max_part_bytes=self.cfg.sync.max_part_bytes,
        )
        return Outputs(params=msgs)

    def sync_dense(self) -> Outputs:
        self.last_dense_sync = time.monotonic()
        msgs = encode_dense(
            self.trainer.dense_weights(), model_kind=self.trainer.arch.kind,
            model_id=self.cfg.model.model_id, shard=self.shard,
            seq=self.versions.next("dense"), watermark_ms=self.watermark_ms,
            wall_time_ms=int(time.time() * 1000),
        )
        return Outputs(params=msgs)

    def on_timer(self, watermark_ms: int | None = None) -> Outputs:
        """A timer: train what the watermark (or ``max_hold_s``) has released, and flush
        touched rows so the last ones go out when the stream pauses."""
        out = self._release(watermark_ms) or Outputs()
        if self.sparse.rows and (time.monotonic() - self.last_sparse_sync
                                 >= self.cfg.sync.sparse_sync_interval_s):
            out.extend(self.sync_sparse())
            self._save_meta()
        if self.trainer.ledger.examples > self.reported and (
                time.monotonic() - self.last_report >= REPORT_EVERY_S):
            out.metrics += self._metrics(final=False)  # the stream paused: report what is
        return out

    def finish(self) -> Outputs:
        """End of a bounded input: train what is held, sync everything and report the
        final figures."""
        out = self._release(None, everything=True) or Outputs()
        out.extend(self.sync_sparse()).extend(self.sync_dense())
        if self.trainer.eval.w_count:
            out.extend(self._window_metrics())
        out.metrics += self._metrics(final=True)
        self._save_meta()
        return out

    # -- metrics ----------------------------------------------------------------------
    def _window_metrics(self) -> Outputs:
        w = self.trainer.eval.take_window()
        self.window += 1
        log.info("train shard %d window %d (%s order): auc %.4f logloss %.4f over %d "
                 "examples (cumulative auc %.4f, %d examples)", self.shard, self.window,
                 self.cfg.train.order, w["auc"], w["logloss"], w["examples"],
                 self.trainer.eval.auc(), self.trainer.eval.count)
        labels = {"shard": str(self.shard), "window": str(self.window),
                  "examples": str(w["examples"]), "watermark_ms": str(self.watermark_ms),
                  "order": self.cfg.train.order}
        ms = [Metric(JOB, "auc", w["auc"], labels=labels),
              Metric(JOB, "logloss", w["logloss"], labels=labels)]
        served = self.trainer.served.take_window()
        if served["examples"]:
            s_labels = {**labels, "examples": str(served["examples"])}
            ms += [Metric(JOB, "served_window_auc", served["auc"], labels=s_labels),
                   Metric(JOB, "served_window_logloss", served["logloss"], labels=s_labels)]
        return Outputs(metrics=[m.to_json().decode() for m in ms] + self._metrics(final=False))

    def _metrics(self, final: bool) -> list[str]:
        ev, ledger = self.trainer.eval, self.trainer.ledger
        self.reported, self.last_report = ledger.examples, time.monotonic()
        labels = {"shard": str(self.shard), "subtask": str(self.subtask),
                  "final": str(final).lower(),
                  "fingerprint": str(ledger.fingerprint), "restore_s": f"{self.restore_s:.3f}",
                  "restored_examples": str(self.restored_examples),
                  "watermark_ms": str(self.watermark_ms), "order": self.cfg.train.order}
        # "order" says what the progressive figures mean: scored in event-time order, or
        # in arrival order, which the joiner's output order inflates (udfs/hold.py).
        ms = [Metric(JOB, "trained_examples", ledger.examples, labels=labels),
              Metric(JOB, "progressive_auc", ev.auc(), labels=labels),
              Metric(JOB, "progressive_logloss", ev.logloss(), labels=labels),
              Metric(JOB, "held_examples", len(self.hold), labels=labels),
              Metric(JOB, "late_examples", self.hold.late, labels=labels)]
        served = self.trainer.served
        if served.count:
            # What users were shown: the scores serving logged with each impression.
            ms += [Metric(JOB, "served_examples", served.count, labels=labels),
                   Metric(JOB, "served_auc", served.auc(), labels=labels),
                   Metric(JOB, "served_logloss", served.logloss(), labels=labels)]
        if final:
            # Histograms let a reader merge the AUC of several shards exactly.
            hist = {"pos": ev.pos.tolist(), "neg": ev.neg.tolist(), "loss": ev.loss,
                    "served_pos": served.pos.tolist(), "served_neg": served.neg.tolist(),
                    "served_loss": served.loss, "served_count": served.count}
            ms.append(Metric(JOB, "eval_histogram", ev.count,
                             labels={**labels, "histogram": json.dumps(hist)}))
        return [m.to_json().decode() for m in ms]

    # -- state ------------------------------------------------------------------------
    def _save_meta(self) -> None:
        extra = {
            "log_len": self.log_len, "synced_len": self.synced_len, "batches": self.batches,
            "window": self.window,
            "watermark_ms": self.watermark_ms, "sparse_seq": self.versions.sparse,
            "dense_seq": self.versions.dense, "rng": self.trainer.tables.init_state(),
            "hold": self.hold.state(),
        }
        self.state.put_meta(pack_meta(self.trainer.dense_state(), extra))

    def _append_log(self, entry: pa.RecordBatch) -> None:
        self.state.append_log(to_ipc(entry))
        self.log_len += 1

    def _compact(self) -> None:
        """Replace the log by a snapshot: every row, then the filters' state."""
        tables = self.trainer.tables
        chunks = [to_ipc(b) for b in tables.iter_rows()]
        if tables.has_filter_state:
            chunks.append(to_ipc(tables.filter_state()))
        self.state.replace_log(chunks)
        self.log_len = self.synced_len = len(chunks)
        self.batches = 0

    def _restore(self) -> None:
        arrays, extra = unpack_meta(self.state.meta())
        self.trainer.load_dense_state(arrays)
        tables = self.trainer.tables
        entries = 0
        for i, blob in enumerate(self.state.log()):
            entry = from_ipc(blob)
            entries += 1
            # Three kinds of entry (see _compact, process), told apart by their columns.
            if "sketch" in entry.schema.names:
                tables.load_filter_state(entry)
                continue
            if "sightings" in entry.schema.names:
                tables.replay_journal(entry)
                continue
            tables.apply(entry, with_optimizer_state=True)
            if i >= extra["synced_len"]:
                self.sparse.add(entry)  # touched after the last sync: still to be sent
        if entries != extra["log_len"]:
            raise RuntimeError(f"shard {self.shard}: log has {entries} entries, meta says "
                               f"{extra['log_len']}")
        tables.drain_delta()  # restored rows are not news
        tables.set_init_state(extra["rng"])
        self.log_len, self.synced_len = extra["log_len"], extra["synced_len"]
        self.batches = extra.get("batches", 0)
        self.window, self.watermark_ms = extra["window"], extra["watermark_ms"]
        self.versions = Versions(extra["sparse_seq"], extra["dense_seq"])
        arrived = [r for blob in self.state.held() for r in ExampleBatch.rows_from_json(blob)]
        self.hold.load(extra["hold"], arrived, time.monotonic())
        self.held_written = len(arrived)

    def save_snapshot(self, directory: str | Path) -> Path:
        """Write this shard's model (tables + dense state) for a later start."""
        path = Path(directory) / f"shard-{self.shard}"
        self.trainer.tables.snapshot(path / "tables")
        extra = {"watermark_ms": self.watermark_ms, "window": self.window}
        (path / "dense.npz").write_bytes(pack_meta(self.trainer.dense_state(), extra))
        return path

    def _load_snapshot(self, path: Path) -> None:
        tables = EmbeddingCollection.restore(path / "tables", self.trainer.slots)
        self.trainer.tables = tables
        arrays, extra = unpack_meta((path / "dense.npz").read_bytes())
        self.trainer.load_dense_state(arrays)
        self.watermark_ms, self.window = extra["watermark_ms"], extra.get("window", 0)


def merged_auc(histograms: list[dict[str, list[float]]]) -> float:
    """The progressive AUC of several shards from their final ``eval_histogram``s."""
    from udfs.evaluation import histogram_auc

    pos = np.sum([np.asarray(h["pos"]) for h in histograms], axis=0)
    neg = np.sum([np.asarray(h["neg"]) for h in histograms], axis=0)
    return histogram_auc(pos, neg)
