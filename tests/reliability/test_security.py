"""Security basics: no pickle where a peer can write, Kafka security settings reach every
client, and the serving API bounds its input and never returns a stack trace."""

from __future__ import annotations

import ast
import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from freshet.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
CODE = ("freshet", "jobs", "udfs", "ps", "benchmarks")
# Modules that deserialise executable objects: never on Kafka payloads, checkpoints or
# snapshots, which other processes (and whoever reaches the broker) write.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "marshal", "shelve",
                  "joblib", "torch"}
SECURITY = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "freshet", "sasl.password": "secret",
            "ssl.ca.location": "/etc/ssl/certs/ca.pem"}
# Java client names (Flink's connectors): librdkafka rejects sasl.jaas.config outright.
JAVA = {"sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
        'required username="freshet" password="secret";',
        "ssl.truststore.type": "PEM", "ssl.truststore.location": "/etc/ssl/certs/ca.pem"}


def unsafe_calls(tree: ast.AST) -> list[str]:
    """Imports of unsafe modules; np.load without allow_pickle=False; eval/exec;
    yaml.load (not safe_load)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            found += [f"import {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = getattr(f.value, "id", "") if isinstance(f, ast.Attribute) else ""
            if name in ("eval", "exec") and not owner:
                found.append(f"{name}()")
            if name == "load" and owner == "yaml":
                found.append("yaml.load()")
            if name == "load" and owner in ("np", "numpy"):
                safe = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
                           and k.value.value is False for k in node.keywords)
                if not safe:
                    found.append("np.load() without allow_pickle=False")
            # rocksdict pickles values unless opened in raw mode: an Rdict gets options,
            # and every (rocksdict) Options is made with raw_mode=True.
            if name == "Rdict" and len(node.args) < 2 and not any(
                    k.arg == "options" for k in node.keywords):
                found.append("Rdict() without options")
            if name == "Options" and not any(
                    k.arg == "raw_mode" and isinstance(k.value, ast.Constant)
                    and k.value.value is True for k in node.keywords):
                found.append("Options() without raw_mode=True")
    return found


def test_unsafe_call_finder_finds_them() -> None:
    src = ("import pickle\nfrom cloudpickle import loads\nimport numpy as np\n"
           "np.load('x')\nnp.load('x', allow_pickle=True)\nnp.load('x', allow_pickle=False)\n"
           "eval('1')\nimport yaml\nyaml.load(s)\nyaml.safe_load(s)\n"
           "Rdict(p)\nRdict(p, Options())\nRdict(p, Options(raw_mode=True))\n"
           "Rdict(p, options=o)\n")
    assert unsafe_calls(ast.parse(src)) == [
        "import pickle", "import cloudpickle", "np.load() without allow_pickle=False",
        "np.load() without allow_pickle=False", "eval()", "yaml.load()",
        "Rdict() without options", "Options() without raw_mode=True"]


def test_no_pickle_or_eval_in_project_code() -> None:
    files = [p for d in CODE for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 30
    bad = {str(p.relative_to(ROOT)): found for p in files
           if (found := unsafe_calls(ast.parse(p.read_text(), str(p))))}
    assert bad == {}


def test_checkpoint_meta_refuses_pickled_objects() -> None:
    """A trainer checkpoint blob is .npz read with allow_pickle=False: a blob carrying a
    pickled object array (what an attacker would plant) is rejected, not executed."""
    from udfs.shard_state import pack_meta, unpack_meta

    buf = io.BytesIO()
    np.savez(buf, w=np.array([object()], dtype=object), __extra_json__=np.frombuffer(b"{}",
                                                                                     np.uint8))
    with pytest.raises(ValueError, match="allow_pickle"):
        unpack_meta(buf.getvalue())
    arrays, extra = unpack_meta(pack_meta({"w": np.ones(2)}, {"k": 1}))
    assert extra == {"k": 1} and arrays["w"].tolist() == [1.0, 1.0]


def security_config() -> Config:
    import json

    return load_config(path=None, environ={
        "FRESHET__KAFKA__BOOTSTRAP": "127.0.0.1:1",
        "FRESHET__KAFKA__CLIENT": json.dumps(SECURITY),
        "FRESHET__KAFKA__JAVA_CLIENT": json.dumps(JAVA)})


def test_kafka_security_settings_reach_librdkafka_and_flink_sql() -> None:
    from freshet.kafka import client_config
    from jobs.join import sql_params

    cfg = security_config()
    assert cfg.kafka.client == SECURITY  # from one environment variable (or freshet.toml)
    conf = client_config(cfg)  # producers, consumers, admin
    assert SECURITY.items() <= conf.items() and not set(JAVA) & set(conf)
    params = sql_params(cfg)
    for options in (params["source_options"], params["sink_options"]):
        for k, v in {**SECURITY, **JAVA}.items():
            assert f"'properties.{k}' = '{v}'" in options


def test_kafka_security_settings_reach_flink_datastream_connectors() -> None:
    """The trainer's KafkaSource and KafkaSink (Java objects) carry the settings."""
    from freshet.flink import _prepare_process, kafka_sink, kafka_source

    cfg = security_config()
    _prepare_process(cfg)

    def java_props(obj: object, field: str) -> dict[str, str]:
        j = obj.get_java_function()
        cls = j.getClass()
        while True:
            try:
                f = cls.getDeclaredField(field)
                break
            except Exception:
                cls = cls.getSuperclass()
        f.setAccessible(True)
        props = f.get(j)
        return {str(k): str(props.get(k)) for k in props.keySet()}

    source = java_props(kafka_source(cfg, "examples", "g", binary=True), "props")
    sink = java_props(kafka_sink(cfg, "params", binary=True), "kafkaProducerConfig")
    for props in (source, sink):
        assert {**SECURITY, **JAVA}.items() <= props.items(), props


# -- serving ---------------------------------------------------------------------------
def serving(cfg: Config, **settings: object) -> TestClient:
    from freshet.kafka import producer
    from jobs.serve import Server, create_app
    from ps.serving.synthetic import dense_messages, lr_weights, publish

    cfg = dataclasses.replace(cfg, serving=dataclasses.replace(cfg.serving, **settings))
    publish(producer(cfg), cfg.topics.name("params"),
            dense_messages(lr_weights(0.0), cfg.model.model_id, seq=1,
                           model_kind="lr"))
    server = Server(cfg)
    client = TestClient(create_app(server), raise_server_exceptions=False)
    client.__enter__()
    client.server = server
    deadline = time.monotonic() + 30
    while not client.get("/healthz").json()["ready"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return client


def test_serving_bounds_chunked_bodies_and_hides_internal_errors(cfg: Config) -> None:
    c = serving(cfg, max_body_bytes=1000, max_candidates=5)
    try:
        def chunks():  # no content-length: the limit must hold while streaming
            for _ in range(100):
                yield b" " * 100

        r = c.post("/rank", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]
        r = c.post("/rank", json={"user_id": 1, "candidates": [{"item_id": i} for i in range(6)]})
        assert r.status_code == 422 and "at most 5 items" in r.json()["detail"][0]["msg"]

        def boom(req: object) -> dict:
            raise RuntimeError("secret internals /srv/model")

        c.server.rank = boom
        r = c.post("/rank", json={"user_id": 1, "candidates": [{"item_id": 1}]})
        assert r.status_code == 500
        assert r.json() == {"detail": "internal error (logged by the server)"}
        assert "secret" not in r.text and "Traceback" not in r.text
    finally:
        c.__exit__(None, None, None)
