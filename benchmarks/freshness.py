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

Prints a JSON line last: ``actions_per_s`` (clicks produced per second during the
measurement), ``freshness_p50_s``, ``freshness_p99_s``, ``sparse_sync_interval_s``,
and how many probes never showed up (``unresolved``).
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
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from freshet.broker import EmbeddedBroker, free_port
from freshet.config import Config, load_config
from freshet.kafka import create_topics, producer
from freshet.topics import Action, Impression
from server.client import request as http

USERS, ITEMS, GENRES = 50_000, 100_000, 50
PROBE_ITEM0 = 1 << 40  # probe items: never in the background traffic
CONTROL_ITEM0 = 1 << 41  # control items: never trained at all
SCORE_TOLERANCE = 1e-5


def config(bootstrap: str, work: Path, port: int, sparse_sync_s: float) -> Config:
    base = load_config(path=None)  # FRESHET__* overrides apply
    return dataclasses.replace(
        base, work_dir=str(work),
        kafka=dataclasses.replace(base.kafka, bootstrap=bootstrap),
        topics=dataclasses.replace(base.topics, prefix=f"f{uuid.uuid4().hex[:8]}."),
        flink=dataclasses.replace(base.flink, parallelism=1),
        sync=dataclasses.replace(base.sync, sparse_sync_interval_s=sparse_sync_s,
                                 dense_sync_interval_s=5.0),
        serving=dataclasses.replace(base.serving, port=port),
    )


class Jobs:
    """The joiner, trainer and server processes (each its own process group)."""

    def __init__(self, cfg: Config, work: Path) -> None:
        self.cfg, self.work = cfg, work
        conf = work / "config.json"
        conf.write_text(cfg.to_json())
        env = {**os.environ, "FRESHET__KAFKA__BOOTSTRAP": cfg.kafka.bootstrap,
               "FRESHET__TOPICS__PREFIX": cfg.topics.prefix, "FRESHET__WORK_DIR": cfg.work_dir,
               "FRESHET__SERVING__PORT": str(cfg.serving.port)}
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
        body = {"user_id": 0, "user_slots": {"user_id": []}, "shown": 0, "demote": False,
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
    ap.add_argument("--sparse-sync-s", type=float, default=1.0)
    ap.add_argument("--warmup-timeout-s", type=float, default=300.0)
    ap.add_argument("--warmup-rate", type=float, default=0.1,
                    help="fraction of the rate sent until the pipeline serves (no backlog)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="freshet-bench-fresh-"))
    with EmbeddedBroker(log_path=work / "kafka.log") as b:
        port = free_port()
        cfg = config(b.bootstrap, work, port, args.sparse_sync_s)
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
            stop_polling = threading.Event()

            def poller() -> None:
                while not stop_polling.is_set():
                    probes.poll()
                    stop_polling.wait(0.025)

            poll_thread = threading.Thread(target=poller, daemon=True)
            poll_thread.start()
            traffic.set_rate(args.impressions_per_s)
            start, actions0 = time.monotonic(), traffic.actions
            start_ms = int(time.time() * 1000)
            while time.monotonic() - start < args.seconds:
                probes.send()
                jobs.check()
                time.sleep(args.probe_every_s)
            measured_s = time.monotonic() - start
            actions = traffic.actions - actions0 + probes.k
            deadline = time.monotonic() + 30  # let the last probes arrive
            while probes.pending and time.monotonic() < deadline:
                time.sleep(0.1)
            stop_polling.set()
            poll_thread.join(5)
            traffic.stop_event.set()
            traffic.join(10)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            status = http(port, "/status")[1]
            lag = joiner_lag(cfg, start_ms)
        finally:
            traffic.stop_event.set()
            jobs.stop()

    fresh = np.array(probes.freshness)
    wanted = ("freshet_serving_freshness_seconds_sum", "freshet_serving_freshness_seconds_count",
              "freshet_serving_delta_lag_seconds_sum", "freshet_serving_delta_lag_seconds_count",
              "freshet_serving_dense_gate_total", "freshet_serving_updates_total")
    print(json.dumps({"server_metrics": [ln for ln in metrics.splitlines()
                                         if ln.startswith(wanted)],
                      "gate_decisions": status["gate_decisions"][-3:],
                      "freshness_s_by_send_time": [round(f, 3) for _, f in sorted(probes.resolved)],
                      **lag}))
    print(json.dumps({
        "joiner_delivery": cfg.joiner.delivery, "params_delivery": cfg.sync.params_delivery,
        "joiner_checkpoint_interval_ms": cfg.joiner.checkpoint_interval_ms,
        "trainer_checkpoint_interval_ms": cfg.flink.checkpoint_interval_ms,
        "actions_per_s": round(actions / measured_s, 1),
        "impressions_per_s": args.impressions_per_s,
        "freshness_p50_s": round(float(np.percentile(fresh, 50)), 3) if len(fresh) else None,
        "freshness_p99_s": round(float(np.percentile(fresh, 99)), 3) if len(fresh) else None,
        "freshness_max_s": round(float(fresh.max()), 3) if len(fresh) else None,
        "probes": probes.k,
        "unresolved": len(probes.pending),
        "sparse_sync_interval_s": args.sparse_sync_s,
        "seconds": round(measured_s, 1),
        "warmup_s": round(warmup_s, 1),
    }))


if __name__ == "__main__":
    main()
