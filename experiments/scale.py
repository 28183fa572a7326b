"""One model across many trainers, simulated in-process: P owners, W workers (issue 22).

    freshet experiment scale [--p 1,2,4,8,16] [--w ...] [--staleness 0,1] [--dense sum,avg4]
                             [--batch 32,32w] [--split user] [--limit N]
                             [--gbps 1.25] [--rtt-us 1000]

Before the Flink graph, this picks its design by measurement. It walks MovieLens-100K in
time order in *rounds* and scores every example before it is trained on, as
:mod:`experiments.walkforward` does:

- **Owners.** Each embedding row (value and optimizer state) lives on exactly one of
  ``P`` owners, ``owner = mix64(id ^ crc32(slot)) mod P`` (:func:`home`). An owner is an
  :class:`ps.EmbeddingCollection` holding only its rows; it creates a row on its first
  pull and applies gradients with the slot's optimizer.
- **Workers.** A round takes the next ``--batch`` examples of the stream (``32``: the
  trainer's micro-batches, the same batches in the same order; ``32w``: 32 per worker,
  ``32 W`` per round) and splits them over ``W`` workers by ``--split``: ``user``,
  ``mix64(user_id) mod W`` (a Flink ``key_by(user)``: a user's session stays on one
  worker), or ``index``, contiguous blocks. A worker is a :class:`udfs.trainer.Trainer`
  (the code the Flink job runs) whose tables are an :class:`OwnerClient`: it pulls its
  examples' distinct rows from their owners, runs the dense forward/backward, walks its
  examples' first-order weights one by one (``train.first_order_per_example``) and
  pushes, per distinct row, the sum of its examples' gradients and the change the walk
  made to column 0 and its optimizer state.
- **Staleness ``S``** (rounds). The pushes of round ``r`` reach the owners at the end of
  round ``r + S``: a pull may miss the last ``S`` rounds' pushes. ``S = 0`` is
  synchronous (every push applied before the next round's pulls). An owner sums a
  round's gradients of all workers per row and steps once, as the single trainer sums
  a micro-batch's; a worker's first-order change is added to the row as it is then
  (``old + (new - read)``; the worker's value itself when nothing changed it since).
- **One dense model**, ``--dense``: ``sum``, the W workers' dense gradients summed into
  one model every round (a synchronous all-reduce; the one Adam step divides by the
  round's examples), or ``avgN``, every worker steps a local copy with its own gradient
  and Adam, and the copies' weights are averaged every N rounds (Adam's moments stay
  local).
- **Row init**, ``--init``: ``row`` (default) draws a new row from a generator seeded by
  ``(seed, slot, id)``, so every configuration starts from the same rows and its AUC does
  not depend on P at all (W, S and the dense schedule are what move it); ``owner`` is
  the tables' own per-slot generator, which with P = 1 is exactly the trainer's.

Measured per configuration: ``auc`` (progressive, exact), ``exchange_bytes_per_example``
(:func:`exchange_bytes`: every pulled and pushed row, whether or not its owner shares the
worker's subtask, plus the dense sync), ``remote_bytes_per_example`` (the part that
crosses subtasks: worker ``i`` and owner ``i`` share subtask ``i``),
``cpu_s_per_example`` (``time.process_time`` of the whole run / examples, one process),
``rows_per_owner`` (max, mean, sum) and the predicted cluster rate
(:func:`predict`). Every run first trains the plain Trainer on the same batches and the
simulator at P = W = 1, S = 0, ``init owner``, and prints both AUCs (they must be equal).
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.common import base_args, out_dir, train_config, write_result
from experiments.streams import micro_batches, movielens_examples
from experiments.walkforward import walk_forward
from freshet.config import ModelConfig, TrainConfig
from freshet.data.movielens import default_model
from freshet.topics import ExampleBatch
from ps import EmbeddingCollection, evaluation
from ps.hashing import mix64_array
from ps.slot import Cells
from udfs.trainer import Trainer

KEY_BYTES = 8  # an int64 ID travels with every pulled or pushed row


# -- placement --------------------------------------------------------------------------

def home(slot: str, ids: np.ndarray, owners: int) -> np.ndarray:
    """Each ID's owner: ``mix64(id ^ crc32(slot)) mod owners`` (int64).

    The slot's name salts the hash so that the same ID in two slots need not share an
    owner; a stable function of (slot, id) alone, so a restart or another process
    places every row the same way.

    >>> home("user_id", np.array([1, 2, 3, 1]), 4).tolist() == home("user_id",
    ...     np.array([1, 2, 3, 1]), 4).tolist()
    True
    >>> set(home("item_id", np.arange(1000), 4).tolist())
    {0, 1, 2, 3}
    """
    if owners == 1:
        return np.zeros(len(ids), np.int64)
    salt = zlib.crc32(slot.encode())
    return (mix64_array(ids, salt) % np.uint64(owners)).astype(np.int64)


def exchange_bytes(pulled_rows: int, pushed_rows: int, cell_rows: int, dim: int,
                   state_columns: int, dense_floats: int) -> int:
    """Bytes a worker and its owners exchange (float32 values, int64 keys).

    - a pulled row: its key and ``dim`` values (``8 + 4 dim``);
    - a pushed gradient row: its key and ``dim`` values (``8 + 4 dim``);
    - a first-order cell: read with the row, plus its ``state_columns`` optimizer state
      (``4 state_columns``), and written back as a change of weight and state with its
      key (``8 + 4 (1 + state_columns)``);
    - the dense sync: ``4 dense_floats``.

    >>> exchange_bytes(pulled_rows=10, pushed_rows=10, cell_rows=10, dim=16,
    ...                state_columns=1, dense_floats=0)
    1640
    """
    return (pulled_rows * (KEY_BYTES + 4 * dim) + pushed_rows * (KEY_BYTES + 4 * dim)
            + cell_rows * (4 * state_columns + KEY_BYTES + 4 * (1 + state_columns))
            + 4 * dense_floats)


# -- owners -----------------------------------------------------------------------------

@dataclass
class Round:
    """What the workers pushed in one round, applied together when it is due."""

    cells: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]] = field(
        default_factory=list)  # (slot, ids, values read, values after the walk, now)
    grads: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    now: float = 0.0


class Owners:
    """``P`` owners, each an :class:`EmbeddingCollection` of the rows :func:`home` gives it.

    Parameters
    ----------
    model : ModelConfig
        Its slots (dims, optimizers, filters).
    owners : int
        P.
    train : TrainConfig
        ``table`` and ``seed`` as for the trainer.
    staleness : int
        Rounds a push waits before the owners apply it.
    init : str
        ``"row"``: new rows from a generator seeded by (seed, slot, id); ``"owner"``: the
        table's own per-slot generator.
    """

    def __init__(self, model: ModelConfig, owners: int, train: TrainConfig,
                 staleness: int = 0, init: str = "row") -> None:
        if init not in ("row", "owner"):
            raise ValueError(f"init must be 'row' or 'owner', got {init!r}")
        self.n = owners
        self.parts = [EmbeddingCollection(model.slots, table=train.table, seed=train.seed)
                      for _ in range(owners)]
        self.staleness = staleness
        self.init = init
        self.seed = train.seed
        self.slot_index = {s.name: k for k, s in enumerate(model.slots)}
        self.queue: deque[Round] = deque()
        self.current = Round()
        self.cpu = np.zeros(owners)  # owner CPU seconds this round (reset by the caller)
        self.stale_pulls = 0  # rows pulled while a push to them was still queued

    def pull(self, slot: str, ids: np.ndarray, now: float, where: np.ndarray) -> np.ndarray:
        """Rows of distinct ``ids`` (homes ``where``), created at their owner if new."""
        dim = self.parts[0].dim(slot)
        out = np.empty((len(ids), dim), np.float32)
        queued = [i for r in self.queue for i, _ in r.grads.get(slot, [])]
        if queued:
            self.stale_pulls += int(np.isin(ids, np.concatenate(queued)).sum())
        for p, idx in _groups(where, self.n):
            t = time.process_time()
            part, mine = self.parts[p], ids[idx]
            if self.init == "row":
                self._create(part, slot, mine, now)
            out[idx] = part.pull(slot, mine, now)
            self.cpu[p] += time.process_time() - t
        return out

    def _create(self, part: EmbeddingCollection, slot: str, ids: np.ndarray,
                now: float) -> None:
        """Create ``ids``' missing rows with values drawn from (seed, slot, id)."""
        s = part.slots[slot]
        new = ids[s.table.find(ids) < 0]
        if not len(new):
            return
        part.pull(slot, new, now)  # admits and creates them (the filter decides)
        rows = s.table.find(new)
        k = self.slot_index[slot]
        for i, r in zip(new.tolist(), rows.tolist(), strict=True):
            if r >= 0:
                rng = np.random.default_rng([self.seed, k, i & 0xFFFFFFFFFFFFFFFF])
                s.table.rows.values[r, : s.dim] = rng.normal(0.0, s.config.init_std, s.dim)

    def cells(self, slot: str, ids: np.ndarray, column: int, where: np.ndarray) -> Cells:
        """Column ``column`` with its optimizer state of distinct ``ids``, gathered from
        their owners; ``rows`` is the position in ``ids`` (-1: no row)."""
        values = np.zeros((len(ids), 3), np.float32)
        rows = np.full(len(ids), -1, np.int64)
        code, hyper = 0, np.zeros(0, np.float32)
        for p, idx in _groups(where, self.n):
            t = time.process_time()
            c = self.parts[p].cells(slot, ids[idx], column)
            values[idx] = c.values
            rows[idx] = np.where(c.rows >= 0, idx, -1)
            code, hyper = c.code, c.hyper
            self.cpu[p] += time.process_time() - t
        if not len(ids):
            c = self.parts[0].cells(slot, ids, column)
            code, hyper = c.code, c.hyper
        return Cells(rows, values, column, code, hyper)

    def end_round(self, now: float) -> None:
        """Queue this round's pushes; apply those now ``staleness`` rounds old."""
        self.current.now = now
        self.queue.append(self.current)
        self.current = Round()
        while len(self.queue) > self.staleness:
            self._apply(self.queue.popleft())

    def flush(self) -> None:
        while self.queue:
            self._apply(self.queue.popleft())

    def _apply(self, r: Round) -> None:
        # First the workers' first-order changes, in worker order, then per slot one step
        # with the round's gradient sums (the trainer stores the cells, then pushes).
        for slot, ids, read, walked, now in r.cells:
            where = home(slot, ids, self.n)
            for p, idx in _groups(where, self.n):
                t = time.process_time()
                part = self.parts[p]
                c = part.cells(slot, ids[idx], 0)
                old, base, new = c.values, read[idx], walked[idx]
                c.values = np.where(old == base, new, old + (new - base)).astype(np.float32)
                part.store_cells(slot, c, now)
                self.cpu[p] += time.process_time() - t
        for slot, pushes in r.grads.items():
            ids = np.concatenate([i for i, _ in pushes])
            grads = np.concatenate([g for _, g in pushes])
            where = home(slot, ids, self.n)
            for p, idx in _groups(where, self.n):
                t = time.process_time()
                self.parts[p].push(slot, ids[idx], grads[idx], r.now)
                self.cpu[p] += time.process_time() - t

    def rows(self) -> list[int]:
        """Rows per owner."""
        return [len(c) for c in self.parts]


def _groups(where: np.ndarray, n: int) -> list[tuple[int, np.ndarray]]:
    """``(owner, positions)`` for each owner present in ``where``."""
    if n == 1:
        return [(0, np.arange(len(where)))] if len(where) else []
    order = np.argsort(where, kind="stable")  # stable: each owner's positions ascend
    cuts = np.flatnonzero(np.diff(where[order])) + 1
    return [(int(where[g[0]]), g) for g in np.split(order, cuts) if len(g)]


@dataclass
class Traffic:
    """Rows one worker moved, in total and to owners on other subtasks."""

    pulled: int = 0
    pushed: int = 0
    cells: int = 0
    remote_pulled: int = 0
    remote_pushed: int = 0
    remote_cells: int = 0


class OwnerClient:
    """A worker's view of the owners, with the API :class:`Trainer` uses of its tables.

    Pulls and cell reads go to the owners now (they see what has been applied so far);
    pushes and cell writes join the owners' current round.
    """

    def __init__(self, owners: Owners, worker: int) -> None:
        self.owners = owners
        self.worker = worker
        self.traffic = Traffic()
        self._read: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def dim(self, slot: str) -> int:
        return self.owners.parts[0].dim(slot)

    def _where(self, slot: str, ids: np.ndarray) -> tuple[np.ndarray, int]:
        where = home(slot, ids, self.owners.n)
        return where, int((where != self.worker).sum())

    def pull(self, slot: str, ids: np.ndarray, now: float, train: bool = True) -> np.ndarray:
        where, remote = self._where(slot, ids)
        self.traffic.pulled += len(ids)
        self.traffic.remote_pulled += remote
        return self.owners.pull(slot, ids, now, where)

    def cells(self, slot: str, ids: np.ndarray, column: int = 0) -> Cells:
        where, remote = self._where(slot, ids)
        self.traffic.cells += len(ids)
        self.traffic.remote_cells += remote
        c = self.owners.cells(slot, ids, column, where)
        self._read[slot] = (np.array(ids, np.int64), c.values.copy())
        return c

    def store_cells(self, slot: str, cells: Cells, now: float) -> None:
        ids, read = self._read.pop(slot)
        keep = cells.rows >= 0
        if keep.any():
            self.owners.current.cells.append(
                (slot, ids[keep], read[keep], cells.values[keep].copy(), now))

    def push(self, slot: str, ids: np.ndarray, grads: np.ndarray, now: float) -> None:
        _, remote = self._where(slot, ids)
        self.traffic.pushed += len(ids)
        self.traffic.remote_pushed += remote
        self.owners.current.grads.setdefault(slot, []).append(
            (np.array(ids, np.int64), np.array(grads, np.float32)))


# -- the dense schedules ----------------------------------------------------------------

class SummedDense:
    """One dense model: every worker's gradient at the same weights, summed, one step.

    Wraps one :class:`Trainer` whose fused step (gradient and Adam in one call) is
    replaced by a gradient-only step; :meth:`apply` then takes one Adam step with the
    round's summed gradient divided by the round's examples, as the trainer's step does
    for a micro-batch.
    """

    def __init__(self, trainer: Trainer) -> None:
        import tensorflow as tf

        self.trainer = trainer
        variables = trainer.model.trainable_variables
        spec = [tf.TensorSpec((None, len(trainer.slots), trainer.dim), tf.float32),
                tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.float32)]
        self._grads = tf.function(self._dense_grads, input_signature=spec
                                  ).get_concrete_function()
        self._apply = tf.function(self._dense_apply, input_signature=[
            [tf.TensorSpec(v.shape, tf.float32) for v in variables],
            tf.TensorSpec((), tf.float32)]).get_concrete_function()
        self.pending: list[list[np.ndarray]] = []
        trainer._step = self._step  # the trainer's pull/pool/walk/push around our step
        self._tf = tf

    def _dense_grads(self, pooled: Any, labels: Any, offset: Any) -> tuple[Any, ...]:
        logits, g_pooled, loss, g_dense = self.trainer._dense_grads(pooled, labels, offset)
        return (logits, g_pooled, loss, *g_dense)

    def _dense_apply(self, grads: list[Any], n: Any) -> Any:
        variables = self.trainer.model.trainable_variables
        self.trainer.optimizer.apply_gradients(
            zip([g / n for g in grads], variables, strict=True))
        return n

    def _step(self, pooled: Any, labels: Any, offset: Any) -> tuple[Any, Any, Any]:
        logits, g_pooled, loss, *g_dense = self._grads(pooled, labels, offset)
        self.pending.append([g.numpy() for g in g_dense])
        return logits, g_pooled, loss

    def apply(self, examples: int) -> None:
        """One Adam step with the round's summed gradients (nothing if none)."""
        if not self.pending:
            return
        total = [np.sum(gs, axis=0, dtype=np.float32) if len(gs) > 1 else gs[0]
                 for gs in zip(*self.pending, strict=True)]
        self.pending = []
        tf = self._tf
        self._apply([tf.constant(g) for g in total], tf.constant(float(examples), tf.float32))


def average_weights(trainers: Sequence[Trainer]) -> None:
    """Set every trainer's dense weights to their mean (Adam's moments stay local)."""
    per_var = zip(*[t.model.trainable_variables for t in trainers], strict=True)
    for vs in per_var:
        mean = np.mean([v.numpy() for v in vs], axis=0, dtype=np.float32)
        for v in vs:
            v.assign(mean)


def parse_dense(spec: str) -> tuple[str, int]:
    """``"sum"`` -> ``("sum", 1)``; ``"avg4"`` -> ``("avg", 4)``.

    >>> parse_dense("sum"), parse_dense("avg4")
    (('sum', 1), ('avg', 4))
    """
    if spec == "sum":
        return "sum", 1
    if spec.startswith("avg") and spec[3:].isdigit() and int(spec[3:]) >= 1:
        return "avg", int(spec[3:])
    raise ValueError(f"dense schedule must be 'sum' or 'avgN', got {spec!r}")


def round_examples(spec: str, workers: int) -> int:
    """Examples per round: ``"32"`` -> 32; ``"32w"`` -> 32 per worker.

    >>> round_examples("32", 4), round_examples("32w", 4)
    (32, 128)
    """
    if spec.endswith("w"):
        return int(spec[:-1]) * workers
    return int(spec)


def split(batch: ExampleBatch, workers: int, how: str) -> list[np.ndarray]:
    """Each worker's example positions in ``batch`` (stream order kept).

    >>> from freshet.topics import Example
    >>> b = ExampleBatch.from_rows([Example(f"r{i}", 1, i % 3, i, 0).to_dict()
    ...                             for i in range(6)])
    >>> [s.tolist() for s in split(b, 2, "index")]
    [[0, 1, 2], [3, 4, 5]]
    >>> sorted(sum((s.tolist() for s in split(b, 2, "user")), []))
    [0, 1, 2, 3, 4, 5]
    """
    n = len(batch)
    if workers == 1:
        return [np.arange(n)]
    if how == "index":
        return np.array_split(np.arange(n), workers)
    if how == "user":
        w = (mix64_array(batch.user_id) % np.uint64(workers)).astype(np.int64)
        return [np.flatnonzero(w == k) for k in range(workers)]
    raise ValueError(f"split must be 'user' or 'index', got {how!r}")


# -- one configuration ------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    """One configuration of the simulator."""

    owners: int = 1
    workers: int = 1
    staleness: int = 0
    dense: str = "sum"
    batch: str = "32"
    split: str = "user"
    init: str = "row"

    @property
    def name(self) -> str:
        return (f"P{self.owners} W{self.workers} S{self.staleness} {self.dense} "
                f"b{self.batch} {self.split} init-{self.init}")


@dataclass
class SimRun:
    """Per-example logits and what the run cost."""

    setup: Setup
    logits: np.ndarray
    labels: np.ndarray
    rounds: int
    traffic: Traffic
    dense_floats: int  # floats moved by the dense sync (every worker's send + receive)
    dense_params: int
    dim: int
    state_columns: int
    rows_per_owner: list[int]
    cpu_s: float  # process_time of the whole run
    critical_cpu_s: float  # sum over rounds of the busiest subtask's CPU
    dense_syncs: int
    seconds: float
    stale_pulls: int = 0
    owners: Owners | None = None

    @property
    def examples(self) -> int:
        return len(self.labels)

    def auc(self) -> float:
        return evaluation.auc(self.logits, self.labels)

    def bytes(self, remote: bool = False) -> int:
        t = self.traffic
        if remote:
            return exchange_bytes(t.remote_pulled, t.remote_pushed, t.remote_cells, self.dim,
                                  self.state_columns, self.dense_floats)
        return exchange_bytes(t.pulled, t.pushed, t.cells, self.dim, self.state_columns,
                              self.dense_floats)


def simulate(examples: Sequence[Any] | None, model: ModelConfig, setup: Setup,
             train: TrainConfig | None = None, batches: Sequence[ExampleBatch] | None = None,
             progress: bool = False) -> SimRun:
    """Walk the stream through ``setup``'s owners and workers (see the module).

    Parameters
    ----------
    examples : sequence of Example, optional
        The stream in order (cut into rounds of ``setup.batch``); or give ``batches``.
    model : ModelConfig
    setup : Setup
    train : TrainConfig, optional
        Seed, table and first-order steps as for the trainer (``micro_batch`` is set to
        the round size: each worker takes one step per round).
    batches : sequence of ExampleBatch, optional
        The rounds themselves.
    progress : bool
        Print a line at every tenth of the rounds.
    """
    train = train or TrainConfig()
    W, P = setup.workers, setup.owners
    G = round_examples(setup.batch, W)
    if batches is None:
        batches = micro_batches(list(examples or []), G)
    kind, every = parse_dense(setup.dense)
    cfg = dataclasses.replace(train, micro_batch=max(G, max((len(b) for b in batches),
                                                          default=1)))
    owners = Owners(model, P, cfg, setup.staleness, setup.init)
    clients = [OwnerClient(owners, w) for w in range(W)]
    if kind == "sum":
        trainers = [Trainer(model, cfg, clients[0])]
        summed: SummedDense | None = SummedDense(trainers[0])
    else:
        trainers = [Trainer(model, cfg, clients[w]) for w in range(W)]
        summed = None
    dense_params = sum(int(np.prod(v.shape)) for v in trainers[0].model.trainable_variables)
    slot0 = owners.parts[0].slots[model.slots[0].name]
    state_columns = slot0.width // slot0.dim - 1
    subtasks = max(P, W)
    logits, labels = [], []
    critical, dense_floats, syncs = 0.0, 0, 0
    # The clock starts after the workers are built (Keras models, traced steps).
    cpu0 = cpu_run0 = time.process_time()
    t0 = time.perf_counter()
    for r, batch in enumerate(batches):
        work = np.zeros(subtasks)
        owners.cpu[:] = 0.0
        out = np.empty(len(batch), np.float32)
        for w, idx in enumerate(split(batch, W, setup.split)):
            if not len(idx):
                continue
            t = trainers[0] if summed is not None else trainers[w]
            t.tables = clients[w]
            owned = owners.cpu.sum()
            c = time.process_time()
            out[idx] = t.train_batch(batch.take(idx)).logits
            work[w] += time.process_time() - c - (owners.cpu.sum() - owned)
        c = time.process_time()
        if summed is not None:
            summed.apply(len(batch))
            if W > 1:
                dense_floats += 2 * dense_params * W
                syncs += 1
        elif W > 1 and (r + 1) % every == 0:
            average_weights(trainers)
            dense_floats += 2 * dense_params * W
            syncs += 1
        work[:W] += time.process_time() - c  # each worker applies the sync to its copy
        owners.end_round(float(batch.ts.max()) / 1000.0)
        work[:P] += owners.cpu
        critical += float(work.max())
        logits.append(out)
        labels.append(batch.label)
        if progress and (r + 1) % max(1, len(batches) // 10) == 0:
            print(f"[scale]   {setup.name}: round {r + 1}/{len(batches)}, "
                  f"{time.process_time() - cpu_run0:.0f}s CPU", flush=True)
    owners.flush()
    traffic = Traffic(**{f.name: sum(getattr(c.traffic, f.name) for c in clients)
                         for f in dataclasses.fields(Traffic)})
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    return SimRun(setup=setup, logits=cat(logits), labels=cat(labels), rounds=len(batches),
                  traffic=traffic, dense_floats=dense_floats, dense_params=dense_params,
                  dim=slot0.dim, state_columns=state_columns, rows_per_owner=owners.rows(),
                  cpu_s=time.process_time() - cpu0, critical_cpu_s=critical,
                  dense_syncs=syncs, seconds=time.perf_counter() - t0,
                  stale_pulls=owners.stale_pulls, owners=owners)


def predict(run: SimRun, gbps: float, rtt_s: float) -> dict[str, float]:
    """The examples/s a cluster of ``max(P, W)`` subtasks (one core each, worker ``i`` and
    owner ``i`` on subtask ``i``) would reach, from the run's measured costs.

    ``time = sum over rounds of the busiest subtask's CPU`` (measured: its worker's
    pull/pool/step/walk/push plus its owner's row work plus the dense sync)
    ``+ remote bytes / (subtasks x gbps GB/s)`` (each subtask's link carries its share,
    not overlapped with compute) ``+ waits x rtt``, one wait per synchronous exchange on
    a round's critical path: the row pull when ``S = 0`` (with ``S >= 1`` it is fetched
    during the previous round), the dense all-reduce every round (``sum``) or every N
    (``avgN``) when W > 1. One subtask alone has no network.
    """
    subtasks = max(run.setup.owners, run.setup.workers)
    if subtasks == 1:
        net_s = wait_s = 0.0
    else:
        net_s = run.bytes(remote=True) / (subtasks * gbps * 1e9)
        waits = run.rounds if run.setup.staleness == 0 else 0
        waits += run.dense_syncs
        wait_s = waits * rtt_s
    total = run.critical_cpu_s + net_s + wait_s
    return {"predicted_examples_per_s": run.examples / total if total else 0.0,
            "compute_bound_examples_per_s": run.examples / run.critical_cpu_s
            if run.critical_cpu_s else 0.0,
            "predicted_compute_s": run.critical_cpu_s, "predicted_network_s": net_s,
            "predicted_wait_s": wait_s}


def summary(run: SimRun, gbps: float, rtt_s: float) -> dict[str, Any]:
    """One configuration's figures (rounded for the report)."""
    s, n = run.setup, max(run.examples, 1)
    rows = run.rows_per_owner
    out = {"p": s.owners, "w": s.workers, "staleness": s.staleness, "dense": s.dense,
           "batch": s.batch, "split": s.split, "init": s.init,
           "examples": run.examples, "rounds": run.rounds, "auc": round(run.auc(), 4),
           "exchange_bytes_per_example": round(run.bytes() / n, 1),
           "remote_bytes_per_example": round(run.bytes(remote=True) / n, 1),
           "dense_bytes_per_example": round(4 * run.dense_floats / n, 1),
           "rows_pulled_per_example": round(run.traffic.pulled / n, 3),
           "stale_pull_share": round(run.stale_pulls / max(run.traffic.pulled, 1), 4),
           "cpu_s_per_example": round(run.cpu_s / n, 7),
           "rows_per_owner_max": max(rows), "rows_per_owner_mean": round(float(np.mean(rows)), 1),
           "rows": sum(rows), "wall_s": round(run.seconds, 1)}
    out.update({k: round(v) if k.endswith("per_s") else round(v, 3)
                for k, v in predict(run, gbps, rtt_s).items()})
    return out


# -- the experiment ---------------------------------------------------------------------

def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def grid(ps: Sequence[int], ws: Sequence[int] | None, staleness: Sequence[int],
         dense: Sequence[str], batch: Sequence[str], how: str, init: str) -> list[Setup]:
    """Every configuration: P paired with W = P unless ``ws`` is given (then every pair);
    W = 1 takes one dense schedule only (they coincide)."""
    pairs = [(p, p) for p in ps] if not ws else [(p, w) for p in ps for w in ws]
    out, seen = [], set()
    for p, w in pairs:
        for b in batch:
            for s in staleness:
                for d in (dense if w > 1 else dense[:1]):
                    key = (p, w, s, d, round_examples(b, w))  # 32w is 32 at W = 1
                    if key not in seen:
                        seen.add(key)
                        out.append(Setup(p, w, s, d, b, how, init))
    return out


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    head = ("| P | W | S | dense | batch | AUC | stale pulls | bytes/ex | remote bytes/ex "
            "| dense bytes/ex | CPU us/ex | rows/owner max (mean) | predicted ex/s "
            "| compute-bound ex/s |")
    lines = [head, "|" + "---:|" * 14]
    for r in rows:
        lines.append(
            f"| {r['p']} | {r['w']} | {r['staleness']} | {r['dense']} | {r['batch']} "
            f"| {r['auc']:.4f} | {r['stale_pull_share']:.1%} "
            f"| {r['exchange_bytes_per_example']:,.0f} "
            f"| {r['remote_bytes_per_example']:,.0f} | {r['dense_bytes_per_example']:,.0f} "
            f"| {1e6 * r['cpu_s_per_example']:.0f} "
            f"| {r['rows_per_owner_max']:,} ({r['rows_per_owner_mean']:,.0f}) "
            f"| {r['predicted_examples_per_s']:,} | {r['compute_bound_examples_per_s']:,} |")
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: Any) -> None:
    """``scale_auc.png`` and ``scale_throughput.png`` in ``path``: per schedule, AUC and
    predicted examples/s against the subtasks (W = P rows only)."""
    from experiments import plots

    series: dict[str, dict[str, tuple[list[int], list[float]]]] = {"auc": {}, "rate": {}}
    for r in rows:
        if r["p"] != r["w"]:
            continue
        name = f"S={r['staleness']} {r['dense']} batch {r['batch']}"
        for key, field_ in (("auc", "auc"), ("rate", "predicted_examples_per_s")):
            xs, ys = series[key].setdefault(name, ([], []))
            xs.append(r["p"])
            ys.append(r[field_])
    for name in list(series["auc"]):  # W = 1 has one schedule: start every line there
        first = next((r for r in rows if r["p"] == r["w"] == 1
                      and name.startswith(f"S={r['staleness']} ")), None)
        if first is not None and series["auc"][name][0][0] != 1:
            for key, field_ in (("auc", "auc"), ("rate", "predicted_examples_per_s")):
                series[key][name][0].insert(0, 1)
                series[key][name][1].insert(0, first[field_])
    plots.lines(path / "scale_auc.png", series["auc"], "P = W (subtasks)", "progressive AUC",
                "One model across P owners and W workers: quality", logx=True, markers=True)
    plots.lines(path / "scale_throughput.png", series["rate"], "P = W (subtasks)",
                "predicted examples/s", "Predicted cluster rate from measured costs",
                logx=True, markers=True)


def run(setups: Sequence[Setup], limit: int = 0, seed: int = 0, gbps: float = 1.25,
        rtt_s: float = 1e-3, out: str = "") -> dict[str, Any]:
    """The baseline check, then every configuration; writes ``result.json``."""
    path = out_dir("scale", out)
    exs = movielens_examples(limit)
    model, train = default_model(), train_config(seed)
    batches32 = micro_batches(exs, train.micro_batch)
    # The baseline: today's trainer on today's batches, and the simulator in the
    # configuration that must reproduce it exactly.
    c = time.process_time()
    base = walk_forward(batches32, model, train)
    base_cpu = time.process_time() - c
    check = simulate(None, model, Setup(1, 1, 0, "sum", str(train.micro_batch), "user",
                                        "owner"), train, batches=batches32)
    same = bool(np.array_equal(base.online, check.logits))
    print(f"[scale] baseline: Trainer auc {base.auc():.4f} ({base_cpu / len(exs) * 1e6:.0f} "
          f"us CPU/example); simulator P1 W1 S0 init-owner auc {check.auc():.4f}; "
          f"logits identical: {same}", flush=True)
    cache: dict[int, list[ExampleBatch]] = {train.micro_batch: batches32}
    rows = []
    for k, s in enumerate(setups):
        G = round_examples(s.batch, s.workers)
        if G not in cache:
            cache[G] = micro_batches(exs, G)
        r = simulate(None, model, s, train, batches=cache[G], progress=True)
        rows.append(summary(r, gbps, rtt_s))
        x = rows[-1]
        print(f"[scale] {k + 1}/{len(setups)} {s.name}: auc {x['auc']:.4f}, "
              f"{x['exchange_bytes_per_example']:.0f} B/ex ({x['remote_bytes_per_example']:.0f} "
              f"remote), {1e6 * x['cpu_s_per_example']:.0f} us CPU/ex, rows/owner max "
              f"{x['rows_per_owner_max']}, predicted {x['predicted_examples_per_s']} ex/s "
              f"({r.seconds:.0f}s)", flush=True)
    print(table(rows), flush=True)
    result = {
        "experiment": "scale", "dataset": "movielens-100k", "model": "deepfm",
        "examples": len(exs), "seed": seed, "gbps": gbps, "rtt_s": rtt_s,
        "baseline": {"trainer_auc": round(base.auc(), 4), "simulator_auc": round(check.auc(), 4),
                     "logits_identical": same,
                     "trainer_cpu_s_per_example": round(base_cpu / max(len(exs), 1), 7),
                     "trainer_rows": len(base.trainer.tables)},
        "runs": rows,
    }
    plot(rows, path)
    write_result(path, result)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = base_args(__doc__)
    ap.add_argument("--p", default="1,2,4,8,16", help="owners (P)")
    ap.add_argument("--w", default="", help="workers (W); default: W = P for each P")
    ap.add_argument("--staleness", default="0,1", help="rounds a push may be late (S)")
    ap.add_argument("--dense", default="sum,avg4", help="dense schedules: sum, avgN")
    ap.add_argument("--batch", default="32,32w",
                    help="examples per round: N, or Nw for N per worker (comma-separated)")
    ap.add_argument("--split", default="user", choices=["user", "index"],
                    help="how a round's examples go to workers")
    ap.add_argument("--init", default="row", choices=["row", "owner"],
                    help="new rows: seeded by (seed, slot, id), or the owner's generator")
    ap.add_argument("--gbps", type=float, default=1.25,
                    help="network per subtask, GB/s, for the prediction (1.25: 10 Gbit/s)")
    ap.add_argument("--rtt-us", type=float, default=1000.0,
                    help="one synchronous exchange's round trip, us, for the prediction")
    ap.set_defaults(seeds=1)
    args = ap.parse_args(argv)
    if args.seeds != 1:  # every configuration is one walk of seed 0
        ap.error("scale runs one seed per configuration (--seeds 1)")
    for d in args.dense.split(","):
        parse_dense(d)
    setups = grid(_ints(args.p), _ints(args.w) or None, _ints(args.staleness),
                  args.dense.split(","), args.batch.split(","), args.split, args.init)
    return run(setups, args.limit, 0, args.gbps, args.rtt_us * 1e-6, args.out)


if __name__ == "__main__":
    main()
