"""The one configuration shared by every Freshet job and command.

Defaults live in the dataclasses below. A TOML file overrides them (``freshet.toml``
in the working directory, or the path in ``FRESHET_CONFIG``), and environment
variables override the file: ``FRESHET__<SECTION>__<KEY>=value``, for example
``FRESHET__FLINK__PARALLELISM=2``.

Examples
--------
>>> cfg = load_config(path=None, environ={"FRESHET__JOINER__WINDOW_S": "30"})
>>> cfg.joiner.window_s
30.0
>>> cfg.topics.name("examples")
'freshet.examples'
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freshet.errors import ConfigError
from freshet.topics import ACTION_TYPES
from ps.config import CuckooTableConfig, Kinded, SlotConfig, TableConfig
from ps.signals import SignalSpec
from udfs.models.registry import model_kinds

ENV_PREFIX = "FRESHET__"


def _one_of(where: str, value: str, allowed: tuple[str, ...]) -> None:
    """Checked when a config is built, so a typo fails at load, not inside a job."""
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


DELIVERIES = ("exactly_once", "at_least_once")


@dataclass(frozen=True)
class KafkaConfig:
    # Empty means: use the embedded broker started by `freshet broker` (read from work_dir).
    bootstrap: str = ""
    # Passed verbatim to every client (librdkafka and Flink's Kafka connector), e.g.
    # {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", ...}.
    client: dict[str, str] = field(default_factory=dict)
    # Only for Flink's Java client, on top of `client`: its names differ for SASL and TLS
    # (sasl.jaas.config, ssl.truststore.*) and librdkafka rejects unknown keys.
    java_client: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BrokerConfig:
    """The embedded Apache Kafka broker (``freshet broker``)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: the port of its last start on data_dir, else a free one
    data_dir: str = "kafka"  # its log, under work_dir unless absolute; kept across restarts
    heap_mb: int = 512


@dataclass(frozen=True)
class TopicsConfig:
    prefix: str = "freshet."
    # `freshet topics` creates topics with these and adds partitions when one has fewer.
    partitions: dict[str, int] = field(
        default_factory=lambda: {
            "features": 4,
            "actions": 4,
            "examples": 4,
            "params": 1,
            "metrics": 1,
            "dead_letters": 1,
            "signals": 4,
            "features_signals": 4,
        }
    )

    def name(self, logical: str) -> str:
        from freshet.topics import TOPICS

        if logical not in TOPICS:
            raise KeyError(f"unknown topic {logical!r}; known: {sorted(TOPICS)}")
        return self.prefix + logical


@dataclass(frozen=True)
class FlinkConfig:
    # Empty: the embedded mini-cluster. "host:port": a Flink cluster's REST address.
    cluster: str = ""
    parallelism: int = 2
    checkpoint_interval_ms: int = 5000
    # Directory for checkpoints and Flink logs, under work_dir unless absolute.
    checkpoint_dir: str = "checkpoints"
    log_dir: str = "logs"


@dataclass(frozen=True)
class JoinerConfig:
    window_s: float = 60.0  # actions count if they arrive this long after the impression
    out_of_orderness_s: float = 5.0
    negative_sample_rate: float = 1.0  # fraction of negatives kept; positives always kept
    # Event timestamps further than this from the broker timestamp are dead-lettered.
    max_clock_skew_s: float = 7 * 24 * 3600.0
    # A message on the examples topic holds the examples of one shard (hash of the
    # request id) that reached the batching in one batch_interval (ingestion time).
    batch_shards: int = 16
    batch_interval_ms: int = 200
    # Online only: a source partition without records for this long stops holding back
    # the watermark (else one idle partition stalls every negative). Bounded runs never
    # use it: there, 10 s let backpressured partitions be marked idle, the watermark ran
    # ahead of them, and 76k actions went unmatched (MovieLens replay). 0: off.
    idle_timeout_s: float = 30.0
    # How long (processing time) after an impression's window a redelivered copy of it
    # is still recognised as a duplicate; bounds the deduplication state (state TTL).
    dedupe_retention_s: float = 600.0
    # "exactly_once": examples and dead letters are written in Kafka transactions that
    # commit with each checkpoint, so a restored joiner never writes an example twice;
    # readers see them once committed, up to checkpoint_interval_ms later.
    # "at_least_once": written at once; after a failure some may be written again.
    delivery: str = "exactly_once"
    checkpoint_interval_ms: int = 1000  # the joiner's (exactly-once commits on it)
    # Where the join's window state lives. "rocksdb" (on disk, incremental checkpoints)
    # holds windows of any length; "hashmap" keeps it on the JVM heap, which costs far
    # less CPU per event (docs/joiner.md) but must fit window_s x event rate x row size.
    state_backend: str = "rocksdb"
    # The logical topic the impressions are read from: "features_signals" joins the
    # statistics job's enriched impressions instead (a replay, docs/signals.md).
    features_topic: str = "features"

    def __post_init__(self) -> None:
        _one_of("joiner.delivery", self.delivery, DELIVERIES)
        _one_of("joiner.state_backend", self.state_backend, ("rocksdb", "hashmap"))
        _one_of("joiner.features_topic", self.features_topic, ("features", "features_signals"))


@dataclass(frozen=True)
class StatsConfig:
    """The statistics job (``freshet stats``, docs/signals.md): what ps.signals computes."""

    # Names from ps.signals.SIGNALS; each becomes a slot of that name.
    signals: list[str] = field(default_factory=lambda: list(SignalSpec().signals))
    half_life_s: float = SignalSpec().half_life_s
    recent_half_life_s: float = SignalSpec().recent_half_life_s
    prior: float = SignalSpec().prior  # pseudo-impressions at the prior rate
    history: int = SignalSpec().history  # items per user in hist_pos / hist_shown
    # A key not updated for this long (event time) starts again from zero; also the
    # job's SQL state TTL (processing time), which bounds its memory.
    ttl_s: float = SignalSpec().ttl_s
    category_slot: str = "genre"  # the impression slot whose IDs are the categories
    positive_actions: list[str] = field(default_factory=lambda: ["click"])
    like_action: str = "like"

    def __post_init__(self) -> None:
        if not self.signals:
            raise ConfigError("stats.signals: empty; name at least one of ps.signals.SIGNALS")
        try:
            self.spec()
        except ValueError as e:
            raise ConfigError(f"stats: {e}") from e
        for a in [*self.positive_actions, self.like_action]:
            _one_of("stats action", a, ACTION_TYPES)
        if not self.category_slot.replace("_", "").isalnum():
            raise ConfigError(f"stats.category_slot: {self.category_slot!r} is not a slot name")

    def spec(self) -> SignalSpec:
        """The reference definition of these signals (ps.signals.point_in_time)."""
        return SignalSpec(signals=tuple(self.signals), half_life_s=self.half_life_s,
                          recent_half_life_s=self.recent_half_life_s, prior=self.prior,
                          history=self.history, ttl_s=self.ttl_s)


def _default_slots() -> list[SlotConfig]:
    return [SlotConfig("user_id"), SlotConfig("item_id"), SlotConfig("genre")]


@dataclass(frozen=True)
class ModelConfig:
    model_id: str = "deepfm"
    kind: str = "deepfm"  # a registered dense model (udfs/models/registry.py)
    slots: list[SlotConfig] = field(default_factory=_default_slots)
    hidden: list[int] = field(default_factory=lambda: [64, 32])
    dense_learning_rate: float = 0.001
    # Multiplies the first-order column: its effective step is this x the slot's rate.
    first_order_scale: float = 5.0

    def __post_init__(self) -> None:
        _one_of("model.kind", self.kind, model_kinds())
        names = [s.name for s in self.slots]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"model.slots: slot names must differ; twice: {', '.join(twice)}")
        dims = {s.dim for s in self.slots}
        if len(dims) > 1:  # the dense model's input is (slots, dim)
            raise ConfigError(f"model.slots: every slot needs the same dim, got "
                              f"{', '.join(f'{s.name}={s.dim}' for s in self.slots)}")


@dataclass(frozen=True)
class SyncConfig:
    sparse_sync_interval_s: float = 1.0
    dense_sync_interval_s: float = 600.0
    max_part_bytes: int = 512 * 1024  # larger updates are split into parts
    # The params topic: "at_least_once" (readers drop re-deliveries by seq) or
    # "exactly_once" (transactions committed with the trainer's checkpoints, which then
    # add up to flink.checkpoint_interval_ms to freshness; docs/reliability.md).
    params_delivery: str = "at_least_once"

    def __post_init__(self) -> None:
        _one_of("sync.params_delivery", self.params_delivery, DELIVERIES)


ORDERS = ("arrival", "event_time")


@dataclass(frozen=True)
class TrainConfig:
    # Trainer shards (operator parallelism). 1 trains exactly; >1: docs/training.md.
    parallelism: int = 1
    # Examples per optimizer step inside a message: smaller is fresher (higher
    # progressive AUC on MovieLens), larger is faster (docs/training.md has the curve).
    micro_batch: int = 32
    # First-order weights step after every example inside a micro-batch (factors and
    # dense weights once per micro-batch): udfs/first_order.py. MovieLens, micro-batch
    # 32: progressive AUC 0.742 -> 0.764 (docs/training.md).
    first_order_per_example: bool = True
    eval_window_examples: int = 10_000  # examples per progressive-evaluation window (metrics topic)
    tf_threads: int = 1  # TensorFlow intra/inter-op threads per trainer process
    # The table of every slot that names none (model.slots[].table): {kind = "cuckoo"}
    # (collisionless) or {kind = "hashed", rows = N} (N rows per slot; IDs share a row
    # by hash). ps.config.table_kinds() lists the kinds.
    table: TableConfig = field(default_factory=CuckooTableConfig)
    seed: int = 0
    # Batches appended to the state's delta log before it is compacted into a snapshot.
    compact_every: int = 256
    snapshot_dir: str = "snapshots"  # replay writes its model here (under work_dir)
    # Python bundle length for the trainer. Outputs (params) leave at bundle ends, so
    # this adds to freshness: 1000 ms gave freshness p99 6.8 s, 100 ms 3.2 s, at the same
    # examples/s on a quiet machine (21.5k vs 21.9k; +12% for 1000 ms under load).
    bundle_time_ms: int = 100
    # The order examples are trained and scored in (udfs/hold.py):
    # - "arrival": as they come, the freshest; the joiner emits a positive when its
    #   action arrives and a negative when its window closes, so the progressive
    #   figure is then reported as arrival-order (it rewards that order, docs/training.md);
    # - "event_time": each example is held until the joiner has decided every example
    #   of its event time (the Flink watermark of the examples topic), then trained in
    #   event-time order, so it is scored by the model as it stood at its event time.
    #   Costs positives the join window in freshness. Bounded replays always use it.
    order: str = "arrival"
    # event_time only: an example held this long (wall clock) is trained regardless, so
    # a stalled watermark cannot stall training. 0: no limit.
    max_hold_s: float = 0.0
    # Examples are trained together once at least batch_examples are ready, or once the
    # oldest has waited batch_wait_ms: the trainer's cost is per call (decoding, a state
    # write), so this keeps its rate whatever size the joiner's messages are, at a cost
    # in freshness of at most batch_wait_ms.
    batch_examples: int = 512
    batch_wait_ms: int = 100
    # event_time, online: an examples partition without messages this long stops
    # holding the watermark back (the joiner may leave partitions idle at low traffic).
    idle_partition_s: float = 5.0

    def __post_init__(self) -> None:
        _one_of("train.order", self.order, ORDERS)


@dataclass(frozen=True)
class ServingConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_candidates: int = 1000
    max_body_bytes: int = 1 << 20
    dense_gate_margin: float = 0.01  # reject a dense update whose AUC drops more than this
    gate_window_examples: int = 10_000  # newest labelled examples the gate evaluates on
    gate_min_examples: int = 200  # fewer: a dense update is accepted unvalidated (and says so)
    store_dir: str = "serving"  # the serving store (ServingStore), under work_dir unless absolute
    store_interval_s: float = 5.0
    demotion_window_s: float = 0.0  # items shown to the user this recently are demoted; 0: off
    demotion_factor: float = 0.5  # score multiplier for a demoted item
    log_impressions: bool = True  # log each returned item to the features topic
    precision: str = "fp32"  # serving table values: fp32 | fp16 (half the memory)
    # Fresh signals (stats.signals that are model slots, docs/signals.md): the serving
    # log waits this long for earlier events before it is folded, and a (re)started
    # server rebuilds them from the topics since this long ago (0: all they keep).
    signals_lateness_ms: int = 500
    signals_rebuild_s: float = 0.0


@dataclass(frozen=True)
class Config:
    work_dir: str = ".freshet"
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    flink: FlinkConfig = field(default_factory=FlinkConfig)
    joiner: JoinerConfig = field(default_factory=JoinerConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir).resolve()

    def path(self, relative: str) -> Path:
        """A path under the work dir (absolute paths are kept)."""
        p = Path(relative)
        return p if p.is_absolute() else self.work_path / p

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Config:
        return _build(Config, json.loads(text), "")

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # only `X | None` is used
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(inner, value, where)
    if isinstance(tp, type) and issubclass(tp, Kinded):
        value = _table(value, where)
        kinds = tuple(sorted(tp.kinds))
        if "kind" not in value:
            raise ConfigError(f"{where}.kind: missing; one of {', '.join(kinds)}")
        _one_of(f"{where}.kind", value["kind"], kinds)
        params = {k: v for k, v in value.items() if k != "kind"}
        return _build(tp.kinds[value["kind"]], params, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, _table(value, where), where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = _json(value, where, "list", list)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, vt = typing.get_args(tp)
        if isinstance(value, str):
            value = _json(value, where, "table", dict)
        return {str(k): _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected a boolean, got {value!r}")
        return bool(value)
    try:
        return tp(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from e


def _table(value: Any, where: str) -> Mapping[str, Any]:
    """A config section: a TOML table, or the JSON of one (an environment variable)."""
    if isinstance(value, str):
        value = _json(value, where, "table", dict)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table, got {value!r}")
    return value


def _json(text: str, where: str, kind: str, tp: type) -> Any:
    """A list or table given as text: an environment variable's JSON.

    Examples
    --------
    >>> _json('[1, 2]', "model.hidden", "list", list)
    [1, 2]
    >>> _json("user_id,item_id", "model.slots", "list", list)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    freshet.errors.ConfigError: model.slots (FRESHET__MODEL__SLOTS): expected a JSON list ...
    """
    name = ENV_PREFIX + where.upper().replace(".", "__")
    example = "[1, 2]" if tp is list else '{"a": 1}'
    wanted = f"{where} ({name}): expected a JSON {kind} such as {example}, got {text!r}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{wanted} ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(value, tp):
        raise ConfigError(wanted)
    return value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        known = ", ".join(f.name for f in dataclasses.fields(cls) if f.init)
        raise ConfigError(f"{where or 'config'}: unknown keys {sorted(unknown)}; known: {known}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}".lstrip(".")) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        # ps's configs check their values and say "field: must be ...": add the path.
        field_name, sep, rest = str(e).partition(": ")
        if sep and field_name in names:
            raise ConfigError(f"{where}.{field_name}: {rest}".lstrip(".")) from None
        raise ConfigError(f"{where or 'config'}: {e}") from None


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(
    path: str | os.PathLike[str] | None = "freshet.toml",
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Defaults, then the TOML file (if it exists), then ``FRESHET__`` variables."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = dataclasses.asdict(Config())
    path = environ.get("FRESHET_CONFIG", path)
    if path is not None and Path(path).exists():
        with open(path, "rb") as f:
            try:
                data = _merge(data, tomllib.load(f))
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{path}: {e}") from e
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = data
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"{key}: no section {p!r}")
            node = node[p]
        node[parts[-1]] = value
    return _build(Config, data, "")
