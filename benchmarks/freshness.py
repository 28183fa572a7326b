"""End-to-end freshness: ``python -m benchmarks.freshness``.

producer -> joiner (Flink SQL) -> trainer (Flink) -> params topic -> loader -> ranking.

Starts an embedded broker, the joiner (``python -m jobs.join``), the trainer
(``python -m jobs.train``; sparse sync every ``--sparse-sync-s``, dense every 5 s)
and a serving process (``python -m jobs.serve``), each in its own process. A
background producer sends impressions at ``--impressions-per-s``, each clicked with
probability ``--ctr``. Once the server answers with a trained model, a probe every
``--probe-every-s`` publishes an impression and a click for a brand-new item and
notes the time just before the click is produced. A poller ranks the pending probe
items every 25 ms next to a never-trained control item, scoring the item slot only
(no user IDs): a probe's score differs from the control's exactly when the item's
embedding, created and changed by training on that click, is served. Freshness is
the time from producing the click to the first ranking response showing that.

The model also reads two user-level fresh signals (docs/signals.md, "At serving
time"): ``hist_pos`` (the user's last positively-acted items) and ``user_n`` (the
user's decayed impression count). They are the same for every candidate of a request,
so the probe-vs-control comparison above still sees the item embedding only; those
polls rank for a user nothing else touches.

In the same run, a signals probe every ``--signal-probe-every-s`` publishes an
impression and a click (event time = now) for a brand-new user and item, and notes the
time just before the click is produced. A second poller ranks for each pending probe's
user every 25 ms with ``shown = 1``, so the server logs the impression with the
signals it ranked with; a reader follows the ``features`` topic for those logged
impressions. Signals freshness is the time from producing the click to the start of
the first ranking whose logged ``hist_pos`` holds the probe's item. The server's signal
feed folds an event only once it is ``serving.signals_lateness_ms`` old
(``--signals-lateness-ms``), which is a floor under this figure.

Prints a JSON line last: ``actions_per_s`` (clicks produced per second during the
measurement), ``freshness_p50_s``, ``freshness_p99_s``, ``sparse_sync_interval_s``,
how many probes never showed up (``unresolved``), and for the signals
``signals_freshness_p50_s``, ``signals_freshness_p99_s``, ``signals_probes``,
``signals_unresolved``, ``signals_lateness_ms`` and the server feed's ``signals_late``
(events folded later than the lateness allowed, during the measurement;
``signals_late_total``: since the server started, its first read of the topics included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from freshet.broker import EmbeddedBroker, free_port
from freshet.config import Config, load_config
from freshet.kafka import consumer, create_topics, partitions, producer
from freshet.topics import Action, Impression
from server.client import request as http

USERS, ITEMS, GENRES = 50_000, 100_000, 50
PROBE_ITEM0 = 1 << 40  # probe items: never in the background traffic
CONTROL_ITEM0 = 1 << 41  # control items: never trained at all
SCORE_TOLERANCE = 1e-5
# The model's fresh signals: user-level only, so every candidate of a request reads the
# same IDs and the item probes' probe-vs-control comparison stays exact.
SIGNALS = ("hist_pos", "user_n")
POLL_USER = 1 << 40  # the item probes' polls rank for this user: nothing else touches it
SIGNAL_USER0 = 1 << 41  # signal probes' users: brand-new, one per probe
SIGNAL_ITEM0 = 1 << 42  # signal probes' items: never in the background traffic
SIGNAL_CANDIDATE = 1 << 43  # what signal polls rank (its logged impressions train it)
SIGNAL_PREFIX = "sig-"  # request IDs of the signal polls (the log reader's filter)
SIGNAL_GIVE_UP_S = 20.0  # a signal probe is polled this long at most


def config(bootstrap: str, work: Path, port: int, sparse_sync_s: float,
           signals_lateness_ms: int | None = None) -> Config:
    base = load_config(path=None)  # FRESHET__* overrides apply
    slots = [s for s in base.model.slots if s.name not in SIGNALS]
    serving = base.serving if signals_lateness_ms is None else dataclasses.replace(
        base.serving, signals_lateness_ms=signals_lateness_ms)
    return dataclasses.replace(
        base, work_dir=str(work),
        model=dataclasses.replace(base.model, slots=[
            *slots, *(dataclasses.replace(slots[0], name=n) for n in SIGNALS)]),
        stats=dataclasses.replace(base.stats, signals=list(SIGNALS)),
        kafka=dataclasses.replace(base.kafka, bootstrap=bootstrap),
        topics=dataclasses.replace(base.topics, prefix=f"f{uuid.uuid4().hex[:8]}."),
        flink=dataclasses.replace(base.flink, parallelism=1),
        sync=dataclasses.replace(base.sync, sparse_sync_interval_s=sparse_sync_s,
                                 dense_sync_interval_s=5.0),
        serving=dataclasses.replace(serving, port=port),
    )


class Jobs:
    """The joiner, trainer and server processes (each its own process group)."""

    def __init__(self, cfg: Config, work: Path) -> None:
        self.cfg, self.work = cfg, work
        conf = work / "config.json"
        conf.write_text(cfg.to_json())
        env = {**os.environ, "FRESHET__KAFKA__BOOTSTRAP": cfg.kafka.bootstrap,
               "FRESHET__TOPICS__PREFIX": cfg.topics.prefix, "FRESHET__WORK_DIR": cfg.work_dir,
               "FRESHET__SERVING__PORT": str(cfg.serving.port),
               # The server reads its config from the environment: the model's slots,
               # which of them are signals, and how long its feed waits.
               "FRESHET__MODEL__SLOTS": json.dumps([dataclasses.asdict(s)
                                                    for s in cfg.model.slots]),
               "FRESHET__STATS__SIGNALS": json.dumps(cfg.stats.signals),
               "FRESHET__SERVING__SIGNALS_LATENESS_MS": str(cfg.serving.signals_lateness_ms)}
        start = ",".join(f"{p}:0" for p in range(cfg.topics.partitions["examples"]))
        self.procs = {
            "serve": [sys.executable, "-m", "jobs.serve"],
            "join": [sys.executable, "-m", "jobs.join", "--config-json", str(conf)],
            "train": [sys.executable, "-m", "jobs.train", "--config-json", str(conf),
                      "--start", start],
        }
        self.running: dict[str, subprocess.Popen] = {}
        for name, cmd in self.procs.items():
            log = (work / f"{name}.log").open("w")
            self.running[name] = subprocess.Popen(cmd, env=env, stdout=log,
                                                  stderr=subprocess.STDOUT,
                                                  start_new_session=True)

    def check(self) -> None:
        for name, p in self.running.items():
            if p.poll() is not None:
                tail = (self.work / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{tail}")

    def stop(self) -> None:
        for p in self.running.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.running.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


class Traffic(threading.Thread):
    """Background impressions and clicks at a fixed rate (event time = now)."""

    def __init__(self, cfg: Config, rate: float, ctr: float) -> None:
        super().__init__(daemon=True)
        self.cfg, self.rate, self.ctr = cfg, rate, ctr
        self.stop_event = threading.Event()
        self.impressions = self.actions = 0

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def run(self) -> None:
        p = producer(self.cfg, **{"linger.ms": 5})
        feat, act = self.cfg.topics.name("features"), self.cfg.topics.name("actions")
        rng = np.random.default_rng(0)
        tick, n, owed, last = 0.01, 0, 0.0, time.monotonic()
        while not self.stop_event.is_set():
            t = time.monotonic()
            owed += (t - last) * self.rate  # events due since the last tick
            last = t
            now = int(time.time() * 1000)
            while owed >= 1:
                owed -= 1
                u, it = int(rng.integers(USERS)), int(rng.integers(ITEMS))
                rid = f"bg-{n}"
                imp = Impression(rid, it, u, now, {"user_id": [u], "item_id": [it],
                                                   "genre": [it % GENRES]})
                p.produce(feat, imp.to_json(), imp.key())
                if rng.random() < self.ctr:
                    p.produce(act, Action(rid, it, u, now, "click").to_json(), imp.key())
                    self.actions += 1
                self.impressions += 1
                n += 1
            p.poll(0)
            self.stop_event.wait(tick)
        p.flush(10)


class Probes:
    """Fresh items clicked once each; the time until a ranking shows their embedding."""

    def __init__(self, cfg: Config, port: int) -> None:
        self.cfg, self.port = cfg, port
        self.producer = producer(cfg, **{"linger.ms": 0})
        self.pending: dict[int, float] = {}  # item -> time the click was produced
        self.freshness: list[float] = []
        self.sent: dict[int, float] = {}  # item -> when its click was produced (all probes)
        self.resolved: list[tuple[float, float]] = []  # (send time, freshness) in order
        self.lock = threading.Lock()
        self.k = 0
        self.requests = 0

    def send(self) -> None:
        item, user = PROBE_ITEM0 + self.k, self.k % USERS
        rid = f"probe-{self.k}"
        self.k += 1
        now = int(time.time() * 1000)
        imp = Impression(rid, item, user, now, {"user_id": [user], "item_id": [item],
                                                "genre": [item % GENRES]})
        self.producer.produce(self.cfg.topics.name("features"), imp.to_json(), imp.key())
        self.producer.flush(5)
        t = time.monotonic()
        self.producer.produce(self.cfg.topics.name("actions"),
                              Action(rid, item, user, now, "click").to_json(), imp.key())
        self.producer.flush(5)
        with self.lock:
            self.pending[item] = t
            self.sent[item] = t

    def poll(self) -> None:
        with self.lock:
            items = list(self.pending)
        if not items:
            return
        control = CONTROL_ITEM0 + self.requests
        self.requests += 1
        body = {"user_id": POLL_USER, "user_slots": {"user_id": []}, "shown": 0,
                "demote": False,
                "candidates": [{"item_id": i, "slots": {"item_id": [i]}}
                               for i in [control, *items]]}
        status, out = http(self.port, "/rank", body)
        now = time.monotonic()
        if status != 200:
            return
        scores = {r["item_id"]: r["score"] for r in out["items"]}
        with self.lock:
            for i in items:
                # Not "!=": BLAS may round equal rows differently by an ulp or so; a
                # trained embedding moves the score by ~1e-3.
                if abs(scores[i] - scores[control]) > SCORE_TOLERANCE:
                    sent = self.pending.pop(i)
                    self.freshness.append(now - sent)
                    self.resolved.append((sent, now - sent))


def signals_freshness(clicks: Mapping[str, tuple[float, int]],
                      requests: Mapping[str, tuple[str, float]],
                      logged: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Per signals probe: seconds from its click to the first ranking that reflects it.

    Parameters
    ----------
    clicks : mapping
        Probe -> (time just before its click was produced, its item).
    requests : mapping
        Request ID -> (the probe whose user it ranked for, its start time).
    logged : mapping
        Request ID -> the ``hist_pos`` IDs its logged impression carries.

    Returns
    -------
    dict
        Probe -> the earliest start of a request whose logged ``hist_pos`` holds the
        probe's item, minus the click's time; a probe no logged request reflects is absent.

    Examples
    --------
    >>> signals_freshness({"p": (10.0, 7)}, {"a": ("p", 10.5), "b": ("p", 11.25)},
    ...                   {"a": [], "b": [7, 3]})
    {'p': 1.25}
    """
    first: dict[str, float] = {}
    for rid, hist in logged.items():
        if rid not in requests:  # another run's, or a poll that failed
            continue
        probe, start = requests[rid]
        if clicks[probe][1] in hist and start < first.get(probe, float("inf")):
            first[probe] = start
    return {probe: start - clicks[probe][0] for probe, start in first.items()}


def percentiles(values: Sequence[float], prefix: str) -> dict[str, float | None]:
    """``<prefix>_p50_s``, ``_p99_s`` and ``_max_s`` of ``values`` (seconds, to the ms);
    None when there are none.

    >>> percentiles([1.0, 2.0, 3.0], "f")
    {'f_p50_s': 2.0, 'f_p99_s': 2.98, 'f_max_s': 3.0}
    """
    a = np.asarray(values, dtype=float)
    if not len(a):
        return {f"{prefix}_p50_s": None, f"{prefix}_p99_s": None, f"{prefix}_max_s": None}
    return {f"{prefix}_p50_s": round(float(np.percentile(a, 50)), 3),
            f"{prefix}_p99_s": round(float(np.percentile(a, 99)), 3),
            f"{prefix}_max_s": round(float(a.max()), 3)}


LATE = 'freshet_serving_signal_events_total{outcome="late"}'


def metric(text: str, name: str) -> float | None:
    """The value of the sample ``name`` (with its labels) in Prometheus text; None if absent.

    >>> metric('a_total{k="x"} 3.0\\nb 1.0', 'a_total{k="x"}')
    3.0
    """
    for ln in text.splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[-1])
    return None


class SignalProbes:
    """Brand-new users clicked once each; the time until a ranking logs the click in its
    ``hist_pos`` (module docstring)."""

    def __init__(self, cfg: Config, port: int) -> None:
        self.cfg, self.port = cfg, port
        self.producer = producer(cfg, **{"linger.ms": 0})
        self.clicks: dict[str, tuple[float, int]] = {}  # probe -> (click time, item)
        self.users: dict[str, int] = {}  # probe -> its user
        self.pending: set[str] = set()  # probes still polled
        self.requests: dict[str, tuple[str, float]] = {}  # request ID -> (probe, start)
        self.logged: dict[str, list[int]] = {}  # request ID -> its logged hist_pos
        self.lock = threading.Lock()
        self.k = 0
        self.n = 0

    def send(self) -> None:
        probe = f"p{self.k}"
        user, item = SIGNAL_USER0 + self.k, SIGNAL_ITEM0 + self.k
        rid = f"sigprobe-{self.k}"  # not SIGNAL_PREFIX: the reader wants the polls only
        self.k += 1
        imp = Impression(rid, item, user, int(time.time() * 1000),
                         {"user_id": [user], "item_id": [item], "genre": [item % GENRES]})
        feat = self.cfg.topics.name("features")
        self.producer.produce(feat, imp.to_json(), imp.key())
        self.producer.flush(5)
        t = time.monotonic()
        click = Action(rid, item, user, int(time.time() * 1000), "click")
        self.producer.produce(self.cfg.topics.name("actions"), click.to_json(), imp.key())
        self.producer.flush(5)
        with self.lock:
            self.clicks[probe] = (t, item)
            self.users[probe] = user
            self.pending.add(probe)

    def poll(self) -> None:
        """One ranking, logged (``shown = 1``), for each pending probe's user."""
        with self.lock:
            now = time.monotonic()
            for probe in [p for p in self.pending if now - self.clicks[p][0] > SIGNAL_GIVE_UP_S]:
                self.pending.discard(probe)
            todo = [(p, self.users[p]) for p in self.pending]
        for probe, user in todo:
            rid = f"{SIGNAL_PREFIX}{self.n}"
            self.n += 1
            body = {"user_id": user, "user_slots": {"user_id": [user]}, "shown": 1,
                    "demote": False, "request_id": rid,
                    "candidates": [{"item_id": SIGNAL_CANDIDATE,
                                    "slots": {"item_id": [SIGNAL_CANDIDATE]}}]}
            start = time.monotonic()
            with self.lock:  # before sending: its log may be read before the answer
                self.requests[rid] = (probe, start)
            status, _ = http(self.port, "/rank", body)
            if status != 200:  # nothing logged
                with self.lock:
                    del self.requests[rid]

    def take(self, imp: Impression) -> None:
        """A logged impression of one of the polls (the log reader's)."""
        hist = imp.slots.get("hist_pos", [])
        with self.lock:
            self.logged[imp.request_id] = hist
            if imp.request_id in self.requests:
                probe = self.requests[imp.request_id][0]
                if self.clicks[probe][1] in hist:
                    self.pending.discard(probe)

    def all_logged(self) -> bool:
        with self.lock:
            return all(rid in self.logged for rid in self.requests)

    def freshness(self) -> dict[str, float]:
        with self.lock:
            return signals_freshness(self.clicks, self.requests, self.logged)


class LogReader(threading.Thread):
    """Follows ``features`` and hands the signal polls' logged impressions to ``probes``."""

    def __init__(self, cfg: Config, probes: SignalProbes) -> None:
        super().__init__(daemon=True)
        self.cfg, self.probes = cfg, probes
        self.stop_event = threading.Event()

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        topic = self.cfg.topics.name("features")
        c = consumer(self.cfg, group=f"freshet-bench-{uuid.uuid4().hex[:8]}",
                     **{"fetch.wait.max.ms": 50})
        prefix = SIGNAL_PREFIX.encode()
        try:
            # From the beginning: a poll's record is never produced before this starts.
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                      for p in partitions(self.cfg, topic)])
            while not self.stop_event.is_set():
                for m in c.consume(1000, timeout=0.1):
                    if m.error() is None and (m.key() or b"").startswith(prefix):
                        self.probes.take(Impression.from_json(m.value()))
        finally:
            c.close()


def joiner_lag(cfg: Config, since_ms: int) -> dict[str, float]:
    """Per examples message after ``since_ms``: its Kafka time minus its newest
    example's event time (how far behind the joiner's output is)."""
    from freshet.kafka import read
    from freshet.topics import ExampleBatch

    lags = []
    for m in read(cfg, cfg.topics.name("examples"), idle_s=1.0):
        t = m.timestamp()[1]
        if t >= since_ms:
            lags.append((t - int(ExampleBatch.from_json(m.value()).ts.max())) / 1000)
    if not lags:
        return {}
    return {"joiner_lag_p50_s": round(float(np.percentile(lags, 50)), 3),
            "joiner_lag_max_s": round(float(np.max(lags)), 3), "example_messages": len(lags)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--impressions-per-s", type=float, default=1000.0)
    ap.add_argument("--ctr", type=float, default=1.0)
    ap.add_argument("--probe-every-s", type=float, default=0.5)
    ap.add_argument("--signal-probe-every-s", type=float, default=1.0)
    ap.add_argument("--signals-lateness-ms", type=int, default=None,
                    help="the server's serving.signals_lateness_ms (default: the config's)")
    ap.add_argument("--sparse-sync-s", type=float, default=1.0)
    ap.add_argument("--warmup-timeout-s", type=float, default=300.0)
    ap.add_argument("--warmup-rate", type=float, default=0.1,
                    help="fraction of the rate sent until the pipeline serves (no backlog)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="freshet-bench-fresh-"))
    with EmbeddedBroker(log_path=work / "kafka.log") as b:
        port = free_port()
        cfg = config(b.bootstrap, work, port, args.sparse_sync_s, args.signals_lateness_ms)
        create_topics(cfg)
        jobs = Jobs(cfg, work)
        traffic = Traffic(cfg, args.impressions_per_s * args.warmup_rate, args.ctr)
        try:
            traffic.start()
            t0 = time.monotonic()
            while True:  # until a trained dense model serves
                jobs.check()
                try:
                    status = http(port, "/healthz")[1]
                    if status["ready"] and status["table_version"] > 0:
                        break
                except OSError:
                    pass
                if time.monotonic() - t0 > args.warmup_timeout_s:
                    raise RuntimeError(f"pipeline not serving after {args.warmup_timeout_s}s; "
                                       f"logs in {work}")
                time.sleep(0.5)
            warmup_s = time.monotonic() - t0
            print(json.dumps({"warmup_s": round(warmup_s, 1)}), flush=True)

            probes = Probes(cfg, port)
            signal_probes = SignalProbes(cfg, port)
            reader = LogReader(cfg, signal_probes)
            reader.start()
            stop_polling = threading.Event()

            def poller(poll: Callable[[], None]) -> None:
                while not stop_polling.is_set():
                    t = time.monotonic()
                    poll()
                    stop_polling.wait(max(0.0, 0.025 - (time.monotonic() - t)))

            poll_threads = [threading.Thread(target=poller, args=(f,), daemon=True)
                            for f in (probes.poll, signal_probes.poll)]
            for t in poll_threads:
                t.start()
            # the feed's catch-up at start is not counted
            late0 = metric(http(port, "/metrics")[1], LATE)
            traffic.set_rate(args.impressions_per_s)
            start, actions0 = time.monotonic(), traffic.actions
            start_ms = int(time.time() * 1000)
            next_item = next_signal = start
            while time.monotonic() - start < args.seconds:
                now = time.monotonic()
                if now >= next_item:
                    probes.send()
                    next_item += args.probe_every_s
                if now >= next_signal:
                    signal_probes.send()
                    next_signal += args.signal_probe_every_s
                jobs.check()
                time.sleep(max(0.0, min(next_item, next_signal) - time.monotonic()))
            measured_s = time.monotonic() - start
            actions = traffic.actions - actions0 + probes.k + signal_probes.k
            deadline = time.monotonic() + 30  # let the last probes arrive
            while ((probes.pending or signal_probes.pending)
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            stop_polling.set()
            for t in poll_threads:
                t.join(5)
            deadline = time.monotonic() + 10  # every poll's logged impression read
            while not signal_probes.all_logged() and time.monotonic() < deadline:
                time.sleep(0.1)
            reader.stop_event.set()
            reader.join(5)
            traffic.stop_event.set()
            traffic.join(10)
            metrics = http(port, "/metrics")[1]
            status = http(port, "/status")[1]
            lag = joiner_lag(cfg, start_ms)
        finally:
            traffic.stop_event.set()
            jobs.stop()

    fresh = np.array(probes.freshness)
    signal_fresh = signal_probes.freshness()
    wanted = ("freshet_serving_freshness_seconds_sum", "freshet_serving_freshness_seconds_count",
              "freshet_serving_delta_lag_seconds_sum", "freshet_serving_delta_lag_seconds_count",
              "freshet_serving_dense_gate_total", "freshet_serving_updates_total",
              "freshet_serving_signal_")
    server_metrics = [ln for ln in metrics.splitlines() if ln.startswith(wanted)]
    print(json.dumps({"server_metrics": server_metrics,
                      "gate_decisions": status["gate_decisions"][-3:],
                      "freshness_s_by_send_time": [round(f, 3) for _, f in sorted(probes.resolved)],
                      "signals_freshness_s_by_send_time": [
                          round(signal_fresh[p], 3) for p in sorted(
                              signal_fresh, key=lambda p: signal_probes.clicks[p][0])],
                      "signal_polls": len(signal_probes.requests),
                      "signal_polls_logged": len(signal_probes.logged),
                      **lag}))
    late = metric(metrics, LATE)
    print(json.dumps({
        "joiner_delivery": cfg.joiner.delivery, "params_delivery": cfg.sync.params_delivery,
        "joiner_checkpoint_interval_ms": cfg.joiner.checkpoint_interval_ms,
        "trainer_checkpoint_interval_ms": cfg.flink.checkpoint_interval_ms,
        "actions_per_s": round(actions / measured_s, 1),
        "impressions_per_s": args.impressions_per_s,
        **percentiles(fresh, "freshness"),
        "probes": probes.k,
        "unresolved": len(probes.pending),
        **percentiles(list(signal_fresh.values()), "signals_freshness"),
        "signals_probes": signal_probes.k,
        "signals_unresolved": signal_probes.k - len(signal_fresh),
        "signals_lateness_ms": cfg.serving.signals_lateness_ms,
        # Events the feed folded later than its lateness: during the measurement, and
        # since the server started (its first read of the topics included).
        "signals_late": None if late is None or late0 is None else int(late - late0),
        "signals_late_total": None if late is None else int(late),
        "sparse_sync_interval_s": args.sparse_sync_s,
        "seconds": round(measured_s, 1),
        "warmup_s": round(warmup_s, 1),
    }))


if __name__ == "__main__":
    main()
