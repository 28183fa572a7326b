"""What one slot is configured with: dimension, optimizer, admission, expiry.

The library's own configuration; the application's config (``freshet.config``)
holds a list of these under ``model.slots``, with the same TOML and environment keys.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE_BACKENDS = ("cuckoo", "hashed")  # ps.slot.make_table
OPTIMIZERS = ("sgd", "adagrad", "ftrl")  # ps.optimizers.make_optimizer


@dataclass(frozen=True)
class SlotConfig:
    name: str
    dim: int = 16
    optimizer: str = "adagrad"  # sgd | adagrad | ftrl
    # MovieLens-100K, walk-forward: 0.1 with first_order_scale 5 scored 0.765 against
    # 0.747 for 0.05 and 1 (`freshet tune` finds the best for your data).
    learning_rate: float = 0.1
    init_std: float = 0.01
    ttl_s: float = 0.0  # 0: never expire
    min_count: int = 1  # occurrence threshold before an ID gets a row
    admit_prob: float = 1.0  # probability an unseen ID is admitted
    # Optimizer details (see ps/optimizers.py).
    initial_accumulator: float = 0.1  # adagrad
    ftrl_beta: float = 1.0
    ftrl_l1: float = 0.0
    ftrl_l2: float = 0.0
    # Occurrence filter sketch (used when min_count > 1): depth x width uint8 counters.
    filter_width: int = 1 << 20
    filter_depth: int = 4
