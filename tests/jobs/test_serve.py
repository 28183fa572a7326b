"""The ranking API in-process (FastAPI test client) against the embedded broker."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from freshet.config import Config
from freshet.kafka import producer, read
from freshet.topics import Impression
from jobs.serve import Server, create_app
from ps.config import SlotConfig
from ps.serving.synthetic import dense_messages, lr_weights, publish, sparse_messages, sparse_rows
from tests.jobs.lr_server import lr_server

ITEMS = np.arange(50)


def first_order(ids: np.ndarray, scale: float) -> np.ndarray:
    vals = np.zeros((len(ids), 16), np.float32)
    vals[:, 0] = ids * scale
    return vals


def start(cfg: Config, with_model: bool = True, **serving: object) -> TestClient:
    cfg = dataclasses.replace(cfg, serving=dataclasses.replace(cfg.serving, **serving))
    topic, p, model = cfg.topics.name("params"), producer(cfg), cfg.model.model_id
    publish(p, topic, sparse_messages(sparse_rows({
        "item_id": (ITEMS, first_order(ITEMS, 0.01)),  # item i: +0.01 i
        "user_id": (np.array([7]), first_order(np.array([1]), 0.5)),  # user 7: +0.5
        "genre": (np.array([3]), first_order(np.array([1]), -1.0)),  # genre 3: -1
    }), model, seq=1))
    if with_model:
        publish(p, topic, dense_messages(lr_weights(0.1), model, seq=1, model_kind="lr"))
    client = TestClient(create_app(Server(cfg)))
    client.__enter__()
    deadline = time.monotonic() + 30
    while client.get("/healthz").json()["table_version"] < 1 or (
            with_model and not client.get("/healthz").json()["ready"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return client


@pytest.fixture
def client(cfg: Config) -> Iterator[TestClient]:
    c = start(cfg)
    yield c
    c.__exit__(None, None, None)


def rank_body(items, **kw) -> dict:
    return {"user_id": 7, "candidates": [{"item_id": int(i)} for i in items], **kw}


def test_rank_scores_in_order_and_logs_shown_impressions(cfg: Config, client: TestClient) -> None:
    cands = [{"item_id": 5, "slots": {"item_id": [5], "genre": [3]}},
             {"item_id": 40}, {"item_id": 20}, {"item_id": 999}]
    r = client.post("/rank", json={"user_id": 7, "candidates": cands, "request_id": "req-1",
                                   "shown": 2})
    assert r.status_code == 200, r.text
    out = r.json()
    logit = {5: 0.1 + 0.5 + 0.05 - 1.0, 40: 0.1 + 0.5 + 0.4, 20: 0.1 + 0.5 + 0.2, 999: 0.6}
    assert [i["item_id"] for i in out["items"]] == [40, 20, 999, 5]
    for it in out["items"]:
        assert it["score"] == pytest.approx(1 / (1 + np.exp(-logit[it["item_id"]])), rel=1e-5)
    assert out["request_id"] == "req-1" and out["model_seq"] == 1 and out["table_version"] == 1
    imps = []
    deadline = time.monotonic() + 20
    while len(imps) < 2 and time.monotonic() < deadline:
        imps = [Impression.from_json(m.value())
                for m in read(cfg, cfg.topics.name("features"), idle_s=0.5)]
    assert sorted(i.item_id for i in imps) == [20, 40]  # only the shown ones
    assert all(i.request_id == "req-1" and i.user_id == 7 for i in imps)
    assert imps[0].slots == {"user_id": [7], "item_id": [imps[0].item_id]}


def test_bad_requests_get_clear_4xx(cfg: Config) -> None:
    c = start(cfg, max_candidates=10, max_body_bytes=4000)
    try:
        r = c.post("/rank", json=rank_body(range(11)))
        assert r.status_code == 422, r.text
        [err] = r.json()["detail"]
        assert err["loc"] == ["body", "candidates"] and "at most 10 items" in err["msg"]
        r = c.post("/rank", json={"user_id": 1, "candidates": [{"item_id": 1}], "x": "y" * 5000})
        assert r.status_code == 413 and "4000 bytes" in r.json()["detail"]
        r = c.post("/rank", content=b'{"user_id": 1,', headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
        r = c.post("/rank", json={"user_id": "alice", "candidates": []})
        assert r.status_code == 422
        assert {tuple(e["loc"]) for e in r.json()["detail"]} == {
            ("body", "user_id"), ("body", "candidates")}
        for r in [c.post("/rank", json=rank_body([1])), c.get("/healthz")]:
            assert r.status_code == 200 and "Traceback" not in r.text
    finally:
        c.__exit__(None, None, None)


def test_integral_float_ids_rank_as_their_integers(tmp_path: Path) -> None:
    """JSON Schema counts 3.0 as an integer: such a body, refused by the fast path's
    integers-only validator, is answered by the framework's with the same ranking."""
    _, client = lr_server(tmp_path, SlotConfig("genre", dim=2), np.arange(1, 17))

    def body(num: type) -> dict:
        return {"user_id": num(5), "shown": num(1), "candidates": [
            {"item_id": num(i), "slots": {"item_id": [num(i)], "genre": [num(g)]}}
            for i, g in ((1, 3), (2, 9), (3, 5))]}

    as_int, as_float = (client.post("/rank", json=body(t)) for t in (int, float))
    assert as_int.status_code == as_float.status_code == 200, as_float.text
    ranked = [[(i["item_id"], i["score"]) for i in r.json()["items"]] for r in (as_int, as_float)]
    assert ranked[0] == ranked[1] and [i for i, _ in ranked[0]] == [2, 3, 1]
    r = client.post("/rank", json={"user_id": 5.5, "candidates": [{"item_id": 1}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "user_id"]


def test_no_model_yet_is_503(cfg: Config) -> None:
    c = start(cfg, with_model=False)
    try:
        r = c.post("/rank", json=rank_body([1, 2]))
        assert r.status_code == 503 and "no dense model" in r.json()["detail"]
        assert c.get("/healthz").json()["ready"] is False
    finally:
        c.__exit__(None, None, None)


def test_recently_shown_items_are_demoted(cfg: Config) -> None:
    c = start(cfg, demotion_window_s=60.0, demotion_factor=0.1)
    try:
        first = c.post("/rank", json=rank_body([10, 30, 20], shown=1)).json()["items"]
        assert [i["item_id"] for i in first] == [30, 20, 10] and not first[0]["demoted"]
        again = c.post("/rank", json=rank_body([10, 30, 20])).json()["items"]
        assert [i["item_id"] for i in again] == [20, 10, 30] and again[2]["demoted"]
        assert again[2]["score"] == first[0]["score"]  # the model's score is unchanged
        plain = c.post("/rank", json=rank_body([10, 30, 20], demote=False)).json()["items"]
        assert [i["item_id"] for i in plain] == [30, 20, 10]
    finally:
        c.__exit__(None, None, None)


def test_openapi_metrics_status(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/rank" in schema["paths"] and "RankRequest" in schema["components"]["schemas"]
    assert client.post("/rank", json=rank_body([1, 2, 3])).status_code == 200
    text = client.get("/metrics").text
    for name in ["freshet_serving_request_seconds_bucket", "freshet_serving_delta_lag_seconds",
                 "freshet_serving_freshness_seconds", "freshet_serving_table_version 1.0",
                 "freshet_serving_model_version 1.0", 'freshet_serving_table_rows{slot="item_id"}',
                 "freshet_serving_table_bytes"]:
        assert name in text, name
    status = client.get("/status").json()
    assert status["position"]["seqs"] == {"deepfm/sparse/0": 1, "deepfm/dense/0": 1}
    assert status["gate_decisions"][0]["accepted"]


def test_serving_never_imports_tensorflow() -> None:
    code = ("import sys, jobs.serve as s; f = s.numpy_forward(); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_requests_answered_and_consistent_while_updates_apply(cfg: Config,
                                                              client: TestClient) -> None:
    """Every response reflects exactly one table version: update k sets every item's
    first-order weight to k / 10, so all scores equal sigmoid(0.1 + 0.5 + k / 10)."""
    topic, p, model = cfg.topics.name("params"), producer(cfg), cfg.model.model_id
    base = client.get("/healthz").json()["table_version"]
    n_updates = 40

    def publisher() -> None:  # paced, so requests fall between updates too
        for k in range(1, n_updates + 1):
            vals = np.zeros((len(ITEMS), 16), np.float32)
            vals[:, 0] = k / 10
            publish(p, topic, sparse_messages(sparse_rows({"item_id": (ITEMS, vals)}), model,
                                              seq=1 + k))
            time.sleep(0.02)

    sender = threading.Thread(target=publisher)
    sender.start()
    versions = set()
    deadline = time.monotonic() + 30
    while max(versions, default=0) < base + n_updates:
        assert time.monotonic() < deadline
        r = client.post("/rank", json=rank_body(ITEMS, shown=0))
        assert r.status_code == 200
        out = r.json()
        k = out["table_version"] - base
        if k == 0:
            continue
        expected = 1 / (1 + np.exp(-(0.6 + k / 10)))
        scores = [it["score"] for it in out["items"]]
        assert scores == pytest.approx([expected] * len(ITEMS), rel=1e-6), k
        versions.add(out["table_version"])
    sender.join()
    assert len(versions) > 5  # requests were answered between updates
