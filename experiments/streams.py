"""The example streams the experiments walk through, as trainer-sized mini-batches.

Examples
--------
>>> from freshet.produce.synthetic import SyntheticSpec
>>> exs = synthetic_examples(SyntheticSpec(impressions=100, seed=1, start_ms=1))
>>> len(exs), {e.label for e in exs} <= {0, 1}
(100, True)
>>> [len(b) for b in micro_batches(exs, 32)]
[32, 32, 32, 4]
>>> from freshet.topics import Example
>>> [len(b) for b in second_batches([Example("a", 1, 1, 1500, 0), Example("b", 1, 1, 1999, 1),
...                                  Example("c", 1, 1, 2000, 0)])]
[2, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

from freshet.data import movielens
from freshet.produce.synthetic import SyntheticSpec
from freshet.produce.synthetic import events as synthetic_events
from freshet.topics import Action, Example, ExampleBatch, Impression


def movielens_examples(limit: int = 0) -> list[Example]:
    """MovieLens-100K ratings in time order, labelled ``rating >= 4``."""
    exs = movielens.examples()
    return exs[:limit] if limit else exs


def synthetic_examples(spec: SyntheticSpec) -> list[Example]:
    """The synthetic serving log as examples: the label is whether a click happened.

    This is what the joiner would emit with a window longer than the action delay.
    """
    impressions: list[Impression] = []
    clicked: set[str] = set()
    for ev in synthetic_events(spec):
        if isinstance(ev, Impression):
            impressions.append(ev)
        elif isinstance(ev, Action) and ev.action == "click":
            clicked.add(ev.request_id)
    return [
        Example(i.request_id, i.item_id, i.user_id, i.ts, int(i.request_id in clicked),
                click=int(i.request_id in clicked), slots=i.slots)
        for i in impressions
    ]


def micro_batches(examples: Sequence[Example], size: int) -> list[ExampleBatch]:
    """Consecutive batches of ``size`` examples (one trainer step each)."""
    return [
        ExampleBatch.from_rows([e.to_dict() for e in examples[a : a + size]])
        for a in range(0, len(examples), size)
    ]


def second_batches(examples: Sequence[Example]) -> list[ExampleBatch]:
    """One batch per event-time second (``ts // 1000``), in order: a serving copy
    synced every second then scores a second's examples after the trainer has learnt
    every earlier second and nothing of this one."""
    out, start = [], 0
    for i in range(1, len(examples) + 1):
        if i == len(examples) or examples[i].ts // 1000 != examples[start].ts // 1000:
            out.append(ExampleBatch.from_rows([e.to_dict() for e in examples[start:i]]))
            start = i
    return out
