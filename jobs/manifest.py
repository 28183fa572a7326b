"""The replay manifest: ``manifest.json`` beside a replay's model, with the offsets
where online training continues (written by :mod:`jobs.replay` and by ``freshet submit
replay`` for a cluster, read by :mod:`jobs.train`)."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"


def online_start(snapshot_dir: str | Path) -> dict[int, int]:
    """Where online training continues after a replay: its stop offsets."""
    manifest = json.loads((Path(snapshot_dir) / MANIFEST).read_text())
    return {int(p): int(o) for p, o in manifest["stop"].items()}
