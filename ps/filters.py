"""Admission filters: which unseen IDs get a row.

Most IDs in a recommendation stream are seen once and never again; giving each a
row wastes memory and trains nothing. Monolith admits an ID only once it has been
seen ``min_count`` times (an occurrence filter), and/or with probability ``p``
(a probabilistic filter). Filtered IDs read the default (zero) embedding and
receive no update.

The occurrence filter is a count-min sketch with conservative update: ``depth``
rows of ``width`` saturating uint8 counters, a fixed few MiB however many IDs
stream by. Counts only ever over-estimate, so an ID seen ``min_count`` times is
always admitted; a one-off ID is wrongly admitted only if all its ``depth``
counters were already raised by others. To keep that rare on an endless stream,
every ``reset_every`` additions (default ``width / 2``) all counters are halved
(TinyLFU's reset), so the sketch remembers roughly the last ``reset_every``
sightings of not-yet-admitted IDs. With depth 4 that wrongly admits about 0.5% of
one-off IDs (4% at ``reset_every = width``, 0.05% at ``width / 4``; measured).

Examples
--------
>>> import numpy as np
>>> f = CountMinSketch(width=1024, depth=4)
>>> f.add(np.array([7, 7, 9])).tolist()   # estimated count after each sighting
[1, 2, 1]
>>> f.add(np.array([9])).tolist()
[2]
>>> AdmissionFilter(min_count=2, admit_prob=1.0).admit(np.array([5, 6, 5])).tolist()
[True, False, True]
"""

from __future__ import annotations

import json

import numpy as np
from numba import njit

from ps.hashing import mix64

_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(cache=True, nogil=True)
def _cms_add(table, seed, ids, out):  # noqa: ANN001 - numba kernel
    depth, width = table.shape
    mask = np.uint64(width - 1)
    for i in range(ids.shape[0]):
        h = mix64(np.uint64(ids[i]) ^ seed)
        h1 = h & _MASK32
        h2 = (h >> _S32) | np.uint64(1)
        est = 255
        for d in range(depth):  # Kirsch-Mitzenmacher: index_d = h1 + d * h2
            est = min(est, np.int64(table[d, (h1 + np.uint64(d) * h2) & mask]))
        new = min(est + 1, 255)
        for d in range(depth):  # conservative update: raise only counters below new
            idx = (h1 + np.uint64(d) * h2) & mask
            if table[d, idx] < new:
                table[d, idx] = new
        out[i] = new


class CountMinSketch:
    """Approximate sighting counts in ``depth * width`` bytes (``width`` a power of 2)."""

    def __init__(
        self, width: int = 1 << 20, depth: int = 4, seed: int = 0, reset_every: int | None = None
    ) -> None:
        if width < 1 or width & (width - 1):
            raise ValueError("width must be a power of two")
        self.table = np.zeros((depth, width), dtype=np.uint8)
        self.seed = seed
        self.reset_every = reset_every or max(width // 2, 1)
        self.additions = 0  # since the last halving

    def add(self, ids: np.ndarray) -> np.ndarray:
        """Count one sighting of each ID (repeats count again); returns the estimates."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        out = np.empty(len(ids), dtype=np.int64)
        _cms_add(self.table, np.uint64(self.seed), ids, out)
        self.additions += len(ids)
        if self.additions >= self.reset_every:
            self.table >>= 1
            self.additions = 0
        return out

    @property
    def nbytes(self) -> int:
        return self.table.nbytes


class AdmissionFilter:
    """Occurrence threshold plus admission probability, as configured per slot.

    Parameters
    ----------
    min_count : int
        Sightings before an ID is admitted (1: no counting, no sketch memory).
    admit_prob : float
        Probability an ID that passed the count is admitted (retried at each sighting).
    width, depth : int
        Count-min sketch shape (used only when ``min_count > 1``).
    seed : int
        Seeds both the sketch hash and the coin.
    """

    def __init__(
        self,
        min_count: int = 1,
        admit_prob: float = 1.0,
        width: int = 1 << 20,
        depth: int = 4,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= admit_prob <= 1.0:
            raise ValueError("admit_prob must be in [0, 1]")
        self.min_count = int(min_count)
        self.admit_prob = float(admit_prob)
        self.sketch = CountMinSketch(width, depth, seed) if self.min_count > 1 else None
        self.rng = np.random.default_rng(seed)

    @property
    def admits_all(self) -> bool:
        return self.sketch is None and self.admit_prob >= 1.0

    def admit(self, ids: np.ndarray) -> np.ndarray:
        """Record one sighting of each ID; bool mask of those admitted now.

        Repeats of an ID within the batch all count, and all get the same answer.
        """
        if self.admits_all:
            return np.ones(len(ids), dtype=bool)
        uniq, inverse = np.unique(ids, return_inverse=True)
        ok = np.ones(len(uniq), dtype=bool)
        if self.sketch is not None:
            counts = self.sketch.add(ids)  # per sighting; the last one is the highest
            best = np.zeros(len(uniq), dtype=np.int64)
            np.maximum.at(best, inverse, counts)
            ok &= best >= self.min_count
        if self.admit_prob < 1.0:
            ok &= self.rng.random(len(uniq)) < self.admit_prob
        return ok[inverse]

    @property
    def nbytes(self) -> int:
        return self.sketch.nbytes if self.sketch is not None else 0

    # -- snapshot state (no pickle: arrays and JSON) ------------------------------
    def state(self) -> tuple[np.ndarray, str]:
        """``(sketch counters, JSON of the rest)`` for snapshots."""
        table = self.sketch.table if self.sketch is not None else np.zeros((0, 0), np.uint8)
        meta = {
            "additions": self.sketch.additions if self.sketch is not None else 0,
            "rng": self.rng.bit_generator.state,
        }
        return table, json.dumps(meta)

    def load_state(self, table: np.ndarray, meta_json: str) -> None:
        meta = json.loads(meta_json)
        if self.sketch is not None:
            if table.shape != self.sketch.table.shape:
                raise ValueError(f"sketch shape {table.shape} != {self.sketch.table.shape}")
            self.sketch.table[:] = table
            self.sketch.additions = int(meta["additions"])
        self.rng.bit_generator.state = meta["rng"]
