"""The serving process (``freshet serve``): a ranking API over the freshest parameters.

One process holds a :class:`ps.serving.ServingState` (embedding tables + dense
model). Threads keep it fresh and close the loop:

- the :class:`~server.loader.DeltaLoader` applies the ``params`` topic (from the
  snapshot's position) and snapshots every ``serving.store_interval_s``;
- an :class:`~server.window.ExampleTail` keeps recent labelled examples for the
  dense validation gate;
- an :class:`~server.impressions.ImpressionLogger` writes each returned item's
  features to the ``features`` topic with the request ID (the joiner's input).

HTTP (FastAPI; the schema is at ``/openapi.json``, docs at ``/docs``):
``POST /rank``, ``GET /healthz``, ``GET /status``, ``GET /metrics`` (Prometheus). The
document lists every status, body and content type each route answers, and requests
are read strictly as it types them; ``tests/jobs/test_openapi_fuzz.py`` holds the app
to it with a schema fuzzer.
Scoring uses the trainer's NumPy forward, never TensorFlow. ``docs/serving.md``
has the design and the measurements.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)
from pydantic_core import SchemaValidator

from freshet.broker import BrokerError
from freshet.config import Config, load_config
from freshet.errors import FreshetError
from ps.serving.demotion import RecentImpressions
from ps.serving.metrics import ServingMetrics
from ps.serving.scoring import Forward, candidate_inputs, pool_candidates, sigmoid
from ps.serving.store import Position, ServingStore
from server.gate import GateDecision, ValidationGate
from server.impressions import ImpressionLogger, ShownRequest
from server.loader import DeltaLoader
from server.signals import SignalFeed
from server.window import ExampleTail, ExampleWindow
from udfs.models import numpy_forward as model_forward

log = logging.getLogger("freshet.serve")


# -- API schema ------------------------------------------------------------------------
def _integral(value: object) -> object:
    """JSON Schema counts ``30.0`` as an integer, so the API does too; other floats,
    strings and booleans stay errors (the models are strict).

    >>> _integral(30.0), _integral(30.5), _integral(True), _integral("30")
    (30, 30.5, True, '30')
    """
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Bounds go before the validator in Annotated: after it, pydantic still enforces them
# but writes them into the schema as "gt"/"lt", which no JSON Schema reader knows.
# IDs are 64-bit like everywhere downstream (beyond int64 NumPy overflows); -2**63 marks
# an empty slot in the ps tables. The bounds are exclusive at +-2**63 because those are
# exact as JSON numbers (doubles), where 2**63 - 1 is not.
ID = Annotated[int, Field(gt=-(2**63), lt=2**63), BeforeValidator(_integral)]
Count = Annotated[int, Field(ge=0), BeforeValidator(_integral)]
Millis = Annotated[int, Field(ge=0, lt=2**63), BeforeValidator(_integral)]


def integers_only(model: type[BaseModel]) -> SchemaValidator:
    """A validator of ``model`` that takes IDs and counts as JSON integers only.

    The same core schema with :func:`_integral` taken out, so it runs no Python per ID
    (0.8-0.9x the validation time on ``benchmarks.serve``'s bodies, 0.7x on bodies with
    more IDs per candidate). It accepts a subset of what
    ``model`` accepts, with the same result: the fast path uses it and sends anything
    it refuses (``30.0`` included) the framework's way, which validates with ``model``.
    Each model class is swapped for an unbuilt subclass: pydantic-core would otherwise
    reuse the class's own prebuilt validator for it, ``_integral`` and all.

    >>> v = integers_only(Candidate)
    >>> v.validate_json(b'{"item_id": 30}').item_id
    30
    >>> Candidate.model_validate_json(b'{"item_id": 30.0}').item_id
    30
    >>> v.validate_json(b'{"item_id": 30.0}')
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Candidate
    ...
    """
    def strip(node: Any) -> Any:
        if isinstance(node, list):
            return [strip(v) for v in node]
        if not isinstance(node, dict):
            return node
        f = node.get("function")
        if node.get("type") == "function-before" and isinstance(f, dict) \
                and f.get("function") is _integral:
            return strip(node["schema"])
        out = {k: strip(v) for k, v in node.items()}
        if node.get("type") == "model":
            cls = node["cls"]
            out["cls"] = type(cls.__name__, (cls,), {
                "__module__": cls.__module__,
                "model_config": ConfigDict(**cls.model_config, defer_build=True)})
        return out

    schema = model.__pydantic_core_schema__
    return SchemaValidator(strip(schema), schema.get("config"))


class _Strict(BaseModel):
    # A request is read as the document says: JSON types are not coerced (0 is not a
    # boolean, "5" is not an ID; 5.0 is an integer, as in JSON Schema). Unknown fields
    # are ignored, as the schema allows (no additionalProperties: false).
    model_config = ConfigDict(strict=True)


NUMERIC_DOC = ("Numeric features: slot -> value, for slots configured with `boundaries`; "
               "each value becomes its bucket's ID (SlotConfig.bucket), which is what is "
               "scored and logged.")


class _Closed(_Strict):
    # `numeric` names configured slots only: any other name is refused (and the
    # document says so, additionalProperties: false).
    model_config = ConfigDict(strict=True, extra="forbid")


class Candidate(_Strict):
    item_id: ID
    slots: dict[str, list[ID]] = Field(
        default_factory=dict,
        description="Item features: slot -> IDs. Empty: {'item_id': [item_id]}.",
    )
    numeric: dict[str, float] = Field(default_factory=dict, description=NUMERIC_DOC)


class RankRequest(_Strict):
    user_id: ID
    user_slots: dict[str, list[ID]] = Field(
        default_factory=dict,
        description="User features: slot -> IDs. Empty: {'user_id': [user_id]}.",
    )
    numeric: dict[str, float] = Field(default_factory=dict, description=NUMERIC_DOC)
    candidates: list[Candidate] = Field(min_length=1)  # create_app adds the configured maximum
    request_id: str | None = Field(None, max_length=200, description="Default: generated.")
    shown: Count | None = Field(
        None, description="The client shows the best `shown` items: only those are "
        "logged as impressions and remembered for demotion. Default: all.")
    demote: bool = Field(True, description="Demote items recently shown to this user.")
    ts: Millis | None = Field(
        None, description="Event time of the request, ms since the epoch, "
        "logged with its impressions (a client replaying a log). Default: the server's clock.")


class RankedItem(BaseModel):
    item_id: int
    score: float = Field(description="The model's click probability (before demotion).")
    demoted: bool


class RankResponse(BaseModel):
    request_id: str
    items: list[RankedItem] = Field(description="Every candidate, best first.")
    model_version: int
    model_seq: int
    table_version: int


class Status(BaseModel):
    ok: bool = Field(description="The loader runs (else /healthz answers 503).")
    ready: bool = Field(description="A dense model is loaded and the loader has read the "
                        "params topic to its end.")
    model_version: int
    table_version: int
    saved_table_version: int | None = Field(description="Of the last snapshot: what a "
                                            "restart keeps.")
    watermark_ms: int | None
    rows: dict[str, int]


class StatusDetail(Status):
    position: Position
    updates_applied: int
    gate_decisions: list[GateDecision]
    offset_resets: list[str]
    updates_not_applied: list[str]
    restore_s: float


class Error(BaseModel):
    """Every error but a request validation error (400, 413, 500, 503)."""

    detail: str


class FieldError(BaseModel):
    type: str = Field(description="pydantic's error type, e.g. 'missing', 'int_type', "
                      "'too_long', 'json_invalid'.")
    loc: list[str | int] = Field(description="Where: ['body', 'candidates', 0, 'item_id'].")
    msg: str


class ValidationErrors(BaseModel):
    """A 422: what is wrong and where; never the input itself."""

    detail: list[FieldError]


# -- the process -----------------------------------------------------------------------
def numpy_forward() -> Forward:
    """The trainer's NumPy forwards, by the model kind each dense update carries:
    serving scores without TensorFlow, and refuses (``UnknownModelKind``) a kind that
    is not registered."""
    return model_forward


class NoModel(FreshetError, RuntimeError):
    """No dense model has been loaded yet."""


class Server:
    """State, loader and helpers of one serving process; :func:`create_app` wraps it."""

    def __init__(self, cfg: Config, forward: Forward | None = None,
                 log_impressions: bool | None = None) -> None:
        self.cfg = cfg
        sc = cfg.serving
        self.slots = list(cfg.model.slots)
        self.slot_order = [s.name for s in self.slots]
        self.numeric = {s.name: s for s in self.slots if s.numeric}
        self.dim = self.slots[0].dim
        self.forward = forward or numpy_forward()
        self.metrics = ServingMetrics()
        self.store = ServingStore(cfg.path(sc.store_dir) / cfg.model.model_id)
        t0 = time.monotonic()
        self.state, position = self.store.load(self.slots, sc.precision)
        self.restore_s = time.monotonic() - t0
        self.window = ExampleWindow(sc.gate_window_examples)
        self.gate = ValidationGate(self.forward, self.slot_order, self.dim,
                                   sc.dense_gate_margin, sc.gate_min_examples)
        self.loader = DeltaLoader(cfg, self.state, position, cfg.model.model_id, self.store,
                                  self.gate, self.window, self.metrics, sc.store_interval_s)
        self.tail = ExampleTail(cfg, self.window)
        self._ids = itertools.count()
        self._boot = f"{os.getpid():x}{int(time.time()):x}"
        log_impressions = sc.log_impressions if log_impressions is None else log_impressions
        # The feed folds this server's impressions as they are logged, known on the
        # topic by this process's origin header (server/signals.py).
        origin = f"{self._boot}-{uuid.uuid4().hex[:8]}".encode() if log_impressions else None
        self.signals = SignalFeed.for_model(cfg, origin)  # None: no signal slot
        if self.signals is not None:
            self.metrics.watch_signals(self.signals)
        self.impressions = (ImpressionLogger(
            cfg, self.metrics, origin=origin,
            on_logged=None if self.signals is None else self.signals.add_logged)
            if log_impressions else None)
        self.recent = (RecentImpressions(sc.demotion_window_s, sc.demotion_factor)
                       if sc.demotion_window_s > 0 else None)

    def start(self) -> None:
        # Long-lived objects (imports, tables' Python wrappers) go to the permanent
        # generation: a full collection over them took ~100-200 ms, a latency spike
        # every second or so under load. Requests' garbage is still collected.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        self.metrics.watch_gc()
        self.loader.open()
        self.loader.start()
        self.tail.start()
        if self.signals is not None:
            self.signals.start()
        if self.impressions is not None:
            self.impressions.start()
        log.info("serving %s: restored %d rows, model seq %s in %.2fs; params from %s",
                 self.cfg.model.model_id, sum(self.state.table_rows().values()),
                 None if self.state.dense is None else self.state.dense.seq, self.restore_s,
                 self.loader.next)

    def stop(self) -> None:
        self.loader.stop()  # saves a last time
        if not self.loader.is_alive():
            self.store.close()
        self.tail.stop()
        if self.signals is not None:
            self.signals.stop()
        if self.impressions is not None:
            self.impressions.stop()

    def _with_numeric(self, slots: dict[str, list[int]],
                      numeric: dict[str, float] | BaseModel,
                      loc: tuple[str | int, ...]) -> dict[str, list[int]]:
        """``slots`` plus the bucket IDs of ``numeric``'s values (422 for a slot that is
        not a configured numeric one: the app's schema already refuses it)."""
        if isinstance(numeric, BaseModel):  # create_app's: the configured names only
            numeric = {k: v for k, v in numeric if v is not None}
        if not numeric:
            return slots
        unknown = [name for name in numeric if name not in self.numeric]
        if unknown:
            known = ", ".join(sorted(self.numeric)) or "none configured"
            raise RequestValidationError([{
                "type": "value_error", "loc": (*loc, unknown[0]),
                "msg": f"{unknown[0]} is not a numeric slot (numeric slots: {known})"}])
        return {**slots, **{name: self.numeric[name].bucket([v]) for name, v in numeric.items()}}

    def rank(self, req: RankRequest) -> dict[str, Any]:
        """Score the candidates with one consistent view; best first."""
        cands = req.candidates
        user_slots = self._with_numeric(req.user_slots or {"user_id": [req.user_id]},
                                        req.numeric, ("body", "numeric"))
        item_slots = [c.slots or {"item_id": [c.item_id]} for c in cands]
        # Per candidate only when there is something to bucketise or refuse: with no
        # numeric slots configured, the app's model has no numeric fields at all.
        if self.numeric or any(type(c.numeric) is dict and c.numeric for c in cands):
            item_slots = [self._with_numeric(s, c.numeric, ("body", "candidates", i, "numeric"))
                          for i, (s, c) in enumerate(zip(item_slots, cands, strict=True))]
        item_ids = [c.item_id for c in cands]
        now = time.time()
        ts = int(now * 1000) if req.ts is None else req.ts
        # The fresh signals are scored with, and logged with the impressions.
        fresh = ({} if self.signals is None else
                 self.signals.signals_csr(req.user_id, item_ids, item_slots, ts))
        ids, n_user, offsets = candidate_inputs(user_slots, item_slots, self.slot_order, fresh)
        view = self.state.read(ids)  # the one locked step: all slots + the model
        if view.dense is None:
            raise NoModel("no dense model loaded yet")
        pooled = pool_candidates(view.embeddings, n_user, offsets, self.slot_order,
                                 len(cands), self.dim)
        scores = sigmoid(np.asarray(self.forward(view.dense.weights, pooled, view.dense.kind)))
        factors = (self.recent.factors(req.user_id, item_ids, now)
                   if self.recent is not None and req.demote else None)
        ranked = scores if factors is None else scores * factors
        order = np.argsort(-ranked, kind="stable")
        request_id = req.request_id or f"{self._boot}-{next(self._ids)}"
        shown = order[: req.shown]
        if self.recent is not None:
            self.recent.record(req.user_id, [item_ids[i] for i in shown], now)
        if self.impressions is not None and len(shown):
            self.impressions.log(ShownRequest(
                request_id, req.user_id, ts, user_slots,
                [(item_ids[i], _with_signals(item_slots[i], fresh, i)) for i in shown],
                [float(scores[i]) for i in shown],
                view.dense.seq, view.table_version))
        demoted = factors is not None
        return {
            "request_id": request_id,
            "items": [{"item_id": item_ids[i], "score": float(scores[i]),
                       "demoted": bool(demoted and factors[i] < 1.0)} for i in order],
            "model_version": view.model_version,
            "model_seq": view.dense.seq,
            "table_version": view.table_version,
        }

    def status(self) -> dict[str, Any]:
        v = self.state.versions
        return {
            "ok": self.loader.is_alive(),
            "ready": self.state.dense is not None and self.loader.caught_up.is_set(),
            "model_version": v.model,
            "table_version": v.table,
            "saved_table_version": self.store.saved_table_version,  # what a restart keeps
            "watermark_ms": self.state.watermark_ms(),
            "rows": self.state.table_rows(),
        }


def _with_signals(slots: dict[str, list[int]],
                  fresh: Mapping[str, tuple[np.ndarray, np.ndarray]], k: int
                  ) -> dict[str, list[int]]:
    """Candidate ``k``'s slots plus its signals' IDs (CSR per signal), as logged."""
    if not fresh:
        return slots
    return {**slots, **{name: ids[offsets[k]:offsets[k + 1]].tolist()
                        for name, (ids, offsets) in fresh.items()}}


# -- HTTP ------------------------------------------------------------------------------
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


# A handler that answers a whole-body request itself, or returns None to leave it to
# the app (BodyLimit's ``fast``).
FastHandler = Callable[[bytes], Awaitable[Response | None]]


def _json_body(scope: Scope) -> bool:
    """Whether the request says its body is JSON (``application/json`` or ``+json``),
    as FastAPI decides before it parses a body."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/")
                                                     and media.endswith(b"+json"))
    return False


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` gets 413 before any parsing.

    Reads the body itself (so chunked requests are bounded too) and replays it.
    ``fast`` maps a POST path to a handler that may answer a JSON body directly, without
    the framework's routing, dependency solving and second JSON parse (most of a
    ranking's CPU besides scoring, docs/serving.md); whatever it returns None for goes
    on to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 fast: Mapping[str, FastHandler] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.fast = dict(fast or {})

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                response = JSONResponse(
                    {"detail": f"request body over the limit of {self.max_bytes} bytes"}, 413)
                return await response(scope, receive, send)
        body = b"".join(chunks)
        handler = self.fast.get(scope["path"]) if scope["method"] == "POST" else None
        if handler is not None and body and _json_body(scope):
            answer = await handler(body)
            if answer is not None:
                return await answer(scope, receive, send)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS), status,
                    media_type="application/json")


def create_app(server: Server, manage: bool = True) -> FastAPI:
    """The FastAPI app for ``server``; ``manage``: start/stop it with the app."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage:
            server.start()
        yield
        if manage:
            server.stop()

    app = FastAPI(title="Freshet serving", version="1", lifespan=lifespan,
                  description="Ranking with parameters that are seconds fresh.")
    hist = server.metrics.request
    ok, no_model = hist.labels("ok"), hist.labels("no_model")  # once: labels() locks
    # The configured candidate limit is part of the request's schema (maxItems): the
    # document says what is accepted, and the same declaration enforces it.
    # So are the configured numeric slots: `numeric` takes exactly those names.
    n = server.cfg.serving.max_candidates
    numeric = create_model("Numeric", __base__=_Closed, **{
        name: (float, Field(None, description=f"Bucketised by {slot.boundaries}."))
        for name, slot in server.numeric.items()})
    numeric_field = (numeric, Field(default_factory=numeric, description=NUMERIC_DOC))
    candidate = create_model("Candidate", __base__=Candidate, numeric=numeric_field)
    limited = create_model("RankRequest", __base__=RankRequest, numeric=numeric_field,
                           candidates=(list[candidate], Field(
                               min_length=1, max_length=n,
                               description=f"1 to {n} items (`serving.max_candidates`).")))
    internal_error = {500: {"model": Error, "description": "Internal error (logged, no details)"}}

    async def rank(req: RankRequest) -> Response:
        t0 = time.perf_counter()
        try:
            out = server.rank(req)
        except NoModel as e:
            no_model.observe(time.perf_counter() - t0)
            return _json({"detail": str(e)}, 503)
        response = _json(out)
        ok.observe(time.perf_counter() - t0)
        return response

    fast = integers_only(limited)

    async def rank_fast(body: bytes) -> Response | None:
        # The body parsed and validated in one pass by pydantic-core. A body it refuses
        # goes the framework's way, whose answer (400, 422 and their details) is the
        # documented one: only valid requests take this path.
        try:
            req = fast.validate_json(body)
        except ValidationError:
            return None
        return await rank(req)

    # FastAPI reads the body's model from the annotation: this app's limited one.
    rank.__annotations__["req"] = limited
    app.post("/rank", response_model=RankResponse, responses={
        400: {"model": Error, "description": "Body that cannot be read as JSON text "
              "(e.g. not UTF-8)"},
        413: {"model": Error, "description": "Body over `serving.max_body_bytes`"},
        422: {"model": ValidationErrors, "description": "Invalid JSON or fields, or more "
              "than `serving.max_candidates` candidates"},
        503: {"model": Error, "description": "No dense model loaded yet"},
        **internal_error})(rank)

    @app.get("/healthz", response_model=Status, responses={
        503: {"model": Status, "description": "The loader has stopped (`ok` is false)"},
        **internal_error})
    async def healthz() -> Response:
        s = server.status()
        return _json(s, 200 if s["ok"] else 503)

    @app.get("/status", response_model=StatusDetail, responses=internal_error)
    async def status() -> Response:
        loader = server.loader
        return _json({
            **server.status(),
            "position": loader.position().__dict__,
            "updates_applied": loader.applied,
            "gate_decisions": [d.__dict__ for d in loader.decisions],
            "offset_resets": loader.resets,
            "updates_not_applied": list(loader.rejected),
            "restore_s": server.restore_s,
        })

    @app.get("/metrics", response_class=PlainTextResponse, responses={
        200: {"description": "Prometheus text format"}, **internal_error})
    async def metrics() -> Response:
        return Response(generate_latest(server.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own handler echoes each error's input: a 500 for a body that is not
        # UTF-8 (found by tests/reliability/test_fuzz_serving.py), and up to the whole
        # body reflected back. Say where and what, not the input.
        errors = [{"type": e.get("type"), "loc": [str(x) if not isinstance(x, int) else x
                                                  for x in e.get("loc", ())],
                   "msg": str(e.get("msg", ""))} for e in exc.errors()]
        return _json({"detail": errors}, 422)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> Response:
        log.exception("request failed", exc_info=exc)
        return _json({"detail": "internal error (logged by the server)"}, 500)

    app.add_middleware(BodyLimit, max_bytes=server.cfg.serving.max_body_bytes,
                       fast={"/rank": rank_fast})
    return app


def main(cfg: Config, port: int | None = None) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    try:
        server = Server(cfg)
    except BrokerError as e:
        log.error("%s", e)
        return 2
    app = create_app(server)
    uvicorn.run(app, host=cfg.serving.host, port=cfg.serving.port if port is None else port,
                workers=1, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="freshet.toml")
    p.add_argument("--port", type=int, default=None)
    a = p.parse_args()
    sys.exit(main(load_config(a.config), a.port))
