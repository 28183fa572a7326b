"""The embedded broker: Apache Kafka 4, one node in KRaft mode, its data on disk.

``freshet broker`` (and the demo, the tests and the benchmarks) run Apache Kafka from the
jars Maven resolved (``jvm/broker``, :mod:`freshet.jvm`): one JVM that is both broker
and KRaft controller, storing its log under a data directory. It keeps every topic,
record and committed offset across its own restart (``kill -9`` too), and it comes back
on the ports it had, so running clients reconnect by themselves. Its settings are those
of a single node (replication factor 1) plus three of Freshet's:

- records are kept forever (``log.retention.hours=-1``): a replay of a historical range
  needs the range, and a replayed log carries old event times as record timestamps;
- records may carry any timestamp (``log.message.timestamp.*.max.ms``): a bounded job's
  final outputs are stamped at the end of time, and a replay's in the past;
- a broker killed and restarted is back in ~4 s, not ~14 s: the controller forgets the
  dead broker's session after 1.5 s (``broker.session.timeout.ms``).

Examples
--------
>>> props = server_properties(Path("/tmp/k"), "127.0.0.1", 9092, 9093)
>>> props["listeners"], props["log.retention.hours"]
('PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093', '-1')
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from freshet.config import Config
from freshet.errors import FreshetError

FOREVER_MS = str(2**63 - 1)


class BrokerError(FreshetError, RuntimeError):
    """The embedded broker could not be started or reached."""


_handed_out: set[int] = set()  # ports this process was given and may not have bound yet
_random = random.SystemRandom()  # independent of any seeded ``random`` (other processes)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server this process starts next.

    A port is only free when it is picked, and a JVM binds it seconds later. The
    kernel's own pick (bind to port 0) comes from the ephemeral range, the range every
    outgoing connection takes its local port from: a Kafka client connecting meanwhile
    can take it, and the server then fails to bind (a JobManager exits with a
    ``BindException``). So the port is drawn below that range, where no outgoing
    connection is ever placed, and never twice in one process.

    Examples
    --------
    >>> a, b = free_port(), free_port()
    >>> a != b and max(a, b) < ephemeral_range()[0]
    True
    """
    lo = ephemeral_range()[0]
    first = max(1024, lo - 12_000)
    for _ in range(200):
        port = _random.randrange(first, lo)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:  # taken, or in TIME_WAIT
                continue
        _handed_out.add(port)
        return port
    raise BrokerError(f"no free port in {first}-{lo - 1} on {host} after 200 tries")


def wait_for_metadata(bootstrap: str, timeout_s: float = 30.0) -> None:
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
            if admin.list_topics(timeout=2).brokers:
                return
        except Exception as e:  # KafkaException while the broker is still starting
            last = e
        time.sleep(0.1)
    raise BrokerError(f"broker at {bootstrap} did not answer metadata in {timeout_s}s: {last}")


def server_properties(data_dir: Path, host: str, port: int, controller_port: int
                      ) -> dict[str, str]:
    """The broker's ``server.properties`` (see the module docstring for the choices)."""
    controller = f"{host}:{controller_port}"
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": controller,
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / "log"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.hours": "-1",
        "log.message.timestamp.after.max.ms": FOREVER_MS,
        "log.message.timestamp.before.max.ms": FOREVER_MS,
        "broker.session.timeout.ms": "1500",
        "broker.heartbeat.interval.ms": "500",
    }


@dataclass
class EmbeddedBroker:
    """A running single-node Kafka. Use as a context manager, or ``start``/``stop``.

    ``data_dir`` holds its log and the ports it listens on; a broker started again on the
    same directory has every topic and record back, on the same ports. ``port = 0`` takes
    the directory's port, else a free one. Without ``data_dir``: a new directory beside
    ``log_path``, else a temporary one.
    """

    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    data_dir: Path | None = None
    heap_mb: int = 512
    process: subprocess.Popen[bytes] | None = None
    ready_s: float = 0.0  # how long the last start took, process start to metadata
    controller_port: int = field(default=0, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _java(self, heap_mb: int) -> list[str]:
        from freshet.jvm import JVM, broker_classpath, ensure

        ensure()  # the broker's classpath is Maven-built: a no-op when current
        return ["java", "-Xms64m", f"-Xmx{heap_mb}m", "-XX:+UseSerialGC",
                f"-Dlog4j2.configurationFile={JVM / 'broker' / 'log4j2.yaml'}",
                "-cp", broker_classpath()]

    def _prepare(self) -> Path:
        if self.data_dir is None:
            parent = self.log_path.parent if self.log_path else Path(
                tempfile.mkdtemp(prefix="freshet-kafka-"))
            self.data_dir = parent / "kafka"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports_file = self.data_dir / "ports.json"
        saved = json.loads(ports_file.read_text()) if ports_file.exists() else {}
        self.port = self.port or saved.get("port") or free_port(self.host)
        self.controller_port = saved.get("controller_port") or free_port(self.host)
        ports_file.write_text(json.dumps({"port": self.port,
                                          "controller_port": self.controller_port}))
        props = server_properties(self.data_dir, self.host, self.port, self.controller_port)
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def start(self, timeout_s: float = 60.0) -> EmbeddedBroker:
        t0 = time.monotonic()
        props = self._prepare()
        with open(self.log_path or os.devnull, "ab") as log:  # the child keeps its own fd
            if not (self.data_dir / "log" / "meta.properties").exists():
                self._format(props, log)
            self.process = subprocess.Popen(self._java(self.heap_mb) + ["kafka.Kafka", str(props)],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            wait_for_metadata(self.bootstrap, timeout_s)
        except BrokerError as e:
            code = self.process.poll()
            self.stop()
            how = f"exited with {code}" if code is not None else "was stopped"
            where = f" (log: {self.log_path})" if self.log_path else ""
            raise BrokerError(f"{e}; the broker process {how}{where}") from e
        self.ready_s = time.monotonic() - t0
        return self

    def _format(self, props: Path, log: object) -> None:
        """Format the data directory once: a one-voter KRaft quorum (KIP-853)."""
        cluster = "-"
        while cluster.startswith("-"):  # the tool would read a leading "-" as an option
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        run = subprocess.run(self._java(256) + ["kafka.tools.StorageTool", "format",
                                                "--cluster-id", cluster, "-c", str(props),
                                                "--standalone"],
                             stdout=log, stderr=subprocess.STDOUT)
        if run.returncode != 0:
            raise BrokerError(f"formatting {self.data_dir} failed (exit {run.returncode}); "
                              f"see {self.log_path or 'the broker log'}")

    def stop(self, timeout_s: float = 30.0) -> None:
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)  # a controlled shutdown: ~1 s
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
