"""The smoke job's operator: validates an impression and reports its slot count."""

from __future__ import annotations

from pyflink.datastream import MapFunction

from freshet.topics import DeadLetter, Impression, Metric, SchemaError

OK_PREFIX = "OK "


class SmokeCheck(MapFunction):
    """Maps an impression's JSON to ``"OK " + metric JSON``, or to a dead letter."""

    def map(self, value: str) -> str:
        try:
            imp = Impression.from_json(value)
        except SchemaError as e:
            return DeadLetter(source="features", reason=str(e), payload=value).to_json().decode()
        metric = Metric(
            job="smoke",
            name="slots",
            value=float(len(imp.slots)),
            labels={"request_id": imp.request_id},
        )
        return OK_PREFIX + metric.to_json().decode()
