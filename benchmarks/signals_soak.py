"""Soak of the fresh signals' state (issue 21): does its memory plateau under the TTL?

Run ``python -m benchmarks.signals_soak [--users N --ttls K --no-ttl --control-users M]``.
Progress lines go to stderr; the last line printed on stdout is one JSON object.

A :meth:`server.signals.SignalFeed.offline` (so its item -> categories map and its
lateness buffer count too) is fed, through :meth:`~server.signals.SignalFeed.add`, a
synthetic serving log in event-time order, as :class:`freshet.topics.Impression` and
:class:`~freshet.topics.Action` records:

- ``--users`` distinct users, each active for a short span: ``--pool`` users are active
  at a time, each impression goes to one of them at random, and new users replace
  active ones at a steady pace, so that there are ``--impressions-per-user`` impressions
  per user on average (every user at least one). A user's span is about ``pool *
  impressions_per_user`` impressions, a few minutes of event time by default;
- items drawn from a ``--catalogue`` with a popular head (``catalogue * r**3``, ``r``
  uniform), each with one to three (1.7 on average) of 50 categories in the
  impression's ``genre`` slot (more than ``max_items``, so the feed's map fills up);
- a click on an impression with probability ``--click-rate``, half a step after it;
- event time advancing ``--step-ms`` per impression; the spec's ``ttl_s`` is the run's
  span over ``--ttls``, so that many TTLs pass. Signals: the spec's defaults plus
  ``hist_pos``, ``hist_shown`` and ``ucat_rate``: every kind of counter (item, user,
  category, (user, category), global) and both histories.

Every run's ``--samples`` samples record the events folded, the keys held
(``len(feed.state)``), per entity, the users with a history, the feed's item map and the
RSS (``VmRSS``). ``keys_50``/``keys_100`` are the most keys held in the ``ttl_s / 8`` of
event time that ends at 50% / 100% of the run (the peak of a window, so that one sample's
luck does not decide the verdict). ``bounded``: ``keys_100 <= 1.1 keys_50`` and
``plateau = rss_100 / rss_50 <= 1.15``. ``events_per_s`` is the fold rate (generation
included) and ``rate_ratio`` the second half's over the first's; ``max_add_ms`` the
longest single ``add`` (it holds the lock that requests read with); ``gc`` the garbage
collector's pauses during the run, per generation (collections, longest, total).

Unless ``--no-ttl`` or ``--control-users 0``, a control run with eviction off (``ttl_s``
huge) of ``--control-users`` users runs after the soak in a fresh process (its RSS not
mixed with the soak's): what unbounded growth looks like, under ``control``.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.proc import rss_bytes
from freshet.topics import Action, Impression
from ps.signals import SignalSpec
from server.signals import SignalFeed

SIGNALS = (*SignalSpec().signals, "hist_pos", "hist_shown", "ucat_rate")
N_CATEGORIES = 50
T0_MS = 1_780_000_000_000
NO_TTL_S = 1e15  # eviction effectively off: no key is ever that old
CHUNK = 65_536  # draws generated at once


@dataclass(frozen=True)
class Sample:
    """The feed after some impressions (one progress line)."""

    impressions: int
    events: int  # folded into the state
    ts: int  # ms, event time of the last impression
    keys: int  # len(feed.state)
    entities: dict[str, int]  # keys per counter entity
    hist_users: int  # users with a history
    items_mapped: int  # the feed's item -> categories map
    rss: int  # bytes
    wall_s: float


def verdict(keys_50: int, keys_100: int, rss_50: int, rss_100: int,
            keys_slack: float = 1.1, rss_slack: float = 1.15) -> bool:
    """Whether the state is bounded: neither keys nor RSS grew much from 50% to 100%.

    Parameters
    ----------
    keys_50, keys_100 : int
        Keys held at 50% and at 100% of the run.
    rss_50, rss_100 : int
        RSS at 50% and at 100% of the run.
    keys_slack, rss_slack : float
        The growth allowed.

    Returns
    -------
    bool
        ``keys_100 <= keys_slack * keys_50 and rss_100 <= rss_slack * rss_50``.

    Examples
    --------
    >>> verdict(1000, 1050, 10**9, 11 * 10**8), verdict(1000, 1900, 10**9, 10**9)
    (True, False)
    """
    return keys_100 <= keys_slack * keys_50 and rss_100 <= rss_slack * rss_50


def _categories() -> list[list[int]]:
    """An item's categories by ``item % len(result)``: one to three of N_CATEGORIES."""
    rng = np.random.default_rng(12345)
    sizes = rng.choice([1, 2, 3], 10_007, p=[0.5, 0.3, 0.2])  # 1.7 on average
    return [sorted({int(c) for c in rng.integers(0, N_CATEGORIES, k)}) for k in sizes]


def soak(users: int, ttls: float = 12.0, no_ttl: bool = False,
         impressions_per_user: float = 1.2, click_rate: float = 0.1,
         catalogue: int = 5_000_000, pool: int = 2_000, step_ms: int = 100,
         samples: int = 800, seed: int = 0,
         log: Callable[[str], None] | None = None, log_every_s: float = 5.0) -> dict:
    """Feed a :class:`SignalFeed` the synthetic serving log (module docstring) and
    measure whether its state stays bounded.

    Parameters
    ----------
    users : int
        Distinct users over the run.
    ttls : float
        The run's span in TTLs (``ttl_s = span / ttls``).
    no_ttl : bool
        Eviction off (``ttl_s`` huge): the control.
    impressions_per_user, click_rate, catalogue, pool, step_ms
        The log's shape (module docstring).
    samples : int
        Samples over the run (besides those at 50% and 100%).
    seed : int
        Of the draws.
    log : callable or None
        Gets a progress line at a sample ``log_every_s`` of wall time after the last
        one, and at the end.
    log_every_s : float
        Seconds between progress lines.

    Returns
    -------
    dict
        The figures (module docstring).
    """
    if impressions_per_user < 1:
        raise ValueError("impressions_per_user must be at least 1 (one user per step)")
    n = round(users * impressions_per_user)
    pool = min(pool, users)
    span_ms = n * step_ms
    ttl_s = NO_TTL_S if no_ttl else span_ms / ttls / 1000.0
    window_ms = span_ms / ttls / 8  # the window keys_50/keys_100 take their peak in
    feed = SignalFeed.offline(SignalSpec(signals=SIGNALS, ttl_s=ttl_s), "genre")
    cats_of = _categories()
    rng = np.random.default_rng(seed)
    seen = bytearray(users)  # allocated before the first sample: a constant in the RSS
    active: list[int] = []
    newcomers = users - pool  # after the pool's, spread evenly over the other impressions
    next_user = 0
    every = max(1, n // samples)
    marks = {n // 2, n}
    out: list[Sample] = []
    clicks = 0
    worst_add = 0.0
    perf = time.perf_counter
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}  # per generation, seconds
    began = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = perf()
        else:
            pauses[info["generation"]].append(perf() - began[0])

    gc.callbacks.append(on_gc)
    start = perf()
    last_log = 0.0  # wall seconds from start, as Sample.wall_s

    def sample(done: int, ts: int) -> Sample:
        st = feed.state
        # counters and last_seen are the state's tables; reading their sizes is all the
        # public API (len(state)) does not break down by entity.
        s = Sample(done, feed.folded, ts, len(st),
                   {e: len(t) for e, t in st.counters.items()}, len(st.last_seen),
                   len(feed.categories), rss_bytes(), perf() - start)
        out.append(s)
        return s

    sample(0, T0_MS)
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        slots = rng.integers(0, pool, m).tolist()
        items = (rng.random(m) ** 3 * catalogue).astype(np.int64).tolist()
        clicked = (rng.random(m) < click_rate).tolist()
        for j in range(m):
            i = lo + j
            if i < pool:  # the first impressions start the pool's users, one each
                active.append(i)
                u, next_user = i, i + 1
            else:
                s = slots[j]
                # at most one newcomer per impression, as impressions_per_user >= 1
                if next_user < pool + (i + 1 - pool) * newcomers // (n - pool):
                    active[s] = next_user
                    next_user += 1
                u = active[s]
            seen[u] = 1
            item = items[j]
            ts = T0_MS + i * step_ms
            t = perf()
            feed.add(Impression(f"r{i}", item, u, ts, {"genre": cats_of[item % 10_007]}))
            if clicked[j]:
                feed.add(Action(f"r{i}", item, u, ts + step_ms // 2, "click"))
                clicks += 1
            d = perf() - t
            if d > worst_add:
                worst_add = d
            done = i + 1
            if done % every == 0 or done in marks:
                s_ = sample(done, ts)
                if log is not None and (s_.wall_s - last_log >= log_every_s or done == n):
                    last_log = s_.wall_s
                    log(f"{done / n:6.1%} {s_.events:>11,} events {s_.keys:>11,} keys "
                        f"({', '.join(f'{e} {k:,}' for e, k in s_.entities.items())}, "
                        f"hist {s_.hist_users:,}, item map {s_.items_mapped:,}) "
                        f"rss {s_.rss / 2**20:,.0f} MiB, "
                        f"{s_.events / max(s_.wall_s, 1e-9):,.0f} events/s")
    wall = perf() - start
    gc.callbacks.remove(on_gc)

    def at(done: int) -> Sample:
        return next(s for s in out if s.impressions == done)

    def keys_peak(done: int) -> int:
        end = at(done)
        return max(s.keys for s in out if end.ts - window_ms < s.ts <= end.ts)

    half, full = at(n // 2), at(n)
    k50, k100 = keys_peak(n // 2), keys_peak(n)
    base = out[0].rss
    first_rate = half.events / half.wall_s
    second_rate = (full.events - half.events) / (full.wall_s - half.wall_s)
    return {
        "users": users, "distinct_users": seen.count(1), "impressions": n, "clicks": clicks,
        "events": n + clicks, "events_folded": full.events,
        "catalogue": catalogue, "span_s": span_ms / 1000, "ttl_s": ttl_s,
        "ttls": round(span_ms / 1000 / ttl_s, 2), "no_ttl": no_ttl, "signals": list(SIGNALS),
        "samples": len(out),
        "keys_50": k50, "keys_100": k100, "keys_ratio": round(k100 / k50, 3),
        "entities_50": half.entities, "entities_100": full.entities,
        "hist_users_50": half.hist_users, "hist_users_100": full.hist_users,
        "items_mapped_100": full.items_mapped,
        "keys_max": max(s.keys for s in out),
        "rss_base_mb": round(base / 2**20, 1),
        "rss_50_mb": round(half.rss / 2**20, 1), "rss_100_mb": round(full.rss / 2**20, 1),
        "rss_peak_mb": round(max(rss_bytes("VmHWM"), *(s.rss for s in out)) / 2**20, 1),
        "plateau": round(full.rss / half.rss, 3),
        "plateau_over_base": round((full.rss - base) / max(half.rss - base, 1), 3),
        "bytes_per_key_100": round((full.rss - base) / max(full.keys, 1)),
        "events_per_s": round(full.events / wall),
        "rate_ratio": round(second_rate / first_rate, 3),
        "max_add_ms": round(worst_add * 1000, 1),
        "gc": {str(g): {"collections": len(p), "max_ms": round(max(p, default=0) * 1000, 1),
                        "total_s": round(sum(p), 2)} for g, p in pauses.items()},
        "wall_s": round(wall, 1),
        "bounded": verdict(k50, k100, half.rss, full.rss),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000_000)
    ap.add_argument("--ttls", type=float, default=12.0, help="the run's span in TTLs")
    ap.add_argument("--no-ttl", action="store_true", help="eviction off (the control)")
    ap.add_argument("--control-users", type=int, default=1_000_000,
                    help="users of the control run after the soak (0: none)")
    ap.add_argument("--impressions-per-user", type=float, default=1.2)
    ap.add_argument("--click-rate", type=float, default=0.1)
    ap.add_argument("--catalogue", type=int, default=5_000_000)
    ap.add_argument("--pool", type=int, default=2_000, help="users active at a time")
    ap.add_argument("--step-ms", type=int, default=100, help="event time per impression")
    ap.add_argument("--samples", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    shape = ["--impressions-per-user", str(args.impressions_per_user),
             "--click-rate", str(args.click_rate), "--catalogue", str(args.catalogue),
             "--pool", str(args.pool), "--step-ms", str(args.step_ms),
             "--samples", str(args.samples), "--ttls", str(args.ttls), "--seed", str(args.seed)]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = soak(args.users, args.ttls, args.no_ttl, args.impressions_per_user,
                  args.click_rate, args.catalogue, args.pool, args.step_ms, args.samples,
                  args.seed, log)
    if not args.no_ttl and args.control_users > 0:
        log(f"control: {args.control_users:,} users, eviction off")
        run = subprocess.run(
            [sys.executable, "-m", "benchmarks.signals_soak", "--no-ttl",
             "--users", str(args.control_users), *shape],
            stdout=subprocess.PIPE, text=True, check=True)
        c = json.loads(run.stdout.strip().splitlines()[-1])
        result["control"] = {k: c[k] for k in (
            "users", "events", "keys_50", "keys_100", "keys_ratio", "rss_50_mb",
            "rss_100_mb", "plateau", "plateau_over_base", "events_per_s", "bounded")}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
