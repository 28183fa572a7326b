"""``kill -9`` of the online joiner mid-stream, then ``freshet join --from-checkpoint
latest``: every impression yields exactly one example, read committed.

``freshet join`` runs as users run it (a child process; the Flink mini-cluster runs
inside it, so killing its process group kills the job). A synthetic stream goes in
three parts: one before the joiner starts, one paced while it runs (the kill lands in
it, after the joiner completed a checkpoint and committed examples), and one after the
restarted joiner is back. Malformed end markers then move the watermark past the last
windows. The examples topic must then hold, counted by request ID and fingerprinted
like the trainer's ledger: positives == impressions with an action in the window,
negatives == the rest (``negative_sample_rate`` 1.0), each request ID once, and the
only dead letters are the markers.

The joiner writes in Kafka transactions that commit with its checkpoints
(``joiner.delivery = "exactly_once"``); the restored job aborts what the killed one had
not committed and replays from the checkpoint's offsets with its join state.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from freshet.config import Config
from freshet.flink import latest_checkpoint
from freshet.produce.sender import send
from freshet.produce.synthetic import SyntheticSpec, events
from freshet.topics import Action, Impression
from jobs.join import JOB_NAME

IMPRESSIONS = 6000
WINDOW_S = 2.0


def test_kill_9_joiner_then_restore_writes_every_example_once(
    cfg: Config, tmp_path: Path, faults: SimpleNamespace
) -> None:
    cfg = dataclasses.replace(
        cfg,
        joiner=dataclasses.replace(cfg.joiner, window_s=WINDOW_S, out_of_orderness_s=0.5,
                                   checkpoint_interval_ms=1000, negative_sample_rate=1.0,
                                   delivery="exactly_once"),
    )
    toml = faults.write_toml(cfg, tmp_path / "freshet.toml")
    stream = list(events(SyntheticSpec(impressions=IMPRESSIONS, event_rate=500.0,
                                       action_delay_ms=1000, p_other=0.3, seed=3)))
    impressions = [e for e in stream if isinstance(e, Impression)]
    actions = [e for e in stream if isinstance(e, Action)]
    shown = {(e.request_id, e.item_id): e.ts for e in impressions}
    assert all(0 <= a.ts - shown[(a.request_id, a.item_id)] <= WINDOW_S * 1000 for a in actions)
    positives = {a.request_id for a in actions}
    third = len(stream) // 3
    before, during, after = stream[:third], stream[third:2 * third], stream[2 * third:]

    send(cfg, before, progress=None)
    t0 = time.monotonic()
    join = faults.cli("join", ["join"], toml, tmp_path)
    try:
        faults.wait_for(lambda: latest_checkpoint(cfg, JOB_NAME) and faults.joined(cfg).count,
                        180, "a checkpoint and committed examples", [join])
        up_s = time.monotonic() - t0
        # The kill lands mid-stream: records are still arriving (paced), and the joiner
        # has completed a checkpoint since they began.
        paced = threading.Thread(target=send, args=(cfg, during),
                                 kwargs={"rate": 400.0, "progress": None}, daemon=True)
        paced.start()
        first = latest_checkpoint(cfg, JOB_NAME)
        faults.wait_for(lambda: latest_checkpoint(cfg, JOB_NAME) != first, 60,
                        "a checkpoint while the stream runs", [join], every_s=0.2)
        time.sleep(1.5)  # examples written since that checkpoint, not yet committed
        assert paced.is_alive(), "the paced part ended before the kill"
        at_kill = faults.joined(cfg)
        join.kill()
        checkpoint = latest_checkpoint(cfg, JOB_NAME)
        print(f"\njoiner up in {up_s:.1f} s; killed with {at_kill.count} examples committed; "
              f"restoring {checkpoint}")
        t_restart = time.monotonic()
        join = faults.cli("join-restored", ["join", "--from-checkpoint", "latest"], toml,
                          tmp_path)
        join.wait_for(f"restoring {checkpoint}", 60)
        paced.join()
        # Back and writing: more examples committed than at the kill.
        faults.wait_for(lambda: faults.joined(cfg).count > at_kill.count, 180,
                        "examples from the restored joiner", [join])
        back_s = time.monotonic() - t_restart
        send(cfg, after, progress=None)  # produced after the restart
        markers = faults.end_markers(cfg, stream[-1].ts + 10_000)
        faults.wait_for(lambda: faults.joined(cfg).count >= IMPRESSIONS, 120,
                        "an example for every impression", [join])
        faults.wait_for(lambda: len(faults.dead_letters(cfg)) >= markers, 60,
                        "the end markers dead-lettered", [join])
        time.sleep(2.0)  # anything more (a duplicate) would be committed by now
        out = faults.joined(cfg)
        dead = faults.dead_letters(cfg)
    finally:
        join.stop()
    print(f"restored joiner writing again {back_s:.1f} s after the restart; {out.count} "
          f"examples ({out.positives} positives, {out.negatives} negatives), {len(dead)} "
          f"dead letters, {len(out.twice())} request ids twice")

    assert out.twice() == [], f"written twice: {out.twice()[:10]}"
    assert set(out.ids) == {e.request_id for e in impressions}  # none lost
    assert out.count == IMPRESSIONS
    assert out.fingerprint() == faults.fingerprint(e.request_id for e in impressions)
    assert {r["request_id"] for r in out.rows if r["label"] == 1} == positives
    assert out.positives == len(positives)
    assert out.negatives == IMPRESSIONS - len(positives)
    assert [d["reason"].split(":")[0] for d in dead] == ["not a JSON object"] * markers, [
        d["reason"] for d in dead if "marker" not in d["payload"]][:5]
