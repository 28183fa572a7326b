"""Shared fixtures: an embedded broker per test session, and an isolated config per test.

Each test gets its own topic prefix and work directory, so tests never see each
other's events or checkpoints.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from freshet.broker import EmbeddedBroker
from freshet.config import Config, load_config


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "kafka.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


def make_config(bootstrap: str, work_dir: Path, **sections: object) -> Config:
    base = load_config(path=None, environ={})
    cfg = dataclasses.replace(
        base,
        work_dir=str(work_dir),
        kafka=dataclasses.replace(base.kafka, bootstrap=bootstrap),
        topics=dataclasses.replace(base.topics, prefix=f"t{uuid.uuid4().hex[:8]}."),
    )
    return dataclasses.replace(cfg, **sections)


@pytest.fixture
def cfg(broker: EmbeddedBroker, tmp_path: Path) -> Config:
    from freshet.kafka import create_topics

    c = make_config(broker.bootstrap, tmp_path)
    create_topics(c)
    return c


class ExampleFeed:
    """Synthetic example batches for the trainer's fault tests, and their producer.

    ``messages`` batches of ``per_message`` examples (IDs prefixed ``prefix``), a
    producer that writes them to the examples topic (message ``m`` to partition
    ``m % 4``, optionally paced), and the ledger a correct run must end with.
    """

    def __init__(self, cfg: Config, prefix: str, seed: int, messages: int = 80,
                 per_message: int = 200) -> None:
        import numpy as np

        from freshet.topics import Example

        rng = np.random.default_rng(seed)
        self.cfg = cfg
        self.batches = [
            [Example(f"{prefix}{m}-{i}", int(rng.integers(50)), int(rng.integers(30)),
                     m * 1000 + i, int(rng.random() < 0.4),
                     slots={"user_id": [int(rng.integers(30))],
                            "item_id": [int(rng.integers(50))]})
             for i in range(per_message)]
            for m in range(messages)
        ]
        self.total = messages * per_message

    def produce(self, first: int, last: int, pause_s: float = 0.0) -> None:
        import time

        from freshet.kafka import producer
        from freshet.topics import encode_examples

        p = producer(self.cfg)
        for m in range(first, last):
            p.produce(self.cfg.topics.name("examples"), encode_examples(self.batches[m]),
                      partition=m % 4)
            p.flush(5)
            time.sleep(pause_s)

    def expected_fingerprint(self, messages: int | None = None) -> int:
        from udfs.trainer import Ledger

        ledger = Ledger()
        for b in self.batches[:messages]:
            ledger.add([e.request_id for e in b])
        return ledger.fingerprint


def small_trainer(cfg: Config, **flink: object) -> Config:
    """``cfg`` with a small, fast DeepFM trainer that syncs and checkpoints often."""
    from freshet.config import ModelConfig, SyncConfig, TrainConfig
    from ps.config import SlotConfig

    return dataclasses.replace(
        cfg,
        model=ModelConfig(kind="deepfm", hidden=[16],
                          slots=[SlotConfig(s, dim=8) for s in ("user_id", "item_id")]),
        train=TrainConfig(micro_batch=64, eval_window_examples=1000, compact_every=16),
        sync=SyncConfig(sparse_sync_interval_s=0.5),
        flink=dataclasses.replace(cfg.flink, checkpoint_interval_ms=1000, **flink),
    )


@pytest.fixture
def trainer_faults() -> SimpleNamespace:
    """The trainer fault tests' helpers: ``small_trainer(cfg, **flink)`` and
    ``ExampleFeed(cfg, prefix, seed)``."""
    return SimpleNamespace(small_trainer=small_trainer, ExampleFeed=ExampleFeed)
