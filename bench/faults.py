"""Figures of the training graph under injected faults (simulation, this machine).

    make bench-faults        (python bench/faults.py [--learner-kills 3] [--soak-minutes 0])

SIGKILLs the learner ``--learner-kills`` times, the actor once and the Foxglove bridge once
during a simulated training run (the project launcher respawns them), optionally soaks with
faults at random for ``--soak-minutes``, then freezes the simulation and accounts for every
transition (bench/fault_scenario.py). Writes bench/results/faults.json:

- transitions produced by the actors, stored by the learner, duplicates it dropped (re-sent
  after a restart), lost (target 0) and stored twice (target 0);
- the learner's recovery after a kill: respawn (launcher back-off), first acknowledgement of
  the new process, and caught up (holds everything the actor produced before the kill);
- the actor's longest gap between two control steps of one episode, in simulated time
  (target: one control period, 0.1 s: it never waits for the learner);
- each node's peak resident memory.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import versions, write  # noqa: E402
from fault_scenario import CONTROL_PERIOD, FaultRun  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learner-kills", type=int, default=3)
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    opts = parser.parse_args(argv)
    from tqdm import tqdm

    rng = random.Random(opts.seed)
    workdir = tempfile.mkdtemp(prefix="bench-faults-")
    print(f"[bench-faults] graph output in {workdir}/graph.log")
    run = FaultRun(workdir, time_scale=1.0, checkpoint_period=5.0, foxglove=True).start()
    try:
        run.wait_training(150)
        plan = ["learner"] * opts.learner_kills + ["actor", "foxglove_bridge"]
        for name in tqdm(plan, desc="faults", unit="kill"):
            time.sleep(5.0)
            event = run.kill(name)
            tqdm.write(f"[bench-faults] {name} killed: respawned after {event['respawned_after_s']:.1f} s"
                       + (f", caught up after {event['caught_up_after_s']:.1f} s" if "caught_up_after_s" in event
                          else ""))
        end = time.monotonic() + opts.soak_minutes * 60
        while time.monotonic() < end:
            time.sleep(rng.uniform(10.0, 40.0))
            run.kill(rng.choice(["learner", "actor", "foxglove_bridge"]))
        time.sleep(5.0)
        accounting = run.freeze_and_account()
        gap = run.control_gaps()
    finally:
        run.stop()
    learner = [k for k in run.kills if k["node"] == "learner"]
    figures = {
        "transitions": {"produced": accounting.produced, "stored": accounting.stored,
                        "duplicates_dropped": accounting.duplicates_dropped, "lost": accounting.lost,
                        "stored_twice": accounting.stored_twice, "actor_sessions": accounting.sessions,
                        "command_late": accounting.late},
        "kills": {name: sum(k["node"] == name for k in run.kills) for name in ("learner", "actor", "foxglove_bridge")},
        "learner_recovery_s": {
            "respawn_median": statistics.median(k["respawned_after_s"] for k in learner) if learner else None,
            "first_ack_median": statistics.median(k["first_ack_after_s"] for k in learner) if learner else None,
            "caught_up_median": statistics.median(k["caught_up_after_s"] for k in learner) if learner else None,
            "caught_up_max": max((k["caught_up_after_s"] for k in learner), default=None),
            "note": "respawn includes the launcher's back-off (2 s doubling per quick restart)",
        },
        "actor_longest_control_gap_s": gap,
        "control_period_s": CONTROL_PERIOD,
        "peak_rss_mib": {name: rss >> 20 for name, rss in sorted(run.peak_rss.items())},
        "soak_minutes": opts.soak_minutes,
    }
    path = write("faults", {**figures, "versions": versions("ros-rclpy", "torch")})
    t = figures["transitions"]
    print(f"[bench-faults] transitions produced {t['produced']}, stored {t['stored']}, duplicates dropped "
          f"{t['duplicates_dropped']}, lost {t['lost']}, stored twice {t['stored_twice']}")
    r = figures["learner_recovery_s"]
    if learner:
        print(f"[bench-faults] learner recovery (median of {len(learner)}): respawn {r['respawn_median']:.1f} s, "
              f"first ack {r['first_ack_median']:.1f} s, caught up {r['caught_up_median']:.1f} s")
    print(f"[bench-faults] actor's longest control gap {gap * 1000:.0f} ms (period {CONTROL_PERIOD * 1000:.0f} ms); "
          f"peak RSS MiB {figures['peak_rss_mib']}")
    print(f"[bench-faults] wrote {path}")
    return 0 if t["lost"] == 0 and t["stored_twice"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
