"""Ranking latency while parameter deltas apply: ``python -m benchmarks.serve``.

Starts an embedded broker and a real serving process (``python -m jobs.serve``,
one uvicorn worker), fills its tables (users, items, genres; DeepFM dense weights),
then for ``--seconds``:

- this process publishes sparse deltas (``--delta-rows`` random rows each) at
  ``--deltas-per-s`` and a dense update every 5 s;
- a load-generator process sends ``POST /rank`` with ``--candidates`` candidates at
  a fixed rate (open loop, ``--rate`` requests/s over keep-alive connections on
  loopback); latency is measured from each request's *scheduled* send time, so a
  stalled server cannot hide queueing delay.

``--signals`` adds the fresh signals of docs/signals.md to the model (the default
``stats.signals`` and the user's ``hist_pos`` as slots): the server then folds its own
impression log into them and reads them for every candidate of every request, which
is the cost this measures (run it with and without, one after the other).

Prints a JSON line last: ``candidates``, ``requests_per_s``, ``rank_p50_ms``,
``rank_p99_ms``, ``delta_updates_per_s`` (updates the server applied during the
load, from its ``/status``), and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.proc import cpu_seconds
from freshet.broker import EmbeddedBroker, free_port
from freshet.config import Config, load_config
from freshet.kafka import create_topics, producer
from ps.serving.synthetic import (
    deepfm_weights,
    dense_messages,
    publish,
    sparse_messages,
    sparse_rows,
)
from server.client import request

USERS, ITEMS, GENRES = 20_000, 100_000, 50


SIGNAL_SLOTS = ("item_n", "item_rate", "user_n", "user_rate", "cat_rate", "hist_pos")


def config(bootstrap: str, work: Path, port: int, signals: bool = False) -> Config:
    base = load_config(path=None, environ={})
    if signals:  # the signals become model slots, so serving reads them
        base = dataclasses.replace(
            base, model=dataclasses.replace(base.model, slots=[
                *base.model.slots, *(dataclasses.replace(base.model.slots[0], name=n)
                                     for n in SIGNAL_SLOTS)]),
            stats=dataclasses.replace(base.stats, signals=list(SIGNAL_SLOTS)))
    return dataclasses.replace(
        base, work_dir=str(work),
        kafka=dataclasses.replace(base.kafka, bootstrap=bootstrap),
        topics=dataclasses.replace(base.topics, prefix=f"b{uuid.uuid4().hex[:8]}."),
        serving=dataclasses.replace(base.serving, port=port),
    )


def env_for(cfg: Config) -> dict[str, str]:
    return {**os.environ, "FRESHET__KAFKA__BOOTSTRAP": cfg.kafka.bootstrap,
            "FRESHET__TOPICS__PREFIX": cfg.topics.prefix, "FRESHET__WORK_DIR": cfg.work_dir,
            "FRESHET__SERVING__PORT": str(cfg.serving.port),
            "FRESHET__MODEL__SLOTS": json.dumps([{"name": s.name, "dim": s.dim}
                                                 for s in cfg.model.slots]),
            "FRESHET__STATS__SIGNALS": json.dumps(cfg.stats.signals)}


def random_rows(rng: np.random.Generator, cfg: Config, n: int) -> dict:
    dim = cfg.model.slots[0].dim
    sizes = {"user_id": USERS, "item_id": ITEMS, "genre": GENRES}
    out = {}
    for slot, size in sizes.items():
        ids = rng.choice(size, min(n, size), replace=False)
        out[slot] = (ids, rng.normal(0, 0.1, (len(ids), dim)).astype(np.float32))
    return out


# -- load generator (its own process) --------------------------------------------------
def request_bodies(n_bodies: int, candidates: int, shown: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(n_bodies):
        u = int(rng.integers(USERS))
        items = rng.choice(ITEMS, candidates, replace=False)
        body = {"user_id": u, "user_slots": {"user_id": [u]}, "shown": shown,
                "candidates": [{"item_id": int(i), "slots": {"item_id": [int(i)],
                                                             "genre": [int(i) % GENRES]}}
                               for i in items]}
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


async def _load(port: int, rate: float, seconds: float, bodies: list[bytes],
                connections: int) -> dict:
    requests = [
        (f"POST /rank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies
    ]
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    latencies: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            i, scheduled = await queue.get()
            if i < 0:
                break
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - scheduled)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n")[0].decode())
        writer.close()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, scheduled))
    for _ in tasks:
        queue.put_nowait((-1, 0.0))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def load_process(port: int, rate: float, seconds: float, candidates: int, shown: int,
                 connections: int, out: mp.Queue) -> None:
    bodies = request_bodies(256, candidates, shown, seed=1)
    out.put(asyncio.run(_load(port, rate, seconds, bodies, connections)))


# -- the run -----------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--shown", type=int, default=10, help="items logged as impressions")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--deltas-per-s", type=float, default=20.0)
    ap.add_argument("--delta-rows", type=int, default=1000)
    ap.add_argument("--signals", action="store_true", help="the model reads fresh signals")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "t.log") as b:
        port = free_port()
        cfg = config(b.bootstrap, Path(tmp), port, args.signals)
        create_topics(cfg)
        topic, model = cfg.topics.name("params"), cfg.model.model_id
        dim, n_slots = cfg.model.slots[0].dim, len(cfg.model.slots)
        prod = producer(cfg)
        # Fill the tables: every user, item and genre gets a row.
        seq = 0
        for lo in range(0, ITEMS, 20_000):
            ids = np.arange(lo, min(lo + 20_000, ITEMS))
            vals = {"item_id": (ids, rng.normal(0, 0.1, (len(ids), dim)).astype(np.float32))}
            if lo == 0:
                vals["user_id"] = (np.arange(USERS),
                                   rng.normal(0, 0.1, (USERS, dim)).astype(np.float32))
                vals["genre"] = (np.arange(GENRES),
                                 rng.normal(0, 0.1, (GENRES, dim)).astype(np.float32))
            seq += 1
            publish(prod, topic, sparse_messages(sparse_rows(vals), model, seq))
        publish(prod, topic, dense_messages(deepfm_weights(dim, n_slots), model, 1,
                                                  model_kind="deepfm"))

        log = open(Path(tmp) / "serve.log", "w")  # noqa: SIM115 - closed below
        server = subprocess.Popen([sys.executable, "-m", "jobs.serve"], env=env_for(cfg),
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    code, health = request(port, "/healthz")
                    if code == 200 and health["ready"]:
                        break
                except OSError:  # not listening yet
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"server not ready; see {log.name}")
                time.sleep(0.2)

            stop = threading.Event()

            def deltas() -> None:
                nonlocal seq
                dense_seq, period, t_next, last_dense = 1, 1.0 / args.deltas_per_s, \
                    time.monotonic(), time.monotonic()
                while not stop.is_set():
                    seq += 1
                    publish(prod, topic, sparse_messages(
                        sparse_rows(random_rows(rng, cfg, args.delta_rows)), model, seq),
                        flush=False)
                    prod.poll(0)
                    if time.monotonic() - last_dense > 5.0:
                        dense_seq += 1
                        publish(prod, topic, dense_messages(
                            deepfm_weights(dim, n_slots, seed=dense_seq), model, dense_seq,
                            model_kind="deepfm"),
                            flush=False)
                        last_dense = time.monotonic()
                    t_next += period
                    stop.wait(max(0.0, t_next - time.monotonic()))
                prod.flush(10)

            _, before = request(port, "/status")
            cpu0 = cpu_seconds(server.pid)
            sender = threading.Thread(target=deltas, daemon=True)
            sender.start()
            time.sleep(1.0)  # deltas flowing before the load starts
            ctx = mp.get_context("spawn")
            out: mp.Queue = ctx.Queue()
            t0 = time.monotonic()
            gen = ctx.Process(target=load_process, args=(port, args.rate, args.seconds,
                                                         args.candidates, args.shown,
                                                         args.connections, out))
            gen.start()
            result = out.get(timeout=args.seconds + 120)
            gen.join(30)
            elapsed_updates = time.monotonic() - t0
            _, after = request(port, "/status")
            server_cpu = cpu_seconds(server.pid) - cpu0
            stop.set()
            sender.join(30)
            _, metrics = request(port, "/metrics")
        finally:
            server.terminate()
            server.wait(30)
            log.close()

    lat = np.array(result["latencies"]) * 1000
    applied = after["table_version"] - before["table_version"]
    impressions = [ln for ln in metrics.splitlines()
                   if ln.startswith("freshet_serving_impressions_total")]
    per_s = int(args.rate)
    print(json.dumps({"p99_ms_by_second": [round(float(np.percentile(lat[i:i + per_s], 99)), 1)
                                           for i in range(0, len(lat), per_s)],
                      "server_side_request_seconds": [
                          ln for ln in metrics.splitlines()
                          if ln.startswith("freshet_serving_request_seconds_bucket")
                          and 'outcome="ok"' in ln],
                      "gc_pauses": [ln for ln in metrics.splitlines()
                                    if ln.startswith("freshet_serving_gc_pause_seconds_bucket")
                                    ],
                      "impressions": impressions, "gate": [
        ln for ln in metrics.splitlines() if ln.startswith("freshet_serving_dense_gate_total")]}))
    print(json.dumps({
        "candidates": args.candidates,
        "signals": list(SIGNAL_SLOTS) if args.signals else [],
        "requests_per_s": round(len(lat) / result["elapsed"], 1),
        "target_rate": args.rate,
        "rank_p50_ms": round(float(np.percentile(lat, 50)), 3),
        "rank_p99_ms": round(float(np.percentile(lat, 99)), 3),
        "rank_max_ms": round(float(lat.max()), 3),
        "delta_updates_per_s": round(applied / elapsed_updates, 1),
        "delta_rows": args.delta_rows,
        "dense_models_swapped": after["model_version"] - before["model_version"],
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(len(lat), 1), 3),
        "errors": len(result["errors"]),
        "requests": len(lat),
        "seconds": args.seconds,
    }))


if __name__ == "__main__":
    main()
