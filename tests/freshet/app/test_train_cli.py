"""The registered model DCN-v2 and hashed tables, end to end through the CLI on the
mini-cluster: `freshet broker`, `freshet topics`, examples on the topic, `freshet replay`
with the settings given only as environment variables, as a user would.

The replay must train every example; its model directory must hold DCN-v2's dense
weights and hashed tables of the configured size, and the params topic must carry the
dense model with its kind in the header (what serving checks before it serves one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from experiments.streams import synthetic_examples
from freshet import kafka
from freshet.config import load_config
from freshet.produce.synthetic import SyntheticSpec
from freshet.topics import example_messages
from ps.collection import EmbeddingCollection
from ps.delta import decode
from ps.table.hashed import HashedTable
from udfs.models import architecture
from udfs.shard_state import unpack_meta

EXAMPLES = 2048
ROWS = 64


def _freshet(*args: str) -> list[str]:
    return [sys.executable, "-m", "freshet.app.cli", *args]


def test_dcn_on_hashed_tables_replays_through_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "FRESHET__WORK_DIR": str(tmp_path / "work"),
           "FRESHET__TOPICS__PREFIX": "dcn.", "FRESHET__FLINK__PARALLELISM": "1",
           "FRESHET__MODEL__KIND": "dcn", "FRESHET__MODEL__HIDDEN": "[16]",
           "FRESHET__MODEL__SLOTS": json.dumps([{"name": s, "dim": 4}
                                                for s in ("user_id", "item_id", "genre")]),
           "FRESHET__TRAIN__TABLE": json.dumps({"kind": "hashed", "rows": ROWS})}
    broker = subprocess.Popen(_freshet("broker"), env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert broker.stdout is not None
        assert broker.stdout.readline().startswith("broker ready")
        cfg = load_config(path=None, environ=env)
        assert subprocess.run(_freshet("topics"), env=env, timeout=120).returncode == 0
        exs = synthetic_examples(SyntheticSpec(impressions=EXAMPLES, seed=3,
                                               start_ms=1_700_000_000_000))
        prod = kafka.producer(cfg)
        for ts, value in example_messages(exs, 256):
            prod.produce(cfg.topics.name("examples"), value, timestamp=ts)
        assert prod.flush(30) == 0

        model_dir = tmp_path / "replayed"
        out = subprocess.run(_freshet("replay", "--snapshot", str(model_dir)), env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"trained {EXAMPLES:,} examples" in out.stdout

        dense, _ = unpack_meta((model_dir / "shard-0" / "dense.npz").read_bytes())
        assert {k.removeprefix("w/") for k in dense if k.startswith("w/")} == dcn_weights()
        tables = EmbeddingCollection.restore(model_dir / "shard-0" / "tables",
                                             cfg.model.slots)
        for slot in cfg.model.slots:
            table = tables.slots[slot.name].table
            assert isinstance(table, HashedTable) and 0 < len(table) <= ROWS

        kinds = set()
        for m in kafka.read(cfg, cfg.topics.name("params"), idle_s=2.0):
            meta, _ = decode(m.value())
            if meta.kind == "dense":
                kinds.add(meta.model_kind)
        assert kinds == {"dcn"}
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(60)



def dcn_weights() -> set[str]:
    return set(architecture("dcn")(n_slots=3, dim=4, hidden=[16]).weight_shapes())


def test_the_dense_check_tells_dcn_from_deepfm() -> None:
    """The replay test's weight-name check would catch a job that trained DeepFM."""
    deepfm = set(architecture("deepfm")(n_slots=3, dim=4, hidden=[16]).weight_shapes())
    assert dcn_weights() != deepfm and any(k.startswith("cross/") for k in dcn_weights())
