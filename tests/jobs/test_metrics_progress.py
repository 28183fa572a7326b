"""``freshet train``'s console: a trainer's warning is printed as it arrives."""

from jobs.metrics import Progress


def test_a_warning_metric_is_printed_at_once() -> None:
    p = Progress(every_s=1e9)  # no progress line due: only the warning may print
    warning = {"job": "train", "name": "warning", "value": 1,
               "labels": {"shard": "0", "message": "slot genres is configured but ..."}}
    assert p.take(warning, now=0.0) == "  warning: slot genres is configured but ..."
    report = {"job": "train", "name": "trained_examples", "value": 10, "labels": {}}
    assert p.take(report, now=0.0) is None
