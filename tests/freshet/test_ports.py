"""``free_port`` gives ports an outgoing connection can never take meanwhile.

The kernel gives outgoing connections local ports from its ephemeral range; a port
picked there for a server that binds seconds later can be taken in between (a
JobManager exited with ``BindException`` that way). Picks must lie below that range,
be distinct within a process, and be bindable.
"""

from __future__ import annotations

import socket

import pytest

from freshet.broker import ephemeral_range, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    lo, hi = ephemeral_range()
    assert 1024 <= lo < hi
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(p < lo for p in ports)
    for p in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import freshet.broker

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        free = free_port()
        draws = iter([taken, free])  # the first draw is a port in use
        monkeypatch.setattr(freshet.broker._random, "randrange", lambda a, b: next(draws))
        freshet.broker._handed_out.discard(free)
        assert free_port() == free
