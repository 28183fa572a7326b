"""Start, watch and stop the long-running pieces (broker, jobs, serving) as child processes.

Each child runs in its own process group with its output in a log file, so stopping
it also stops what it started (a Flink mini-cluster's Python workers, say), and a
failure can be shown to the user with the tail of its log.

Examples
--------
>>> import sys, tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     svc = Service("echo", [sys.executable, "-c", "print('ready', flush=True)"],
...                   log_dir=d).start()
...     svc.wait_for("ready", timeout_s=20)
...     svc.wait(timeout_s=20)
0
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from freshet.errors import FreshetError


class ServiceError(FreshetError, RuntimeError):
    """A child process failed to start, exited early, or did not get ready."""


@dataclass
class Service:
    name: str
    argv: list[str]
    log_dir: str | os.PathLike[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return Path(self.log_dir) / f"{self.name}.log"

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env}, start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_for(self, text: str, timeout_s: float) -> None:
        """Block until ``text`` appears in the log; raise if the child exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.log_path.exists() and text in self.log_path.read_text(errors="replace"):
                return
            if not self.running:
                raise ServiceError(f"{self.name} exited ({self._code()}) before '{text}':\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)
        raise ServiceError(f"{self.name}: no '{text}' after {timeout_s}s:\n{self.log_tail()}")

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout_s``."""
        p = self.process
        if p is None:
            return None
        if p.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                p.wait()
        self._signal(signal.SIGKILL)  # stragglers in the group (Python workers)
        # A signal is delivered, not awaited: wait until the group is gone, so "stopped"
        # means nothing it started still runs (a loaded machine took a moment).
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        return p.returncode

    def kill(self) -> None:
        """kill -9 the whole group, for fault-injection tests."""
        if self.process is not None:
            self._signal(signal.SIGKILL)
            self.process.wait()

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def _code(self) -> str:
        return f"exit code {self.process.returncode}" if self.process else "not started"

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
