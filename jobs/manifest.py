"""A replay's model directory: the shards' state and ``manifest.json``, which says what
was trained and where online training continues (written by :mod:`jobs.replay` and by
``freshet submit replay`` for a cluster, read by :mod:`jobs.train`).

Examples
--------
>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> ReplayModel("deepfm", 2, None, 1_000, {0: 5, 1: 0}, {0: 9, 1: 4}, 8, 1.5).write(d)
>>> m = ReplayModel.read(d)
>>> m.online_start, m.messages, m.cluster
({0: 9, 1: 4}, 8, None)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ReplayModel:
    """What ``manifest.json`` records about one replay."""

    model_id: str
    shards: int  # train.parallelism of the replay (one state directory each)
    from_ms: int | None  # the time range asked for (None: from the first message)
    to_ms: int | None
    start: dict[int, int]  # examples partition -> first offset trained
    stop: dict[int, int]  # examples partition -> offset after the last one trained
    messages: int
    seconds: float
    cluster: str | None = None  # the Flink cluster it ran on (None: the mini-cluster)
    job_id: str | None = None

    @property
    def online_start(self) -> dict[int, int]:
        """Where online training continues after this replay: its stop offsets."""
        return dict(self.stop)

    def write(self, directory: str | Path) -> None:
        fields = dataclasses.asdict(self)
        if self.cluster is None:
            del fields["cluster"], fields["job_id"]
        (Path(directory) / MANIFEST).write_text(json.dumps(fields, indent=1))

    @classmethod
    def read(cls, directory: str | Path) -> ReplayModel:
        fields = json.loads((Path(directory) / MANIFEST).read_text())
        for offsets in ("start", "stop"):
            fields[offsets] = {int(p): int(o) for p, o in fields[offsets].items()}
        return cls(**fields)
