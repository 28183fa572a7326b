"""A small client for the ranking server's HTTP API (tests, benchmarks and the demo).

Examples
--------
>>> from freshet.broker import free_port
>>> request(free_port(), "/healthz")  # nothing listens there
Traceback (most recent call last):
...
urllib.error.URLError: <urlopen error [Errno 111] Connection refused>
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request(
    port: int, path: str, body: dict | None = None, timeout: float = 5.0, host: str = "127.0.0.1"
) -> tuple[int, Any]:
    """``(status, JSON body)`` of a GET (or a POST of ``body``); text if not JSON.

    HTTP errors are answers (their status and body are returned); a server that is
    not listening raises ``urllib.error.URLError`` (an ``OSError``).
    """
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=data,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")

