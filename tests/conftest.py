"""Shared fixtures: an embedded broker per test session, and an isolated config per test.

Each test gets its own topic prefix and work directory, so tests never see each
other's events or checkpoints.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from freshet.broker import EmbeddedBroker
from freshet.config import Config, load_config


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
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
