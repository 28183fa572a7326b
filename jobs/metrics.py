"""The training job's figures as a user reads them: progress lines and a final summary.

The trainer publishes its figures on the metrics topic (:mod:`udfs.shard`); this module
reads them back for ``freshet train`` / ``freshet replay``, the benchmarks and the demo.
Every progressive figure is labelled with the order it was scored in: ``event_time``
(each example scored by the model as it stood at its event time) or ``arrival``
(which the joiner's output order inflates, ``udfs/hold.py``). The served figures come
from the scores serving logged with each impression: what users were actually shown.

Examples
--------
>>> hist = {"pos": [0, 3], "neg": [3, 0], "loss": 1.5, "served_pos": [], "served_neg": [],
...         "served_loss": 0.0, "served_count": 0}
>>> final = [{"job": "train", "name": "eval_histogram", "value": 6,
...           "labels": {"shard": "0", "final": "true", "order": "event_time",
...                      "histogram": json.dumps(hist)}},
...          {"job": "train", "name": "late_examples", "value": 2,
...           "labels": {"shard": "0", "final": "true"}}]
>>> s = summarize(final)
>>> s.examples, s.auc, s.late, s.order
(6, 1.0, 2, 'event_time')
>>> s.line()
'trained 6 examples | progressive AUC 1.0000 (event-time order), log loss 0.2500 | 2 late'
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from freshet.config import Config
from udfs.evaluation import histogram_auc

ORDER_TEXT = {"event_time": "event-time order", "arrival": "arrival order, inflated by the "
              "joiner's output order"}


@dataclass
class TrainSummary:
    """Final figures of a training run, merged over its shards."""

    examples: int
    auc: float
    logloss: float
    order: str
    late: int = 0
    served_examples: int = 0
    served_auc: float | None = None
    served_logloss: float | None = None
    shards: int = 1

    def line(self) -> str:
        """One line for a terminal."""
        parts = [f"trained {self.examples:,} examples"]
        if self.served_examples:
            parts.append(f"served AUC {self.served_auc:.4f}, log loss "
                         f"{self.served_logloss:.4f} over {self.served_examples:,} scored "
                         "impressions")
        parts.append(f"progressive AUC {self.auc:.4f} ({ORDER_TEXT.get(self.order, self.order)})"
                     f", log loss {self.logloss:.4f}")
        if self.late:
            parts.append(f"{self.late:,} late")
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize(metrics: list[dict[str, Any]]) -> TrainSummary | None:
    """The summary of the final figures in ``metrics`` (the last report of each shard);
    None when no shard reported an end."""
    hists: dict[str, dict[str, Any]] = {}
    late: dict[str, float] = {}
    order = "arrival"
    for m in metrics:
        labels = m.get("labels", {})
        if m.get("job") != "train" or labels.get("final") != "true":
            continue
        shard = labels.get("shard", "0")
        if m["name"] == "eval_histogram":
            hists[shard] = {**json.loads(labels["histogram"]), "count": m["value"]}
            order = labels.get("order", order)
        elif m["name"] == "late_examples":
            late[shard] = m["value"]
    if not hists:
        return None
    hs = list(hists.values())

    def total(key: str) -> np.ndarray:
        arrays = [np.asarray(h.get(key) or [], np.float64) for h in hs]
        width = max((len(a) for a in arrays), default=0)
        return np.sum([np.pad(a, (0, width - len(a))) for a in arrays], axis=0) if width else (
            np.zeros(0))

    examples = int(sum(h["count"] for h in hs))
    served = int(sum(h.get("served_count", 0) for h in hs))
    summary = TrainSummary(
        examples=examples, auc=histogram_auc(total("pos"), total("neg")),
        logloss=sum(h["loss"] for h in hs) / max(examples, 1), order=order,
        late=int(sum(late.values())), served_examples=served, shards=len(hs))
    if served:
        summary.served_auc = histogram_auc(total("served_pos"), total("served_neg"))
        summary.served_logloss = sum(h.get("served_loss", 0.0) for h in hs) / served
    return summary


class Progress:
    """Turns the trainer's window reports into a progress line every ``every_s``."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.trained: dict[str, float] = {}
        self.auc: dict[str, float] = {}
        self.served: dict[str, tuple[float, float]] = {}  # shard -> (auc, examples)
        self.order = "arrival"
        self.first: tuple[float, float] | None = None  # (wall, trained) at the first report
        self.last_print = 0.0

    def take(self, m: dict[str, Any], now: float | None = None) -> str | None:
        """Account for one metric; returns a line when one is due."""
        labels = m.get("labels", {})
        if m.get("job") != "train" or labels.get("final") == "true":
            return None
        if m["name"] == "warning":  # a mistake in the config or the data: say it at once
            return f"  warning: {labels.get('message', '')}"
        shard = labels.get("shard", "0")
        self.order = labels.get("order", self.order)
        if m["name"] == "trained_examples":
            self.trained[shard] = m["value"]
        elif m["name"] == "progressive_auc":
            self.auc[shard] = m["value"]
        elif m["name"] == "served_auc":
            self.served[shard] = (m["value"], self.served.get(shard, (0, 0))[1])
        elif m["name"] == "served_examples":
            self.served[shard] = (self.served.get(shard, (float("nan"), 0))[0], m["value"])
        else:
            return None
        now = time.monotonic() if now is None else now
        trained = sum(self.trained.values())
        if self.first is None:
            self.first = (now, trained)
        if now - self.last_print < self.every_s:
            return None
        self.last_print = now
        return self.line(now)

    def line(self, now: float) -> str:
        trained = sum(self.trained.values())
        text = f"  trained {trained:,.0f} examples"
        if self.first is not None and now > self.first[0]:
            text += f" ({(trained - self.first[1]) / (now - self.first[0]):,.0f}/s)"
        if self.served:
            n = sum(e for _, e in self.served.values())
            aucs = [a for a, _ in self.served.values()]
            text += f" | served AUC {np.mean(aucs):.4f} over {n:,.0f}"
        if self.auc:
            text += (f" | progressive AUC {np.mean(list(self.auc.values())):.4f}"
                     f" ({ORDER_TEXT.get(self.order, self.order).split(',')[0]})")
        return text


def read_metrics(cfg: Config, since_ms: int = 0, idle_s: float = 1.0) -> list[dict[str, Any]]:
    """The metrics on the metrics topic reported at or after ``since_ms`` (wall clock)."""
    from freshet import kafka

    out = (json.loads(m.value()) for m in kafka.read(cfg, cfg.topics.name("metrics"), idle_s))
    return [m for m in out if m.get("ts", 0) >= since_ms]


class _Watch(threading.Thread):
    """A daemon thread that reads a topic until stopped; a context manager runs it."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)

    def __enter__(self) -> threading.Thread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MetricsWatch(_Watch):
    """Prints the trainer's progress from the metrics topic while a job runs."""

    def __init__(self, cfg: Config, every_s: float = 5.0, out: TextIO | None = None,
                 since_ms: int | None = None) -> None:
        super().__init__("metrics-watch")
        self.cfg = cfg
        self.since_ms = int(time.time() * 1000) if since_ms is None else since_ms
        self.progress = Progress(every_s)
        self.out = out  # None: sys.stderr as it is when printing
        self.metrics: list[dict[str, Any]] = []

    def run(self) -> None:
        from confluent_kafka import TopicPartition

        from freshet.kafka import consumer

        topic = self.cfg.topics.name("metrics")
        c = consumer(self.cfg, group=f"freshet-watch-{time.time_ns()}")
        try:
            from freshet.kafka import partitions

            c.assign([TopicPartition(topic, p, 0) for p in partitions(self.cfg, topic)])
            while not self.stop_event.is_set():
                for msg in c.consume(1000, timeout=0.5):
                    if msg.error() is not None:
                        continue
                    m = json.loads(msg.value())
                    if m.get("ts", 0) < self.since_ms:
                        continue  # an earlier run's
                    self.metrics.append(m)
                    line = self.progress.take(m)
                    if line is not None:
                        print(line, file=self.out or sys.stderr, flush=True)
        finally:
            c.close()


@dataclass
class JoinOutcome:
    """What a joiner run wrote: examples by label and dead letters by reason."""

    examples: int = 0
    positives: int = 0
    dead_letters: int = 0
    reasons: dict[str, int] | None = None

    def line(self) -> str:
        text = (f"{self.examples:,} examples ({self.positives:,} positives, "
                f"{self.examples - self.positives:,} negatives), "
                f"{self.dead_letters:,} dead letters")
        if self.reasons:
            top = sorted(self.reasons.items(), key=lambda kv: -kv[1])[:3]
            text += " (" + "; ".join(f"{n:,}: {r}" for r, n in top) + ")"
        return text

    def failure(self, events: int) -> str | None:
        """Why a run that produced no example failed, or None when it produced some."""
        if self.examples:
            return None
        if not events:
            return "no events to join: the features and actions topics are empty"
        if self.dead_letters and self.reasons:
            reason = max(self.reasons.items(), key=lambda kv: kv[1])[0]
            return (f"all {events:,} events dead-lettered ({self.dead_letters:,} dead letters); "
                    f"the most common reason: {reason}")
        return f"{events:,} events gave no example (no impression was joined)"


def join_outcome(cfg: Config, examples_from: dict[int, int], dead_from: dict[int, int]
                 ) -> JoinOutcome:
    """Count what the examples and dead-letter topics gained after the given offsets."""
    from collections import Counter

    from freshet import kafka
    from freshet.topics import ExampleBatch, SchemaError

    out = JoinOutcome()
    for m in kafka.read(cfg, cfg.topics.name("examples"), idle_s=1.0, start=examples_from):
        try:
            rows = ExampleBatch.rows_from_json(m.value())
        except SchemaError:
            continue
        out.examples += len(rows)
        out.positives += sum(1 for r in rows if isinstance(r, dict) and r.get("label") == 1)
    reasons: Counter[str] = Counter()
    for m in kafka.read(cfg, cfg.topics.name("dead_letters"), idle_s=1.0, start=dead_from):
        out.dead_letters += 1
        try:
            reasons[json.loads(m.value()).get("reason", "?")] += 1
        except ValueError:
            reasons["?"] += 1
    out.reasons = dict(reasons)
    return out


def train_failure(cfg: Config, messages: int, summary: TrainSummary | None, since_ms: int
                  ) -> str | None:
    """Why a bounded training run trained nothing (None when it trained something)."""
    from collections import Counter

    from freshet import kafka

    if summary is not None and summary.examples:
        return None
    if not messages:
        return ("the range holds no examples messages: is the joiner running, and does the "
                "range cover the examples' Kafka timestamps (the event time the joiner had "
                "decided up to)?")
    reasons: Counter[str] = Counter()
    for m in kafka.read(cfg, cfg.topics.name("dead_letters"), idle_s=1.0):
        dead = json.loads(m.value())
        if dead.get("source") == "examples" and dead.get("ts", 0) >= since_ms:
            reasons[dead.get("reason", "?")] += 1
    if reasons:
        reason, n = reasons.most_common(1)[0]
        return (f"all {messages:,} messages were dead-lettered ({sum(reasons.values()):,}); "
                f"the most common reason: {reason}")
    return f"{messages:,} messages trained no example"


class JoinWatch(_Watch):
    """Prints how many examples and dead letters a running joiner has written."""

    def __init__(self, cfg: Config, examples_from: dict[int, int], dead_from: dict[int, int],
                 every_s: float = 5.0, out: TextIO | None = None) -> None:
        super().__init__("join-watch")
        self.cfg, self.every_s, self.out = cfg, every_s, out
        self.starts = {"examples": examples_from, "dead_letters": dead_from}
        self.examples = self.positives = self.dead = 0

    def run(self) -> None:
        from confluent_kafka import TopicPartition

        from freshet.kafka import consumer
        from freshet.topics import ExampleBatch, SchemaError

        c = consumer(self.cfg, group=f"freshet-watch-{time.time_ns()}")
        names = {self.cfg.topics.name(t): t for t in self.starts}
        c.assign([TopicPartition(name, p, o) for name, t in names.items()
                  for p, o in self.starts[t].items()])
        t0 = last = time.monotonic()
        try:
            while not self.stop_event.is_set():
                for msg in c.consume(1000, timeout=0.5):
                    if msg.error() is not None:
                        continue
                    if names[msg.topic()] == "dead_letters":
                        self.dead += 1
                        continue
                    try:
                        rows = ExampleBatch.rows_from_json(msg.value())
                    except SchemaError:
                        continue
                    self.examples += len(rows)
                    self.positives += sum(1 for r in rows if r.get("label") == 1)
                now = time.monotonic()
                if now - last >= self.every_s:
                    last = now
                    print(f"  joined {self.examples:,} examples "
                          f"({self.examples / (now - t0):,.0f}/s, {self.positives:,} positives), "
                          f"{self.dead:,} dead letters", file=self.out or sys.stderr,
                          flush=True)
        finally:
            c.close()
