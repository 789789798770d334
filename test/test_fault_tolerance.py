"""Fault injection on the simulated training graph: any node can die and come back, nothing is
lost, nothing hangs (the scenario lives in bench/fault_scenario.py, shared with make
bench-faults).

One graph run (module fixture): train until the learner has checkpointed, SIGKILL the
learner three times (the launcher respawns it; it resumes from its last checkpoint and the
actor re-sends what the checkpoint lacks), SIGKILL the actor mid-episode (respawned, it must
act with the learner's weights, never random ones, and re-send its previous session's
remainder), then freeze the simulation and read a checkpoint back to account for every
transition. A soak (2 minutes, faults at random; 10 in make bench-soak) and checkpoints interrupted while written
follow.
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from fault_scenario import CONTROL_PERIOD, FaultRun
from hilserl_ros.learning import checkpoint
from ros_harness import REPO_ROOT, processes_with_marker, wait_for

MAX_GAP = 3 * CONTROL_PERIOD + 0.05  # a blocked actor shows gaps of seconds; scheduling jitter, a tick or two


def _run_with_marker(body):
    """Run ``body(marker)`` with a fresh process marker, so leftovers of this run can be found."""
    before = os.environ.get("HILSERL_TEST_RUN")
    marker = uuid.uuid4().hex
    os.environ["HILSERL_TEST_RUN"] = marker
    try:
        return body(marker)
    finally:
        os.environ["HILSERL_TEST_RUN"] = before


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("faults"))

    def body(marker):
        run = FaultRun(workdir, time_scale=1.0, checkpoint_period=3.0).start()
        result = {"run": run, "marker": marker}
        try:
            run.wait_training(150)
            for _ in range(3):
                time.sleep(3.0)
                run.kill("learner")
            result["gap_during_learner_kills"] = run.control_gaps()
            with run.lock:
                result["episodes_before_actor_kill"] = len(run.episodes)
                result["weights_before_actor_kill"] = set(run.weights_versions)
            time.sleep(2.0)
            result["actor_kill"] = run.kill("actor")
            # the restarted actor counts episodes from 1 again (its very first may be published
            # before this monitor has discovered it: look for any of its episodes)
            last_before = run.episodes[result["episodes_before_actor_kill"] - 1].episode
            result["new_actor_episode"] = wait_for(
                lambda: next((e for e in run.episodes[result["episodes_before_actor_kill"]:]
                              if e.episode < last_before), None), 120, "an episode of the restarted actor")
            with run.lock:
                result["weights"] = set(run.weights_versions)
            result["accounting"] = run.freeze_and_account()
        finally:
            run.stop()
        wait_for(lambda: not processes_with_marker(marker), 20, "every node of the graph to exit")
        with open(os.path.join(workdir, "graph.log")) as fh:
            result["log"] = fh.read()
        return result

    return _run_with_marker(body)


pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_every_transition_is_in_the_learner_exactly_once_after_three_learner_kills(killed_run):
    acc = killed_run["accounting"]
    assert acc.produced > 150 and acc.sessions == 2  # the actor's first run and its restart
    assert acc.lost == 0, f"lost transitions per session: {acc.missing_by_session}"
    assert acc.stored == acc.produced
    # (a step flagged command_late is held and acknowledged, but trained on by nobody)
    assert acc.stored_twice == 0 and acc.buffer_size == acc.produced - acc.late
    learner_kills = [k for k in killed_run["run"].kills if k["node"] == "learner"]
    assert len(learner_kills) == 3 and all("caught_up_after_s" in k for k in learner_kills)


def test_the_learner_resumes_from_its_checkpoint_after_each_kill(killed_run):
    log = killed_run["log"]
    assert log.count("learner: DIED (killed by SIGKILL)") == 3
    resumed = [line for line in log.splitlines() if line.startswith("[learner]") and "resumed from" in line]
    assert len(resumed) == 3  # every respawn loaded the last checkpoint
    assert all("update 0," not in line for line in resumed[1:])  # and it held training progress


def test_the_actor_never_stopped_stepping_while_the_learner_was_away(killed_run):
    assert killed_run["gap_during_learner_kills"] <= MAX_GAP


def test_a_restarted_actor_acts_with_the_learners_weights(killed_run):
    first_of_new_actor = killed_run["new_actor_episode"]
    # the version it acted with is one the learner published: trained weights, not a fresh init
    assert first_of_new_actor.policy_version > 0
    assert first_of_new_actor.policy_version in killed_run["weights"]
    assert "actor: DIED (killed by SIGKILL)" in killed_run["log"]


def test_soak_with_random_faults_loses_nothing_and_leaves_nothing_behind(tmp_path):
    """Kills at random times, in rounds that kill every kind of node (in random order), for
    HILSERL_SOAK_MINUTES (2 here: a round or two; ``make bench-soak`` soaks for 10)."""
    minutes = float(os.environ.get("HILSERL_SOAK_MINUTES", "2"))
    rng = random.Random(int(os.environ.get("HILSERL_SOAK_SEED", "7")))
    kinds = ["learner", "learner", "actor", "foxglove_bridge"]

    def body(marker):
        run = FaultRun(str(tmp_path), time_scale=2.0, checkpoint_period=5.0, foxglove=True).start()
        try:
            run.wait_training(150)
            end = time.monotonic() + minutes * 60
            round_: list[str] = []
            while round_ or time.monotonic() < end:  # rounds run whole, however slow the machine
                if not round_:
                    round_ = rng.sample(kinds, len(kinds))
                time.sleep(rng.uniform(5.0, 25.0))
                run.kill(round_.pop())
            accounting = run.freeze_and_account()
        finally:
            run.stop()
        wait_for(lambda: not processes_with_marker(marker), 20, "every node of the graph to exit")
        return run, accounting

    run, acc = _run_with_marker(body)
    print(f"soak {minutes:g} min: {len(run.kills)} kills, produced {acc.produced}, duplicates dropped "
          f"{acc.duplicates_dropped}, peak RSS MiB " + ", ".join(f"{k} {v >> 20}" for k, v in run.peak_rss.items()))
    killed = {kill["node"] for kill in run.kills}
    assert len(run.kills) >= len(kinds) and killed == set(kinds), run.kills  # every kind died at least once
    assert acc.lost == 0 and acc.stored_twice == 0 and acc.stored == acc.produced
    # bounded: the largest (the learner, torch + buffers) stays well under what the machine has
    assert max(run.peak_rss.values()) < 3 << 30


INTERRUPTED_WRITER = textwrap.dedent("""
    import sys, torch
    from hilserl_ros.learning import checkpoint
    path = sys.argv[1]
    n = 0
    while True:
        n += 1
        # a learner-sized state: tens of MB, so the signal often lands mid-write
        checkpoint.save_atomic({"n": torch.tensor(n), "data": torch.full((6_000_000,), float(n))}, path)
        if n == 1:
            print("first", flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_checkpoint_interrupted_while_written_leaves_the_previous_one_loadable(tmp_path, sig):
    rng = random.Random(sig)
    path = str(tmp_path / "learner.pt")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_WRITER, path], stdout=subprocess.PIPE, text=True,
                                env=env)
        assert proc.stdout.readline().strip() == "first"
        time.sleep(rng.uniform(0.0, 0.6))  # at a random point of some write
        proc.send_signal(sig)
        proc.wait(timeout=30)
        state = checkpoint.load(path)  # never a half-written file
        n = int(state["n"])
        assert n >= 1 and float(state["data"][0]) == n == float(state["data"][-1])
        assert checkpoint.newest_intact(str(tmp_path)) == path
