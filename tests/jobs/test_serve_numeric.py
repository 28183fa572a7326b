"""A numeric slot (``boundaries``) in the ranking API: values in, bucket IDs scored and
logged (the same IDs the trainer learns from the logged impressions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from jobs.serve import Candidate, RankRequest, Server
from ps.config import SlotConfig
from tests.jobs.lr_server import lr_server

BOUNDARIES = [10.0, 50.0]  # price buckets: < 10 -> 0, [10, 50) -> 1, >= 50 -> 2


def numeric_server(work_dir: Path) -> tuple[Server, TestClient]:
    # Price bucket b adds b to the logit; items and users add nothing.
    return lr_server(work_dir, SlotConfig("price", dim=2, boundaries=BOUNDARIES),
                     np.arange(3))


def test_numeric_values_are_scored_and_logged_as_their_buckets(tmp_path: Path) -> None:
    server, client = numeric_server(tmp_path)
    body = {"user_id": 1, "candidates": [
        {"item_id": 1, "numeric": {"price": 5.0}},
        {"item_id": 2, "numeric": {"price": 70}},
        {"item_id": 3, "numeric": {"price": 10.0}}]}
    r = client.post("/rank", json=body)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["item_id"] for i in items] == [2, 3, 1]
    assert np.allclose([i["score"] for i in items], 1 / (1 + np.exp(-np.array([2, 1, 0]))))
    (logged,) = server.impressions.requests
    prices = {item: slots["price"] for item, slots in logged.items}
    assert prices == {2: [2], 3: [1], 1: [0]}


def test_user_numeric_values_are_bucketised_too(tmp_path: Path) -> None:
    server, client = numeric_server(tmp_path)
    r = client.post("/rank", json={"user_id": 1, "numeric": {"price": 99.0},
                                   "candidates": [{"item_id": 1}]})
    assert r.status_code == 200, r.text
    assert server.impressions.requests[0].user_slots["price"] == [2]


def test_a_value_for_a_slot_that_is_not_numeric_is_a_422_naming_it(tmp_path: Path) -> None:
    _, client = numeric_server(tmp_path)
    for slot in ("item_id", "colour"):
        r = client.post("/rank", json={"user_id": 1, "candidates": [
            {"item_id": 1}, {"item_id": 2, "numeric": {slot: 3.0}}]})
        assert r.status_code == 422
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body", "candidates", 1, "numeric", slot]
        assert err["type"] == "extra_forbidden"
    r = client.post("/rank", json={"user_id": 1, "candidates": [
        {"item_id": 1, "numeric": {"price": "cheap"}}]})
    assert r.status_code == 422


def test_the_document_names_the_numeric_slots(tmp_path: Path) -> None:
    _, client = numeric_server(tmp_path)
    numeric = client.get("/openapi.json").json()["components"]["schemas"]["Numeric"]
    assert list(numeric["properties"]) == ["price"]
    assert numeric["additionalProperties"] is False


def test_rank_called_directly_refuses_a_slot_that_is_not_numeric(tmp_path: Path) -> None:
    server, _ = numeric_server(tmp_path)
    req = RankRequest(user_id=1, candidates=[Candidate(item_id=1, numeric={"colour": 1.0})])
    with pytest.raises(RequestValidationError, match="colour is not a numeric slot"):
        server.rank(req)
