"""Fuzz the ranking API: 10,000+ malformed requests, zero server errors.

Hypothesis generates bodies through the real ASGI app in-process (a real serving
state fed from the embedded broker): random bytes, random JSON documents, and valid
requests with one part broken (wrong types, out-of-range IDs, huge lists, missing or
extra fields, wrong content types). Every response must be a 200 with a well-formed
ranking, or a 4xx whose JSON ``detail`` says what was wrong; never a 5xx, never a
stack trace. The tally of status codes accounts for every input.

``FRESHET_FUZZ_EXAMPLES`` (default 10,000 in total) sets how many; ~1-2 min.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter

import numpy as np
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freshet.config import Config
from freshet.kafka import producer
from jobs.serve import Server, create_app
from ps.serving.synthetic import dense_messages, lr_weights, publish, sparse_messages, sparse_rows

TOTAL = int(os.environ.get("FRESHET_FUZZ_EXAMPLES", "10000"))
MAX_CANDIDATES, MAX_BODY = 50, 20_000

json_leaf = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
             | st.text(max_size=20))
json_doc = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=5)
                        | st.dictionaries(st.text(max_size=10), kids, max_size=5), max_leaves=30)
# Integers that break naive code: beyond int64, bool-like, negative.
weird_int = st.sampled_from([-(2**63) - 1, 2**63, 2**64, 10**30, -1, 0]) | st.integers()
ids = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5)


def valid_request(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 8))
    return {"user_id": draw(st.integers(0, 100)),
            "candidates": [{"item_id": draw(st.integers(0, 100)),
                            "slots": draw(st.dictionaries(st.sampled_from(
                                ["item_id", "genre", "nope"]), ids, max_size=2))}
                           for _ in range(n)]}


@st.composite
def broken_request(draw: st.DrawFn) -> dict:
    """A valid request with one part replaced by something wrong."""
    req = valid_request(draw)
    how = draw(st.sampled_from(["field", "int", "candidate", "slots", "many", "extra",
                                "missing", "shown", "request_id", "ids"]))
    if how == "field":
        req[draw(st.sampled_from(["user_id", "candidates", "user_slots", "shown", "demote"]))] = (
            draw(json_doc))
    elif how == "int":
        req["user_id"] = draw(weird_int)
    elif how == "candidate":
        req["candidates"][0] = draw(json_doc)
    elif how == "slots":
        req["user_slots"] = draw(json_doc)
    elif how == "many":  # over the candidate limit
        req["candidates"] = [{"item_id": i} for i in range(draw(st.integers(51, 400)))]
    elif how == "extra":
        req[draw(st.text(max_size=10))] = draw(json_doc)
    elif how == "missing":
        req.pop(draw(st.sampled_from(["user_id", "candidates"])))
    elif how == "shown":
        req["shown"] = draw(weird_int | json_doc)
    elif how == "request_id":
        req["request_id"] = draw(st.text(min_size=150, max_size=400) | json_doc)
    else:  # IDs out of the 64-bit range, or lists too long for the body limit
        big = draw(st.lists(weird_int, min_size=1, max_size=3))
        req["candidates"][0]["slots"] = {"item_id": big}
        if draw(st.booleans()):
            req["user_slots"] = {"user_id": list(range(draw(st.integers(1000, 6000))))}
    return req


def request_bodies() -> st.SearchStrategy[tuple[bytes, str]]:
    as_json = broken_request().map(lambda r: json.dumps(r).encode()) | json_doc.map(
        lambda d: json.dumps(d).encode())
    body = as_json | st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
    ctype = st.sampled_from(["application/json"] * 6 + ["text/plain", "", "application/x-www"
                                                        "-form-urlencoded", "application/json; "
                                                        "charset=latin-1"])
    return st.tuples(body, ctype)


def start(cfg: Config) -> TestClient:
    cfg = dataclasses.replace(cfg, serving=dataclasses.replace(
        cfg.serving, max_candidates=MAX_CANDIDATES, max_body_bytes=MAX_BODY))
    topic, p, model = cfg.topics.name("params"), producer(cfg), cfg.model.model_id
    items = np.arange(100)
    vals = np.zeros((100, 16), np.float32)
    vals[:, 0] = items * 0.01
    publish(p, topic, sparse_messages(sparse_rows({"item_id": (items, vals)}), model, seq=1))
    publish(p, topic, dense_messages(lr_weights(0.1), model, seq=1, model_kind="lr"))
    client = TestClient(create_app(Server(cfg)), raise_server_exceptions=False)
    client.__enter__()
    deadline = time.monotonic() + 30
    while not client.get("/healthz").json()["ready"]:
        assert time.monotonic() < deadline, "serving never became ready"
        time.sleep(0.05)
    return client


def check(status: int, text: str, n_candidates: int | None) -> str:
    """The outcome class of one response; raises if the response is not acceptable."""
    assert status < 500, f"{status}: {text[:500]}"
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    body = json.loads(text)  # every answer is JSON
    if status == 200:
        assert n_candidates is not None and len(body["items"]) == n_candidates
        assert all(0.0 <= it["score"] <= 1.0 for it in body["items"])
        return "200"
    assert 400 <= status < 500
    assert body.get("detail"), f"{status} without a message: {text[:300]}"
    return str(status)


def test_fuzz_rank_api_no_5xx_every_input_accounted(cfg: Config) -> None:
    client = start(cfg)
    tally: Counter[str] = Counter()
    sent = 0
    try:
        @settings(max_examples=TOTAL, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(request_bodies())
        def one(case: tuple[bytes, str]) -> None:
            nonlocal sent
            body, ctype = case
            headers = {"content-type": ctype} if ctype else {}
            r = client.post("/rank", content=body, headers=headers)
            sent += 1
            try:
                doc = json.loads(body)
                n = len(doc["candidates"]) if isinstance(doc, dict) else None
            except (ValueError, TypeError, KeyError):
                n = None
            tally[check(r.status_code, r.text, n)] += 1

        one()
        # The server still answers normally after all of it.
        r = client.post("/rank", json={"user_id": 1, "candidates": [{"item_id": 3}]})
        assert r.status_code == 200, r.text
    finally:
        client.__exit__(None, None, None)
    print(f"\n{sent} malformed or odd requests: {dict(sorted(tally.items()))}")
    assert sent >= TOTAL and sum(tally.values()) == sent
    assert tally["413"] and tally["422"] and tally["200"]  # the strategies reach each path
