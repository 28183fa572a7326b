"""What one slot is configured with: its table, optimizer, admission and expiry policies.

The library's own configuration, one small frozen dataclass per policy, each checking
its values when it is made (``ValueError`` naming the bad value) and making the object
it configures. The application's config (``freshet.config``) holds a list of
:class:`SlotConfig` under ``model.slots``; in TOML::

    [[model.slots]]
    name = "genre"
    dim = 8
    optimizer = {kind = "ftrl", learning_rate = 0.1, l1 = 0.01}
    admission = {min_count = 2}
    expiry = {ttl_s = 86400}
    table = {kind = "hashed", rows = 4096}   # else the trainer's train.table

Tables and optimizers have several kinds, told apart by ``kind``; each kind is a
config class in a registry (:func:`ps.registry.register_table` and
:func:`~ps.registry.register_optimizer` add one), so a new one is added without editing
a chain of ifs, and is run through the conformance checks of :mod:`ps.checks` when it
is registered. This module imports no NumPy: every
command loads the config, and only the ``build`` methods import the kernels.

Examples
--------
>>> slot = SlotConfig("genre", dim=8, optimizer=FTRLConfig(l1=0.01),
...                   admission=AdmissionConfig(min_count=2))
>>> slot.optimizer
FTRLConfig(learning_rate=0.1, beta=1.0, l1=0.01, l2=0.0)
>>> optimizer_kinds(), table_kinds()
(('adagrad', 'ftrl', 'sgd'), ('cuckoo', 'hashed'))
>>> optimizer_config("adam")
Traceback (most recent call last):
...
ValueError: kind: 'adam' is not one of adagrad, ftrl, sgd
>>> AdmissionConfig(admit_prob=1.5)
Traceback (most recent call last):
...
ValueError: admit_prob: must be in [0, 1], got 1.5
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from ps.filters import AdmissionFilter
    from ps.optimizers import Optimizer
    from ps.table.base import Table


def _require(ok: bool, name: str, wanted: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name}: must be {wanted}, got {value!r}")


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)


def _int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive(name: str, value: float) -> None:
    _require(_real(value) and value > 0, name, "a finite number > 0", value)


def _non_negative(name: str, value: float) -> None:
    _require(_real(value) and value >= 0, name, "a finite number >= 0", value)


class Kinded:
    """A policy with several kinds, told apart by the ``kind`` key.

    Each base (:class:`TableConfig`, :class:`OptimizerConfig`) holds a registry of its
    config classes by ``kind``; ``freshet.config`` builds the class that the ``kind``
    key of a TOML table names. ``kind`` is a field (fixed per class, not an argument)
    so that ``dataclasses.asdict`` writes it and a config read back is the same.
    ``check_params`` are the parameter sets the conformance checks build it with.
    """

    kind: str
    kinds: ClassVar[dict[str, type]]
    check_params: ClassVar[tuple[Mapping[str, Any], ...]] = ({},)

    @classmethod
    def of_kind(cls, kind: str) -> type:
        """The registered class of ``kind``; ``ValueError`` naming the known ones."""
        if kind not in cls.kinds:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(sorted(cls.kinds))}")
        return cls.kinds[kind]


def _kind(name: str) -> Any:
    return field(default=name, init=False, repr=False)


# -- tables ---------------------------------------------------------------------------
class TableConfig(Kinded):
    """Which index holds a slot's rows. ``build(width, seed)`` makes the table."""

    kinds: ClassVar[dict[str, type]] = {}

    def build(self, width: int, seed: int) -> Table:
        raise NotImplementedError


@dataclass(frozen=True)
class CuckooTableConfig(TableConfig):
    """Collisionless cuckoo hashing that grows with the IDs (:mod:`ps.table.cuckoo`)."""

    kind: str = _kind("cuckoo")

    def build(self, width: int, seed: int) -> Table:
        """
        >>> CuckooTableConfig().build(width=3, seed=0).collisionless
        True
        """
        from ps.table.cuckoo import CuckooTable

        return CuckooTable(width, seed=seed)


@dataclass(frozen=True)
class HashedTableConfig(TableConfig):
    """``rows`` fixed rows, ``row = hash(id) mod rows``; IDs may share a row
    (:mod:`ps.table.hashed`, the hashing-trick baseline)."""

    rows: int = 0
    kind: str = _kind("hashed")
    check_params: ClassVar[tuple[Mapping[str, Any], ...]] = ({"rows": 64}, {"rows": 1 << 16})

    def __post_init__(self) -> None:
        _require(_int(self.rows) and self.rows >= 1, "rows",
                 "an int >= 1 (the slot table's fixed row count)", self.rows)

    def build(self, width: int, seed: int) -> Table:
        """
        >>> HashedTableConfig(rows=8).build(width=3, seed=0).n_rows
        8
        """
        from ps.table.hashed import HashedTable

        return HashedTable(width, self.rows, seed=seed)


# -- optimizers -----------------------------------------------------------------------
# MovieLens-100K, walk-forward: learning rate 0.1 with first_order_scale 5 scored 0.765
# against 0.747 for 0.05 and 1 (`freshet tune` finds the best for your data).
_LEARNING_RATE = 0.1


class OptimizerConfig(Kinded):
    """How a slot's rows step: hyperparameters, and what the kernel needs of them.

    ``build()`` makes the in-table optimizer (:class:`ps.optimizers.Optimizer`), which
    runs branch ``code`` of the one update kernel (:func:`ps.optimizers.step`) with
    ``hyper()``. Each weight has ``len(initial_state())`` state floats (at most two),
    starting at those values, so a row is ``dim * (1 + len(initial_state()))`` wide.
    """

    kinds: ClassVar[dict[str, type]] = {}
    code: ClassVar[int]
    learning_rate: float

    def __post_init__(self) -> None:
        _positive("learning_rate", self.learning_rate)

    def hyper(self) -> tuple[float, float, float, float]:
        """What the kernel reads: ``(learning rate, beta, l1, l2)``."""
        return (self.learning_rate, 0.0, 0.0, 0.0)

    def initial_state(self) -> tuple[float, ...]:
        """Each weight's state when its row is created."""
        return ()

    def build(self) -> Optimizer:
        """
        >>> AdagradConfig(learning_rate=0.2).build().state_width(dim=4)
        4
        """
        from ps.optimizers import Optimizer

        return Optimizer(self.kind, self.code, self.hyper(), self.initial_state())


@dataclass(frozen=True)
class SGDConfig(OptimizerConfig):
    """``w -= learning_rate * g``; no state."""

    learning_rate: float = _LEARNING_RATE
    kind: str = _kind("sgd")
    code: ClassVar[int] = 0


@dataclass(frozen=True)
class AdagradConfig(OptimizerConfig):
    """``acc += g^2; w -= learning_rate * g / sqrt(acc)``, ``acc`` starting at
    ``initial_accumulator``."""

    learning_rate: float = _LEARNING_RATE
    initial_accumulator: float = 0.1
    kind: str = _kind("adagrad")
    code: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative("initial_accumulator", self.initial_accumulator)

    def initial_state(self) -> tuple[float, ...]:
        return (self.initial_accumulator,)


@dataclass(frozen=True)
class FTRLConfig(OptimizerConfig):
    """FTRL-proximal (McMahan et al. 2013, as TensorFlow's ``Ftrl``): ``learning_rate``
    is its alpha; ``l1 > 0`` drives rarely-useful weights to exactly zero. State:
    ``z, n``, both starting at 0."""

    learning_rate: float = _LEARNING_RATE
    beta: float = 1.0
    l1: float = 0.0
    l2: float = 0.0
    kind: str = _kind("ftrl")
    code: ClassVar[int] = 2
    check_params: ClassVar[tuple[Mapping[str, Any], ...]] = (
        {}, {"learning_rate": 0.3, "beta": 0.5, "l1": 0.05, "l2": 0.1})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("beta", "l1", "l2"):
            _non_negative(name, getattr(self, name))

    def hyper(self) -> tuple[float, float, float, float]:
        return (self.learning_rate, self.beta, self.l1, self.l2)

    def initial_state(self) -> tuple[float, ...]:
        return (0.0, 0.0)


# -- admission and expiry -------------------------------------------------------------
@dataclass(frozen=True)
class AdmissionConfig:
    """Which unseen IDs get a row (:mod:`ps.filters`).

    Parameters
    ----------
    min_count : int
        Sightings before an ID gets a row (1: at once, no sketch).
    admit_prob : float
        Probability that an ID which passed the count is admitted (tried at each sighting).
    sketch_width, sketch_depth : int
        The occurrence counts' count-min sketch, ``depth x width`` bytes (only with
        ``min_count > 1``); it remembers about ``width / 2`` sightings of IDs not yet
        admitted, so raise the width for IDs that recur slowly.
    """

    min_count: int = 1
    admit_prob: float = 1.0
    sketch_width: int = 1 << 20
    sketch_depth: int = 4

    def __post_init__(self) -> None:
        _require(_int(self.min_count) and 1 <= self.min_count <= 255, "min_count",
                 "an int in [1, 255] (the sketch's counters are bytes)", self.min_count)
        _require(_real(self.admit_prob) and 0 <= self.admit_prob <= 1,
                 "admit_prob", "in [0, 1]", self.admit_prob)
        w = self.sketch_width
        _require(_int(w) and w >= 1 and w & (w - 1) == 0, "sketch_width",
                 "a power of two", w)
        _require(_int(self.sketch_depth) and self.sketch_depth >= 1,
                 "sketch_depth", "an int >= 1", self.sketch_depth)

    def build(self, seed: int) -> AdmissionFilter:
        """
        >>> AdmissionConfig(min_count=2, sketch_width=64).build(seed=0).nbytes
        256
        """
        from ps.filters import AdmissionFilter

        return AdmissionFilter(self.min_count, self.admit_prob, self.sketch_width,
                               self.sketch_depth, seed)


@dataclass(frozen=True)
class ExpiryConfig:
    """Rows not updated for ``ttl_s`` seconds (event time) are deleted; 0: never.

    The policy is this rule, so it is its own object:

    >>> ExpiryConfig(ttl_s=10).expired(stamp=1.0, now=12.0), ExpiryConfig().enabled
    (True, False)
    """

    ttl_s: float = 0.0

    def __post_init__(self) -> None:
        _non_negative("ttl_s", self.ttl_s)

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def expired(self, stamp: Any, now: float) -> Any:
        """Whether a row last updated at ``stamp`` (a float or an array) has expired."""
        return stamp < now - self.ttl_s


# -- the slot -------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotConfig:
    """One feature group (``user_id``, ``genre``...): its embedding and policies.

    Parameters
    ----------
    name : str
        The slot's name in the events (``Example.slots``).
    dim : int
        Embedding width (column 0 is the first-order weight).
    init_std : float
        New rows' embeddings are drawn from ``N(0, init_std)``.
    optimizer : OptimizerConfig
        How its rows step (default: Adagrad, learning rate 0.1).
    table : TableConfig or None
        Its own table; None: the collection's, which the trainer takes from
        ``train.table``. Serving lays every slot out its own way (values only).
    admission : AdmissionConfig
        Which unseen IDs get a row (default: all).
    expiry : ExpiryConfig
        When idle rows are deleted (default: never).
    boundaries : list of float
        Non-empty: a numeric input (a price, an affinity). Its values are numbers and
        each becomes the ID of its bucket, :meth:`bucket`, where values enter Freshet
        (the ranking API, ``freshet produce file``), so the events, the trainer and the
        served model all see the same IDs. Strictly increasing; empty: an ID slot.

    Examples
    --------
    >>> SlotConfig("genre", dim=8, expiry=ExpiryConfig(ttl_s=3600)).expiry.enabled
    True
    >>> price = SlotConfig("price", boundaries=[10.0, 50.0, 100.0])
    >>> price.bucket([3.5, 10.0, 99.9, 250.0])
    [0, 1, 2, 3]
    >>> SlotConfig("genre", optimizer="ftrl")
    Traceback (most recent call last):
    ...
    TypeError: optimizer: must be an instance of OptimizerConfig, got 'ftrl'
    """

    name: str
    dim: int = 16
    init_std: float = 0.01
    optimizer: OptimizerConfig = field(default_factory=AdagradConfig)
    table: TableConfig | None = None
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    expiry: ExpiryConfig = field(default_factory=ExpiryConfig)
    boundaries: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and self.name != "", "name", "a non-empty string",
                 self.name)
        b = self.boundaries
        _require(isinstance(b, (list, tuple)) and all(_real(v) and math.isfinite(v) for v in b)
                 and all(x < y for x, y in zip(b, b[1:], strict=False)),
                 "boundaries", "a strictly increasing list of finite numbers", b)
        _require(_int(self.dim) and self.dim >= 1, "dim", "an int >= 1", self.dim)
        _non_negative("init_std", self.init_std)
        for name, base in (("optimizer", OptimizerConfig), ("table", TableConfig),
                           ("admission", AdmissionConfig), ("expiry", ExpiryConfig)):
            value = getattr(self, name)
            if not isinstance(value, base) and not (name == "table" and value is None):
                raise TypeError(f"{name}: must be an instance of {base.__name__}, got {value!r}")

    @property
    def numeric(self) -> bool:
        """Whether the slot's values are numbers bucketised by :attr:`boundaries`."""
        return bool(self.boundaries)

    def bucket(self, values: Any) -> list[int]:
        """The IDs of a numeric slot's values: the number of boundaries <= each value.

        So ``len(boundaries) + 1`` IDs, 0 for values below the first boundary. A value
        that is not a finite number raises ``ValueError`` naming the slot.
        """
        out = []
        for v in values:
            if isinstance(v, bool) or not _real(v):
                raise ValueError(f"slot {self.name}: {v!r} is not a finite number "
                                 f"(a numeric slot, boundaries {self.boundaries})")
            out.append(bisect.bisect_right(self.boundaries, v))
        return out


# -- registries -----------------------------------------------------------------------
K = TypeVar("K", bound=type)


def add_kind(base: type[Kinded], cls: K) -> K:
    """Put ``cls`` in ``base``'s registry under its ``kind``, unchecked.

    :func:`ps.registry.register_table` and :func:`~ps.registry.register_optimizer`
    run the conformance checks first: use those.
    """
    if not (dataclasses.is_dataclass(cls) and issubclass(cls, base)):
        raise TypeError(f"{cls!r} is not a dataclass subclass of {base.__name__}")
    kind = cls.kind
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__} needs a kind (a field with a default and init=False)")
    if base.kinds.get(kind, cls) is not cls:
        raise ValueError(f"kind {kind!r} is already registered as {base.kinds[kind].__name__}")
    base.kinds[kind] = cls
    return cls


def table_kinds() -> tuple[str, ...]:
    """Every registered table ``kind``, sorted.

    >>> table_kinds()
    ('cuckoo', 'hashed')
    """
    return tuple(sorted(TableConfig.kinds))


def optimizer_kinds() -> tuple[str, ...]:
    """Every registered optimizer ``kind``, sorted.

    >>> optimizer_kinds()
    ('adagrad', 'ftrl', 'sgd')
    """
    return tuple(sorted(OptimizerConfig.kinds))


def table_config(kind: str, **params: Any) -> TableConfig:
    """The table config of ``kind`` with ``params``.

    >>> table_config("hashed", rows=100)
    HashedTableConfig(rows=100)
    """
    return TableConfig.of_kind(kind)(**params)


def optimizer_config(kind: str, **params: Any) -> OptimizerConfig:
    """The optimizer config of ``kind`` with ``params``.

    >>> optimizer_config("sgd", learning_rate=0.5)
    SGDConfig(learning_rate=0.5)
    """
    return OptimizerConfig.of_kind(kind)(**params)


# The built-in kinds. tests/ps/test_conformance.py runs every check on every registered
# kind; running them here would load numba at every config load.
for _cls in (CuckooTableConfig, HashedTableConfig):
    add_kind(TableConfig, _cls)
for _cls in (SGDConfig, AdagradConfig, FTRLConfig):
    add_kind(OptimizerConfig, _cls)
del _cls
