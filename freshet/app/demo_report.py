"""The demo's report: ``<work_dir>/demo/report.md`` with PNG plots beside it.

Examples
--------
>>> import tempfile
>>> from freshet.app.demo_watch import Sample
>>> run = DemoRun(samples=[Sample(1.0, 10, 10.0, None, None, 5, 1, 2.0),
...                        Sample(3.0, 90, 40.0, 50, 0.7, 9, 2, 1.5)],
...               windows=[{"t": 2.0, "auc": 0.7, "cumulative_auc": 0.7, "trained": 50,
...                         "served_auc": 0.65}])
>>> with tempfile.TemporaryDirectory() as d:
...     p = write_report(Path(d), run)
...     "progressive AUC" in p.read_text(), sorted(x.name for x in Path(d).glob("*.png"))
(True, ['demo_auc.png', 'demo_freshness.png', 'demo_tables.png', 'demo_throughput.png'])
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freshet.app.demo_watch import Sample, or_dash


@dataclass
class DemoRun:
    """Everything the demo observed."""

    samples: list[Sample] = field(default_factory=list)
    windows: list[dict[str, float]] = field(default_factory=list)  # trainer eval windows
    top_items: list[dict[str, Any]] = field(default_factory=list)  # final ranking shown
    user: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)  # counts, timings, exit codes
    server_metrics: dict[str, Any] = field(default_factory=dict)
    logs: str = ""


def write_report(path: Path, run: DemoRun) -> Path:
    """Write the plots and ``report.md`` into ``path``; returns the report's path."""
    from experiments import plots

    path.mkdir(parents=True, exist_ok=True)
    s = run.samples
    w = run.windows
    logged = [x for x in w if x.get("served_auc") is not None]
    plots.lines(path / "demo_auc.png",
                {"served (logged scores, cumulative)": ([x["t"] for x in logged],
                                                        [x["served_auc"] for x in logged]),
                 "trainer per window": ([x["t"] for x in w], [x["auc"] for x in w]),
                 "trainer cumulative": ([x["t"] for x in w],
                                        [x.get("cumulative_auc") for x in w])},
                "seconds since the demo started", "AUC",
                "Served: scores the live server returned before each rating was sent; "
                "trainer: each example scored before it was learnt", markers=True)
    fresh = [x.freshness_s for x in s if x.freshness_s is not None]
    plots.histogram(path / "demo_freshness.png", fresh,
                    "seconds from producing an action to serving its learnt embeddings",
                    "End-to-end freshness (one sample per poll)")
    plots.lines(path / "demo_tables.png",
                {"serving table rows": ([x.t for x in s if x.serving_rows is not None],
                                        [x.serving_rows for x in s if x.serving_rows is not None])},
                "seconds since the demo started", "rows", "Embedding rows served")
    trained = [(x.t, x.extra.get("trained_per_s")) for x in s
               if x.extra.get("trained_per_s") is not None]
    plots.lines(path / "demo_throughput.png",
                {"events produced / s": ([x.t for x in s], [x.events_per_s for x in s]),
                 "examples trained / s": ([t for t, _ in trained], [v for _, v in trained])},
                "seconds since the demo started", "per second", "Throughput")
    report = path / "report.md"
    report.write_text(_markdown(run, fresh))
    return report


def _markdown(run: DemoRun, fresh: list[float]) -> str:
    import numpy as np

    st = run.stats
    last = run.windows[-1] if run.windows else {}
    auc = last.get("cumulative_auc", float("nan"))
    q = (lambda p: f"{np.percentile(fresh, p):.1f} s") if fresh else (lambda p: "-")
    lines = [
        "# Freshet demo report",
        "",
        f"Run {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, {st.get('wall_s', 0):.0f} s wall "
        "time. MovieLens-100K replayed as a serving log through the embedded broker, the "
        "online joiner, the trainer and the ranking server, each its own process.",
        "",
        *([f"**{st['stages']}**", ""] if st.get("trained_all") is False else []),
        "| figure | value |",
        "|---|---|",
        f"| ratings replayed (impressions) | {st.get('impressions', 0):,} |",
        f"| actions (clicks, likes) | {st.get('actions', 0):,} |",
        f"| replay pace | {st.get('rate', 0):,.0f} events/s asked, "
        f"{st.get('events_per_s', 0):,.0f} achieved |",
        f"| **served AUC, from the scores logged with the impressions** (metrics topic, "
        f"{st.get('logged_served', 0) or 0:,.0f} impressions) | "
        f"**{or_dash(st.get('logged_served_auc'), '.4f')}** |",
        f"| the same, computed by the demo from its own requests ({st.get('served_scored', 0):,} "
        f"ratings scored before they were sent) | {or_dash(st.get('served_auc'), '.4f')} |",
        f"| served AUC, users already in the replay ({st.get('served_returning', 0):,}) / "
        f"new users | {or_dash(st.get('served_auc_returning'), '.4f')} / "
        f"{or_dash(st.get('served_auc_new'), '.4f')} |",
        f"| fresh signals the model reads | {', '.join(st.get('signals') or []) or 'none'} |",
        f"| impressions produced / joined into examples / trained | "
        f"{st.get('produced', 0):,} / {st.get('joined', 0):,} / {last.get('trained', 0):,.0f} |",
        f"| the trainer's largest lag behind the producer | {st.get('max_behind', 0):,} "
        f"impressions (at {st.get('max_behind_at_s', 0)} s) |",
        f"| trainer's progressive AUC, {st.get('order') or 'arrival'} order (cumulative) | "
        f"{auc:.4f} |",
        f"| end-to-end freshness p50 / p95 | {q(50)} / {q(95)} |",
        f"| rows served at the end | {st.get('rows', '-')} |",
        f"| ranking latency p50 (100 candidates) | {st.get('rank_p50_ms', '-')} ms |",
        f"| demo start until the server ranked with a trained model | "
        f"{st.get('ready_s', '-')} s |",
        "",
        "![progressive AUC](demo_auc.png)",
        "",
        "The served AUC is the figure that counts: what users were shown. Every poll the "
        "demo asked the live server to rank the next ratings of the replay before the "
        "producer sent them, and sent those impressions with the score they got; the "
        "joiner carried the score into each example, and the trainer reported their AUC "
        "on the metrics topic (the first row). The second row is the same AUC computed "
        "by the demo from its own requests and the ratings: the two must agree "
        f"({st.get('served_unanswered', 0):,} scored ratings were sent before their score "
        "came back, and so without one). The trainer's progressive AUC scores each example "
        "before learning it, in event-time order: the trainer holds examples until the "
        "joiner has decided their time (`train.order`, docs/training.md). The replay runs "
        "MovieLens' seven months in about two minutes, so a second of freshness is days of "
        "ratings: most scored ratings are of users the server has not learnt yet.",
        "",
        "![freshness](demo_freshness.png)",
        "",
        "Freshness: every poll, the serving watermark (event time its embeddings include) is "
        "looked up in the producer's send log; now minus that send time is how long an action "
        "took to reach the served model (join window close, training, 1 s sparse sync, "
        "loader).",
        "",
        "![table rows](demo_tables.png)",
        "",
        "![throughput](demo_throughput.png)",
        "",
    ]
    if run.top_items:
        u = run.user
        lines += [
            f"## A ranking from the live server: user {u.get('user_id')} "
            f"({u.get('ratings', 0)} ratings), 100 candidate movies",
            "",
            "| rank | movie | score | the user's rating |",
            "|---:|---|---:|---:|",
        ]
        lines += [f"| {i + 1} | {it['title']} | {it['score']:.3f} | {it.get('rating') or '-'} |"
                  for i, it in enumerate(run.top_items)]
        lines.append("")
    if run.server_metrics:
        lines += ["## Serving metrics at the end", "", "```"]
        lines += [f"{k}: {v}" for k, v in run.server_metrics.items()]
        lines += ["```", ""]
    lines += [f"Logs of every process: `{run.logs}`.", ""]
    return "\n".join(lines)
