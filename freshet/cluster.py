"""A standalone Flink cluster started from the pip install (for tests and one-box use).

``apache-flink`` ships Flink's ``bin/`` scripts and ``lib/``; with a conf dir of our own
(free ports, RocksDB, the venv's Python, a checkpoint dir) they run a real session
cluster on loopback: one JobManager and any number of TaskManagers, each a JVM this
module starts as a child process, so a test can ``kill -9`` exactly one of them.

Examples
--------
>>> flat({"a": {"b": 1, "c": {"d": "x"}}, "e": 2})
{'a.b': 1, 'a.c.d': 'x', 'e': 2}
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from freshet.broker import free_port
from freshet.errors import FreshetError


class ClusterError(FreshetError, RuntimeError):
    """The cluster did not start, or did not reach the wanted state in time."""


def flink_home() -> Path:
    """The Flink distribution inside the PyFlink wheel (``bin/``, ``lib/``, ``conf/``)."""
    import pyflink

    return Path(pyflink.__file__).parent


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML config -> Flink's dotted keys."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


class StandaloneCluster:
    """A session cluster on 127.0.0.1 with its own conf, log and checkpoint dirs.

    ``settings`` override Flink keys (dotted names). Use as a context manager; on exit
    every process this object started is killed (by PID, never by name).
    """

    def __init__(self, work_dir: Path, slots: int = 2,
                 settings: dict[str, str] | None = None) -> None:
        self.work = Path(work_dir).resolve()
        self.conf_dir = self.work / "conf"
        self.log_dir = self.work / "log"
        self.checkpoints = self.work / "checkpoints"
        self.rest_port = 0  # chosen by write_conf, anew on each start attempt
        self.slots = slots
        self.settings = settings or {}
        self.jobmanager: subprocess.Popen[bytes] | None = None
        self.taskmanagers: list[subprocess.Popen[bytes]] = []

    @property
    def rest(self) -> str:
        """``HOST:PORT`` of the REST API (what ``freshet submit --cluster`` takes)."""
        return f"127.0.0.1:{self.rest_port}"

    # -- configuration -----------------------------------------------------------------
    def write_conf(self) -> Path:
        home = flink_home()
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        for f in (home / "conf").iterdir():  # log4j and logback files as shipped
            if f.name != "config.yaml":
                shutil.copy(f, self.conf_dir / f.name)
        conf = flat(yaml.safe_load((home / "conf" / "config.yaml").read_text()))
        self.rest_port = free_port()
        conf.update({
            "jobmanager.bind-host": "127.0.0.1",
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": free_port(),
            "blob.server.port": str(free_port()),
            "jobmanager.memory.process.size": "1024m",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            "taskmanager.numberOfTaskSlots": self.slots,
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": self.rest_port,
            "state.backend.type": "rocksdb",
            "execution.checkpointing.dir": self.checkpoints.as_uri(),
            "python.executable": sys.executable,
            "python.client.executable": sys.executable,
            # A lost TaskManager is noticed by its heartbeat timing out; the default 50 s
            # makes every fault test wait that long before Flink restarts the job.
            "heartbeat.timeout": "8000",
            "heartbeat.interval": "2000",
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "20",
            "restart-strategy.fixed-delay.delay": "2 s",
        })
        conf.update(self.settings)
        text = "".join(f"{k}: {json.dumps(v) if isinstance(v, str) else v}\n"
                       for k, v in conf.items())
        (self.conf_dir / "config.yaml").write_text(text)
        return self.conf_dir

    def env(self) -> dict[str, str]:
        """Environment for Flink's scripts (and ``flink run``) against this cluster."""
        return {**os.environ, "FLINK_CONF_DIR": str(self.conf_dir),
                "FLINK_LOG_DIR": str(self.log_dir), "FLINK_PID_DIR": str(self.work)}

    # -- processes ---------------------------------------------------------------------
    def _start(self, script: str, name: str) -> subprocess.Popen[bytes]:
        cmd = ["bash", str(flink_home() / "bin" / script), "start-foreground"]
        with open(self.log_dir / f"{name}.out", "ab") as out:
            # Own session: kill() takes the JVM and the Python workers it forked.
            return subprocess.Popen(cmd, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def start(self, taskmanagers: int = 1, timeout_s: float = 120.0,
              attempts: int = 3) -> StandaloneCluster:
        """Start the JobManager and ``taskmanagers`` TaskManagers; wait until registered.

        A free port is only free when it is picked: any socket opened before the JVM
        binds (a Kafka client's outgoing connection takes one from the same range) can
        take it, and the JobManager then exits with a ``BindException``. Such a start
        is retried with new ports, up to ``attempts`` times; any other exit is raised
        at once with the JobManager's own reason.
        """
        for attempt in range(1, attempts + 1):
            self.write_conf()
            out = self.log_dir / "jobmanager.out"
            if out.exists():  # attempt N-1's output kept as .N-1; this one's reason read alone
                out.rename(self.log_dir / f"jobmanager.out.{attempt - 1}")
            self.jobmanager = self._start("jobmanager.sh", "jobmanager")
            for _ in range(taskmanagers):
                self.add_taskmanager()
            try:
                self.wait_for_taskmanagers(taskmanagers, timeout_s)
                return self
            except ClusterError as e:
                self.stop()
                if "BindException" not in str(e) or attempt == attempts:
                    raise
                print(f"cluster: a port was taken before the JobManager bound it; "
                      f"retrying with new ports ({attempt}/{attempts})", file=sys.stderr)
        raise AssertionError("unreachable")

    def add_taskmanager(self) -> subprocess.Popen[bytes]:
        tm = self._start("taskmanager.sh", f"taskmanager-{len(self.taskmanagers)}")
        self.taskmanagers.append(tm)
        return tm

    def kill_taskmanager(self, index: int = 0) -> int:
        """SIGKILL one TaskManager (its whole process group); returns the JVM's PID."""
        tm = self.taskmanagers[index]
        _kill_group(tm)
        return tm.pid

    def stop(self) -> None:
        for p in [*self.taskmanagers, self.jobmanager]:
            if p is not None:
                _kill_group(p)
        self.taskmanagers, self.jobmanager = [], None

    def __enter__(self) -> StandaloneCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- REST --------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.rest}{path}", timeout=5) as r:
            return json.loads(r.read())

    def wait_for_taskmanagers(self, n: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.get("/overview")["taskmanagers"] >= n:
                    return
            except OSError:
                pass  # REST not up yet
            if self.jobmanager is None or self.jobmanager.poll() is not None:
                raise ClusterError(f"JobManager exited: {self.jobmanager_reason()}; "
                                   f"see {self.log_dir}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{n} TaskManagers not registered in {timeout_s}s; "
                                   f"see {self.log_dir}")
            time.sleep(0.5)

    def jobmanager_reason(self) -> str:
        """The last ``Caused by:`` line the JobManager printed (its root cause)."""
        out = self.log_dir / "jobmanager.out"
        lines = out.read_text(errors="replace").splitlines() if out.exists() else []
        causes = [ln.strip() for ln in lines if ln.startswith("Caused by:")]
        return causes[-1] if causes else (lines[-1].strip() if lines else "no output")

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/jobs/{job_id}")

    def cancel(self, job_id: str) -> None:
        req = urllib.request.Request(f"http://{self.rest}/jobs/{job_id}?mode=cancel",
                                     method="PATCH")
        urllib.request.urlopen(req, timeout=5).close()


def _kill_group(p: subprocess.Popen[bytes]) -> None:
    # The group outlives its leader while Python workers it forked still run.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
