"""How one trainer shard's model lives in Flink keyed state, written once per batch.

Two entries per shard key:

- ``log`` (list state of Arrow IPC blobs): a snapshot of every row (in chunks) and of
  the admission filters, followed by one entry per trained batch holding the rows that
  batch touched, with their optimizer state (and, when a slot has a filter, an entry
  with that batch's filter calls, replayed on restore). Appending is cheap; every
  ``compact_every`` batches the log is replaced by a fresh snapshot, so a restore
  replays a bounded log.
- ``held`` (list state of examples messages), in event-time order only
  (:mod:`udfs.hold`): every message since the list was last rewritten; with the
  hold's bookkeeping in ``meta`` it tells which examples are still held.
- ``meta`` (value state, one ``.npz`` blob, overwritten per batch): dense weights and
  Adam state, evaluation histograms, the ledger, sync sequence numbers, the row
  initialisers' RNG state, and the log bookkeeping.

A batch's log entry and meta are written in the same call that trains it, so a Flink
checkpoint holds exactly the batches before its barrier: with the source offsets in
the same checkpoint, a restore trains every example once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

_EXTRA = "__extra_json__"


class StateStore(Protocol):
    """The keyed state of one shard (Flink's, or :class:`MemoryState` in tests)."""

    def log(self) -> Iterable[bytes]: ...
    def append_log(self, blob: bytes) -> None: ...
    def replace_log(self, blobs: list[bytes]) -> None: ...
    def meta(self) -> bytes | None: ...
    def put_meta(self, blob: bytes) -> None: ...
    def held(self) -> Iterable[bytes]: ...
    def append_held(self, blob: bytes) -> None: ...
    def replace_held(self, blobs: list[bytes]) -> None: ...


@dataclass
class MemoryState:
    """A :class:`StateStore` in memory: copy it to simulate a checkpoint."""

    entries: list[bytes] = field(default_factory=list)
    meta_blob: bytes | None = None
    held_blobs: list[bytes] = field(default_factory=list)

    def log(self) -> Iterable[bytes]:
        return list(self.entries)

    def append_log(self, blob: bytes) -> None:
        self.entries.append(blob)

    def replace_log(self, blobs: list[bytes]) -> None:
        self.entries = list(blobs)

    def meta(self) -> bytes | None:
        return self.meta_blob

    def put_meta(self, blob: bytes) -> None:
        self.meta_blob = blob

    def held(self) -> Iterable[bytes]:
        return list(self.held_blobs)

    def append_held(self, blob: bytes) -> None:
        self.held_blobs.append(blob)

    def replace_held(self, blobs: list[bytes]) -> None:
        self.held_blobs = list(blobs)


def pack_meta(arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> bytes:
    """Arrays plus JSON-able ``extra`` in one ``.npz`` blob (no pickle).

    Examples
    --------
    >>> a, e = unpack_meta(pack_meta({"w": np.arange(3)}, {"seq": 7}))
    >>> a["w"].tolist(), e
    ([0, 1, 2], {'seq': 7})
    """
    buf = io.BytesIO()
    blob = np.frombuffer(json.dumps(extra).encode(), np.uint8)
    np.savez(buf, **arrays, **{_EXTRA: blob})
    return buf.getvalue()


def unpack_meta(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != _EXTRA}
        extra = json.loads(z[_EXTRA].tobytes().decode())
    return arrays, extra
