"""Nothing dies silently (issue 25): a node's worker thread that raises takes the node down
with its reason, a node outlives no launcher whatever it is blocked in, and the learner
refuses sequence numbers no actor sends, keeps its counters in range and accounts for every
transition that arrives."""
import os
import signal
import subprocess
import sys
import time

import pytest
from rclpy.parameter import Parameter

from hilserl_ros import topics
from hilserl_ros.learning.link import MAX_SEQ, MAX_SEQ_AHEAD
from hilserl_ros.msg import LearnerStats, Transition
from hilserl_ros.observation import load_observation
from hilserl_ros.ros import qos, runner
from ros_harness import TEST_DIR, RosSession, wait_for

pytestmark = pytest.mark.ros
STATE = load_observation("reach", "state")
U64_MAX = 2 ** 64 - 1


def test_a_worker_thread_that_raises_takes_its_node_down_with_the_reason(node_process):
    node = node_process("helper_nodes.worker_node", "-p", "fail_after:=1.0")
    assert node.proc.wait(timeout=60) == 1, node.output  # a death the launcher respawns
    out = node.output
    assert "thread 'boom_worker' died: OverflowError: int too big to convert (injected)" in out
    assert "worker node: close() ran" in out  # it still released what it held
    assert "[runner] exit 1: thread 'boom_worker' died" in out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_node_blocked_in_a_callback_does_not_outlive_its_launcher():
    """The launcher is SIGKILLed (no parent-death signal was set up: not every launcher does),
    and the node's executor is stuck in a callback, so no signal handler can run: the node
    notices it is orphaned and leaves once its grace is over."""
    env = {**os.environ, "HILSERL_ORPHAN_GRACE": "3",
           "PYTHONPATH": os.pathsep.join([TEST_DIR, os.environ.get("PYTHONPATH", "")])}
    spawn = ("import subprocess, sys, time\n"
             "p = subprocess.Popen([sys.executable, '-m', 'helper_nodes.worker_node', '--ros-args', "
             "'-p', 'block_executor:=true'])\n"
             "print(p.pid, flush=True)\n"
             "time.sleep(600)\n")
    launcher = subprocess.Popen([sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
    node_pid = int(launcher.stdout.readline())
    try:
        time.sleep(3.0)  # the node is up and its executor blocked
        assert _alive(node_pid)
        launcher.kill()
        launcher.wait()
        wait_for(lambda: not _alive(node_pid), 30, "the orphaned node to exit")
    finally:
        if _alive(node_pid):
            os.kill(node_pid, signal.SIGKILL)


def transition(seq, session=11, actor="fuzz"):
    return Transition(actor_id=actor, session=session, seq=seq, episode=1, step=0,
                      observation=[0.1] * STATE.obs_dim, next_observation=[0.2] * STATE.obs_dim,
                      action=[0.1, 0.0, 0.0, 0.0], reward=0.0, terminated=False, truncated=False,
                      is_intervention=False, observation_spec=STATE.fingerprint)


def test_absurd_sequence_numbers_are_refused_and_every_transition_is_accounted_for(tmp_path):
    from hilserl_ros.nodes.learner_node import LearnerNode

    ros = RosSession()
    overrides = [Parameter("checkpoint_dir", value=str(tmp_path / "ckpt")), Parameter("hidden_dims", value=[32, 32]),
                 Parameter("training_starts", value=20), Parameter("batch_size", value=16),
                 Parameter("stats_period", value=1)]
    learner = ros.add(LearnerNode(context=ros.context, parameter_overrides=overrides))
    peer = ros.node("fuzz_actor")
    pub = peer.create_publisher(Transition, topics.TRANSITIONS, qos.TRANSITIONS)
    stats = ros.probe(peer, LearnerStats, topics.LEARNER_STATS, qos.EVENTS)
    try:
        ros.wait_for_subscribers(pub)
        # before any update: the learner already says what it holds (not silent for the first ~20 s)
        first = stats.wait(1, timeout=30)[0]
        assert first.update_step == 0 and first.alpha > 0
        # the report: 2**64-1 on two sessions overflowed the gap total and killed training
        bad = [transition(U64_MAX, session=1), transition(U64_MAX, session=2), transition(0), transition(5, session=0),
               transition(MAX_SEQ + 1), transition(MAX_SEQ_AHEAD + 1, session=3)]
        for msg in bad:
            pub.publish(msg)
        good = [transition(seq) for seq in range(1, 41)]
        for msg in good:
            pub.publish(msg)
        pub.publish(transition(3))  # a duplicate
        wait_for(lambda: learner.arrived == len(bad) + len(good) + 1, 30, "every transition to arrive")
        assert learner.drops.total == len(bad) and learner.received == len(good) and learner.duplicates == 1
        assert learner.arrived == learner.received + learner.duplicates + learner.drops.total
        reasons = " | ".join(learner.drops.by_reason)
        for words in ("seq 0", "session 0", "above 2**53", f"more than {MAX_SEQ_AHEAD} past"):
            assert words in reasons, reasons
        assert set(learner.links) == {("fuzz", 11)}  # refused sessions are not tracked
        # training goes on: updates advance and the statistics carry the counts
        wait_for(lambda: any(m.update_step >= 5 for m in stats.messages), 60, "five updates")
        assert learner._trainer.is_alive()
        last = stats.messages[-1]
        assert last.transitions_dropped == len(bad) and last.sequence_gaps == 0
    finally:
        learner._stop.set()
        learner._trainer.join(timeout=30)
        ros.close()


def test_counters_on_the_wire_saturate_instead_of_raising():
    from hilserl_ros.ros.validation import saturating

    assert saturating(2 ** 70) == U64_MAX and saturating(-3) == 0 and saturating(2 ** 40, 32) == 2 ** 32 - 1
    LearnerStats(sequence_gaps=saturating(2 * U64_MAX))  # would raise with the raw sum


def test_a_dead_training_thread_ends_the_learner_and_a_checkpoint_request_says_why(tmp_path):
    from hilserl_ros.nodes.learner_node import LearnerNode
    from hilserl_ros.srv import SaveCheckpoint

    ros = RosSession()
    overrides = [Parameter("checkpoint_dir", value=str(tmp_path / "ckpt")), Parameter("hidden_dims", value=[32, 32]),
                 Parameter("training_starts", value=5), Parameter("batch_size", value=8)]
    learner = LearnerNode(context=ros.context, parameter_overrides=overrides)

    def broken_update(sample):
        raise OverflowError("int too big to convert (injected)")

    learner.agent.update = broken_update
    ros.add(learner)
    failures_before = len(runner._failures)
    try:
        # a request made while the thread is still alive is answered as soon as it dies
        response = SaveCheckpoint.Response()
        pub = ros.node("feeder").create_publisher(Transition, topics.TRANSITIONS, qos.TRANSITIONS)
        ros.wait_for_subscribers(pub)
        for seq in range(1, 11):
            pub.publish(transition(seq))
        wait_for(lambda: not learner._trainer.is_alive(), 30, "the training thread to die")
        began = time.monotonic()
        learner._on_save(SaveCheckpoint.Request(), response)
        assert time.monotonic() - began < 10  # not the 120 s the executor used to be blocked
        assert not response.success and "training thread is not running" in response.message
        # the node went down with the reason: its context is shut down, so run_node exits 1
        wait_for(lambda: not ros.context.ok(), 10, "the learner's context to shut down")
        assert "thread 'trainer' died: OverflowError" in runner._failures[-1]
    finally:
        del runner._failures[failures_before:]
        ros.close()


def test_make_train_names_what_stopped_a_run_instead_of_guessing_at_alpha():
    import threading
    from types import SimpleNamespace

    from hilserl_ros.train import why_not

    def monitor(stats, updated, received):
        return SimpleNamespace(lock=threading.Lock(), stats=stats, update_advanced_at=updated,
                               received_advanced_at=received)

    healthy = SimpleNamespace(trouble=lambda: [])
    summary = {"alpha": float("nan"), "intervention": 0.5}
    stats = LearnerStats(update_step=1200, transitions_received=5000, alpha=0.01)
    dead = SimpleNamespace(trouble=lambda: ["learner died 1 time and was respawned (1x); last: exit code 1 after "
                                            "40 s: [runner] exit 1: thread 'trainer' died: OverflowError"])
    assert why_not(monitor(stats, 100.0, 200.0), dead, summary, 200.0).startswith("node trouble: learner died 1 time")
    # the report's run: the trainer thread stopped while the actor went on sending
    assert "training stopped at update 1200, 100 s before the end" in why_not(monitor(stats, 100.0, 199.0), healthy,
                                                                             summary, 200.0)
    # interrupted before learning started: not "look at alpha nan"
    waiting = LearnerStats(update_step=0, transitions_received=42)
    text = why_not(monitor(waiting, None, 10.0), healthy, summary, 12.0)
    assert "had not started training (42 transitions received" in text and "alpha" not in text
    assert "no statistics" in why_not(monitor(None, None, None), healthy, summary, 5.0)
    # a run that trained to the end: alpha only when the watchdog flagged it, with its words ...
    collapsed = LearnerStats(update_step=1200, transitions_received=5000, alpha=0.003, alpha_collapse=True,
                             warning="alpha collapse: alpha=0.0030 < 0.02 and mean |action|=0.020 < 0.1")
    assert why_not(monitor(collapsed, 199.0, 199.5), healthy, {"alpha": 0.003, "intervention": 0.6}, 200.0) \
        == collapsed.warning
    # ... interventions only when they are high, else simply not reached in the time given
    assert why_not(monitor(stats, 199.0, 199.5), healthy, {"alpha": 0.004, "intervention": 0.6}, 200.0).startswith(
        "interventions still high (60%")
    text = why_not(monitor(stats, 199.0, 199.5), healthy, {"alpha": 0.004, "intervention": 0.05}, 200.0)
    assert text.startswith("the target was not reached") and "collapse" not in text


def test_a_checkpoint_of_another_configuration_is_set_aside_not_crashed_on(tmp_path):
    """ros2 launch with the default checkpoint_dir after a run of another task: the learner
    starts afresh and keeps the old checkpoint, instead of a respawn loop of one traceback."""
    from hilserl_ros.nodes.learner_node import LearnerNode

    ros = RosSession()
    directory = str(tmp_path / "ckpt")
    learners = []

    def learner(dims):
        node = LearnerNode(context=ros.context, parameter_overrides=[
            Parameter("checkpoint_dir", value=directory), Parameter("hidden_dims", value=dims)])
        learners.append(node)
        return node

    try:
        old = learner([32, 32])
        path = old.save_checkpoint()
        new = learner([16, 16])  # resume is on by default: this used to raise in __init__
        assert new.agent.update_step == 0 and not os.path.exists(path)
        (aside,) = [name for name in os.listdir(directory) if ".incompatible-" in name]
        assert aside.startswith("learner.pt.")  # not *.pt: never picked up as a checkpoint again
        again = learner([16, 16])  # and the next start does not look at it
        assert again.agent.update_step == 0
    finally:
        for node in learners:  # not spun by the session: destroyed here, or they stay on the graph
            node._stop.set()
            node._trainer.join(timeout=30)
            node.destroy_node()
        ros.close()
