"""``make demo``: the whole loop on the embedded defaults.

Stages that later issues add (joiner, trainer, serving) plug in here; today it runs
broker -> topics -> MovieLens replay -> smoke job, and stops everything it started.
"""

from __future__ import annotations

import dataclasses
import time

from freshet.broker import EmbeddedBroker
from freshet.config import Config


def run_demo(cfg: Config) -> int:
    from freshet import kafka
    from freshet.produce import movielens
    from freshet.produce.sender import send
    from jobs.smoke import build

    t0 = time.monotonic()
    log = cfg.path("logs/tansu.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(log_path=log) as broker:
        cfg = dataclasses.replace(
            cfg, kafka=dataclasses.replace(cfg.kafka, bootstrap=broker.bootstrap)
        )
        print(f"[demo] embedded broker at {broker.bootstrap}", flush=True)
        kafka.create_topics(cfg)
        print("[demo] topics created; replaying MovieLens-100K", flush=True)
        stats = send(cfg, movielens.events())
        stop = kafka.end_offsets(cfg, cfg.topics.name("features"))
        print("[demo] running the smoke job on the Flink mini-cluster", flush=True)
        build(cfg, stop=stop).execute("freshet-smoke")
        checked = sum(1 for _ in kafka.read(cfg, cfg.topics.name("metrics")))
        dead = sum(1 for _ in kafka.read(cfg, cfg.topics.name("dead_letters")))
        print(
            f"[demo] impressions={stats.impressions} actions={stats.actions} "
            f"checked_by_flink={checked} dead_letters={dead} "
            f"total_s={time.monotonic() - t0:.1f}",
            flush=True,
        )
        return 0 if checked == stats.impressions else 1
