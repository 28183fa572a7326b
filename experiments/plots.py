"""Small PNG plots for the experiments and the demo report (matplotlib, no display).

Examples
--------
>>> import tempfile, os
>>> with tempfile.TemporaryDirectory() as d:
...     p = lines(os.path.join(d, "x.png"), {"a": ([0, 1], [0.5, 0.7])}, "x", "y", "t")
...     os.path.getsize(p) > 1000
True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def dates(ms: Sequence[float]) -> list[dt.datetime]:
    """Epoch milliseconds as UTC datetimes, for time axes."""
    return [dt.datetime.fromtimestamp(m / 1000, dt.UTC) for m in ms]


def lines(
    path: str | Path,
    series: Series,
    xlabel: str,
    ylabel: str,
    title: str,
    vline: float | dt.datetime | None = None,
    vlabel: str = "",
    logx: bool = False,
    markers: bool = False,
) -> Path:
    """One line per series; ``vline`` marks an x position (a shift, say)."""
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, linewidth=1.4, marker="o" if markers else None,
                markersize=3.5)
    if vline is not None:
        ax.axvline(vline, color="grey", linestyle="--", linewidth=1)
        if vlabel:
            ax.text(vline, ax.get_ylim()[1], f" {vlabel}", va="top", fontsize=8, color="grey")
    if logx:
        ax.set_xscale("log")
    xs = [x for x, _ in series.values() if len(x)]
    if xs and isinstance(xs[0][0], dt.datetime):
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def bars(
    path: str | Path,
    labels: Sequence[str],
    values: Sequence[float],
    errors: Sequence[float] | None,
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """A bar per label with optional error bars (standard deviation over seeds)."""
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    ax.bar(labels, values, yerr=errors, capsize=4, color="#4c72b0")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.4f}", ha="center", va="bottom", fontsize=8)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def histogram(path: str | Path, values: Sequence[float], xlabel: str, title: str,
              bins: int = 30) -> Path:
    """A histogram with the median and 95th percentile marked."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    ax.hist(values, bins=bins, color="#4c72b0")
    if len(values):
        for q, style in ((50, "--"), (95, ":")):
            v = float(np.percentile(values, q))
            ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"p{q} {v:.1f}")
        ax.legend(fontsize=8)
    ax.set(xlabel=xlabel, ylabel="samples", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
