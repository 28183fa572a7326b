"""An in-memory ranking server for tests: an LR model whose score is the sum of one
slot's bucket weights, with the impression log kept in a list (no Kafka)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from freshet.config import Config, load_config
from jobs.serve import Server, create_app
from ps.config import SlotConfig
from ps.serving.state import DenseModel
from ps.serving.synthetic import lr_weights, sparse_rows


class Logged:
    """Stands in for the impression logger: keeps what would go to ``features``."""

    def __init__(self) -> None:
        self.requests: list = []

    def log(self, shown: object) -> None:
        self.requests.append(shown)


def lr_server(work_dir: Path, slot: SlotConfig, ids: np.ndarray, kafka: Config | None = None,
              **sections: Any) -> tuple[Server, TestClient]:
    """Slots user_id, item_id and ``slot`` (dim 2); ID ``i`` of ``slot`` adds ``i`` to
    the logit, nothing else does. ``sections`` replace config fields (e.g. ``stats``).
    ``kafka``: a config whose broker and topics the server logs impressions to (its
    threads not started); None: a list keeps them and no broker is contacted."""
    base = load_config(path=None, environ={}) if kafka is None else kafka
    slots = [SlotConfig("user_id", dim=2), SlotConfig("item_id", dim=2), slot]
    cfg = dataclasses.replace(
        base, work_dir=str(work_dir),
        model=dataclasses.replace(base.model, kind="lr", slots=slots), **sections)
    if kafka is None:
        cfg = dataclasses.replace(cfg, kafka=dataclasses.replace(
            base.kafka, bootstrap="127.0.0.1:1"))  # never contacted
    server = Server(cfg, log_impressions=kafka is not None)
    vals = np.zeros((len(ids), 2), np.float32)
    vals[:, 0] = ids
    server.state.apply_sparse(sparse_rows({slot.name: (ids, vals)}), 0, 0)
    server.state.set_dense(DenseModel(lr_weights(0.0), 0, 1, 0, 0, "lr"))
    if kafka is None:
        server.impressions = Logged()  # type: ignore[assignment]
    return server, TestClient(create_app(server, manage=False))
