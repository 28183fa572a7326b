"""A standalone cluster's start survives a port taken between picking and binding.

:func:`freshet.broker.free_port` answers a port that is free *now*; on a busy machine
another socket can take it before the JobManager's JVM binds it (CI saw the JobManager
exit with ``BindException`` that way). The first port the cluster picks here is held
open by the test, so the first JobManager must fail to bind; the start must retry with
new ports and end with a cluster that answers, and say why it retried.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import freshet.cluster
from freshet.cluster import ClusterError, StandaloneCluster


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def test_a_taken_rest_port_is_retried_with_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_port: socket.socket,
    capsys: pytest.CaptureFixture[str],
) -> None:
    taken = held_port.getsockname()[1]
    picks = iter([taken])  # the rest port is the first pick of each attempt
    real = freshet.cluster.free_port
    monkeypatch.setattr(freshet.cluster, "free_port", lambda: next(picks, None) or real())
    with StandaloneCluster(tmp_path / "c", slots=1).start(taskmanagers=1) as cluster:
        assert cluster.rest_port != taken
        assert cluster.get("/overview")["taskmanagers"] == 1
    assert "retrying with new ports (1/3)" in capsys.readouterr().err
    first = (tmp_path / "c" / "log" / "jobmanager.out.1").read_text()
    assert "BindException" in first


def test_a_port_taken_on_every_attempt_names_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_port: socket.socket,
) -> None:
    taken = held_port.getsockname()[1]
    real = freshet.cluster.free_port
    calls = iter(range(10**6))
    # Every attempt's first pick (its rest port) is the held one.
    monkeypatch.setattr(freshet.cluster, "free_port",
                        lambda: taken if next(calls) % 3 == 0 else real())
    with pytest.raises(ClusterError, match="BindException.*port range"):
        StandaloneCluster(tmp_path / "c", slots=1).start(taskmanagers=0, attempts=2)
