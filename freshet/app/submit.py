"""``freshet submit join|stats|train|replay --cluster HOST:PORT``: run a job on any Flink cluster.

The job scripts in ``jobs/`` are submitted unchanged with Flink's own client
(``flink run -py``, from the PyFlink install), exactly as the mini-cluster runs them;
the config travels as a JSON file the client reads. What the cluster needs:

- the project and its pinned dependencies installed at the same Python path on every
  TaskManager (``--pyexec``; ``docker/Dockerfile`` builds such an image);
- the Kafka connector jars in its ``lib/`` (``scripts/install.sh`` with CONNECTOR_LIB);
- a checkpoint dir (``flink.checkpoint_dir``) and, for replay, a snapshot dir that every
  TaskManager can reach: a shared volume or an object store, not a local disk.

``join``, ``stats`` and ``train`` run forever, so they are submitted detached and this returns
once the cluster has the job. ``replay`` is bounded and writes a manifest when it ends,
so it is submitted attached and returns when the job has finished.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from freshet.config import Config
from freshet.errors import FreshetError
from jobs.manifest import ReplayModel

JOBS = ("join", "stats", "train", "replay")
_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")


class SubmitError(FreshetError, RuntimeError):
    """``flink run`` failed: the message carries the tail of its output."""


@dataclass(frozen=True)
class Submitted:
    job_id: str
    output: str  # what `flink run` printed


def project_root() -> Path:
    """The checkout (or site-packages) holding ``jobs/``: ``flink run -py`` gets its scripts
    from there and the job's PYTHONPATH starts there. This file is ``freshet/app/submit.py``.

    >>> (project_root() / "jobs" / "train.py").is_file()
    True
    """
    return Path(__file__).resolve().parents[2]


def flink_command(
    cfg_file: Path,
    job: str,
    cluster: str,
    job_args: list[str],
    pyexec: str = sys.executable,
    detached: bool = True,
) -> list[str]:
    """The ``flink run`` command line for ``jobs/<job>.py`` (replay runs jobs/train.py).

    Examples
    --------
    >>> cmd = flink_command(Path("/c.json"), "join", "h:8081", ["--bounded"], "/py")
    >>> cmd[1:5], Path(cmd[-4]).name, cmd[-3:]
    (['run', '-d', '-m', 'h:8081'], 'join.py', ['--config-json', '/c.json', '--bounded'])
    """
    from freshet.cluster import flink_home

    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; one of {JOBS}")
    script = project_root() / "jobs" / f"{'train' if job == 'replay' else job}.py"
    return [str(flink_home() / "bin" / "flink"), "run", *(["-d"] if detached else []),
            "-m", cluster, "-pyexec", pyexec, "-pyclientexec", sys.executable,
            "-py", str(script), "--config-json", str(cfg_file), *job_args]


def run_flink(cfg: Config, cmd: list[str], env: dict[str, str] | None = None) -> Submitted:
    """Run ``flink run`` and return the JobID it reports."""
    log_dir = cfg.path(cfg.flink.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    root = str(project_root())
    env = {**os.environ, **(env or {})}
    # The client runs the job script, which imports freshet: the checkout goes on its path.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("FLINK_LOG_DIR", str(log_dir))  # else the client logs into site-packages
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    output = run.stdout + run.stderr
    found = _JOB_ID.search(output)
    if run.returncode != 0 or found is None:
        raise SubmitError(f"`flink run` exited with {run.returncode}:\n{output[-4000:]}")
    return Submitted(found.group(1), output)


def submit(
    cfg: Config,
    job: str,
    cluster: str,
    job_args: list[str] | None = None,
    pyexec: str = sys.executable,
    env: dict[str, str] | None = None,
) -> Submitted:
    """Submit ``job`` to the cluster's REST address ``cluster`` (``HOST:PORT``).

    ``job_args`` go to the job script (``jobs/train.py --help``, ``jobs/join.py --help``).
    For ``replay`` use :func:`submit_replay`, which works out the offsets first.
    """
    cfg_file = _config_file(cfg)
    detached = job != "replay"
    cmd = flink_command(cfg_file, job, cluster, list(job_args or []), pyexec, detached)
    return run_flink(cfg, cmd, env)


def submit_replay(
    cfg: Config, cluster: str, from_ms: int | None, to_ms: int | None, snapshot_dir: str,
    start_snapshot: str | None = None, pyexec: str = sys.executable,
) -> tuple[Submitted, ReplayModel]:
    """``freshet replay`` on a cluster: the same offsets, job and manifest as locally.

    ``snapshot_dir`` must be reachable by every TaskManager (they write the shards).
    """
    import time

    from jobs.replay import replay_config, time_range

    cfg = replay_config(cfg)
    r = time_range(cfg, from_ms, to_ms)
    snap = Path(snapshot_dir).resolve()
    snap.mkdir(parents=True, exist_ok=True)
    args = ["--start", _offsets(r.start), "--stop", _offsets(r.stop), "--write-snapshot",
            str(snap)]
    if start_snapshot:
        args += ["--from-snapshot", start_snapshot]
    t = time.monotonic()
    done = submit(cfg, "replay", cluster, args, pyexec)
    model = ReplayModel(cfg.model.model_id, cfg.train.parallelism, from_ms, to_ms, r.start,
                        r.stop, r.messages(), time.monotonic() - t, cluster, done.job_id)
    model.write(snap)
    return done, model


def _offsets(spec: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(spec.items()))


def _config_file(cfg: Config) -> Path:
    d = cfg.path("submit")
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="config-", dir=d,
                                     delete=False) as f:
        f.write(cfg.to_json())
    return Path(f.name)
