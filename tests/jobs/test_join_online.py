"""The online joiner (unbounded, as ``freshet join`` runs it) sends its last batch of
examples without waiting for more traffic.

A short burst of impressions and clicks, then silence: every positive must reach the
examples topic. (With batching windows on an ingestion-time watermark, which only
records move, a burst that fits in one or two windows was never sent.)
"""

from __future__ import annotations

import json
import time

from freshet import kafka
from freshet.config import Config
from freshet.topics import Action, Impression
from jobs.join import run

N = 20


def test_last_batch_goes_out_without_more_traffic(cfg: Config) -> None:
    p = kafka.producer(cfg)
    now = int(time.time() * 1000)
    for i in range(N):
        imp = Impression(f"on-{i}", i, 1, now + i, {"item_id": [i]})
        act = Action(f"on-{i}", i, 1, now + i + 500, "click")
        for topic, ev in (("features", imp), ("actions", act)):
            p.produce(cfg.topics.name(topic), ev.to_json(), key=ev.key(), timestamp=ev.ts)
    assert p.flush(30) == 0

    result = run(cfg, wait=False)  # online: no bounds, runs until cancelled
    try:
        positives: set[str] = set()
        deadline = time.monotonic() + 120
        while len(positives) < N and time.monotonic() < deadline:
            for m in kafka.read(cfg, cfg.topics.name("examples"), idle_s=1.0):
                positives |= {e["request_id"] for e in json.loads(m.value())["examples"]
                              if e["label"] == 1}
        assert positives == {f"on-{i}" for i in range(N)}
    finally:
        result.get_job_client().cancel().result()
