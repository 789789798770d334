"""Property-based fuzzing of everything the nodes take from the wire (issue 25): for every
subscription of the learner, the actor (with cameras), the IK node, the intervention node, the
task node, the scripted operator and the servo driver, hypothesis draws messages of the
subscription's own type (any field, any value: NaN, infinities, integer extremes, empty and
huge arrays, long strings), sends each through rclpy's serialization as a subscriber receives
it, and hands it to the node's callback. No callback may raise (an exception there ends the
node's executor), what is refused is counted, and each node still does its work afterwards.

Derandomized: the same examples on every run, so a failure here is a bug, never luck."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState

from hilserl_ros import topics
from hilserl_ros.learning.sac import sha256
from hilserl_ros.msg import (EndEffectorCommand, EpisodeEvent, Intervention, PolicyWeights, TaskState, Transition)
from hilserl_ros.observation import ACTION_DIM, load_observation
from hilserl_ros.hardware.bus import JOINT_NAMES
from ros_harness import EmulatorProcess
from wire_fuzz import mutated, over_the_wire

pytestmark = pytest.mark.ros
EXAMPLES = 60
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
STATE = load_observation("reach", "state")


def valid_transition(seq: int = 1) -> Transition:
    return Transition(actor_id="fuzz", session=5, seq=seq, episode=1, step=0,
                      observation=[0.1] * STATE.obs_dim, next_observation=[0.2] * STATE.obs_dim,
                      action=[0.1, 0.0, 0.0, 0.0], reward=0.0, observation_spec=STATE.fingerprint)


def frame(size: int = 128) -> Image:
    return Image(height=size, width=size, encoding="rgb8", step=3 * size, data=bytes(3 * size * size))


def templates() -> dict:
    """A valid message of each type the nodes subscribe: the mutations start from these."""
    return {
        Transition: valid_transition(),
        JointState: JointState(name=list(JOINT_NAMES), position=[0.0] * len(JOINT_NAMES),
                               velocity=[0.0] * len(JOINT_NAMES)),
        Intervention: Intervention(active=True, action=[0.0] * ACTION_DIM),
        EndEffectorCommand: EndEffectorCommand(dx=0.1, dy=0.0, dz=-0.1, gripper=0.0),
        EpisodeEvent: EpisodeEvent(event=1),
        TaskState: TaskState(),
        PolicyWeights: PolicyWeights(format="safetensors", data=b"\x00" * 16, sha256=sha256(b"\x00" * 16)),
        Image: frame(),
    }


def drawn(msg_type, template):
    """Mutations of the template; policy weights half the time with a matching sha256, so the
    fuzzing reaches the weights loader behind the checksum."""
    messages = mutated(template) if template is not None else mutated(msg_type())
    if msg_type is PolicyWeights:
        def fix(pair):
            msg, resign = pair
            if resign:
                msg.sha256 = sha256(bytes(msg.data))
            return msg
        messages = st.tuples(messages, st.booleans()).map(fix)
    return messages


def fuzz_node(node, skip: tuple[str, ...] = (), check=None) -> dict[str, int]:
    """Every subscription of ``node`` gets EXAMPLES drawn messages; returns examples per topic.
    ``check(topic, msg, before, after)`` may assert on the node's counters around each call."""
    known = templates()
    done: dict[str, int] = {}
    for sub in list(node.subscriptions):
        if sub.topic_name not in skip:
            _fuzz_subscription(node, sub, known.get(sub.msg_type), check, done)
    # every refusal is logged with a reason a person can read, whatever the size of the input
    assert all(len(reason) < 300 for reason in getattr(node.drops, "by_reason", ())), \
        max(node.drops.by_reason, key=len)[:300]
    return done


def _fuzz_subscription(node, sub, template, check, done: dict) -> None:
    @FUZZ
    @given(drawn(sub.msg_type, template))
    def feed(msg):
        msg = over_the_wire(msg)
        before = node.drops.total
        sub.callback(msg)  # must not raise
        for timer in list(node.timers):  # nor may what the node does next with what it kept
            timer.callback()
        if check is not None:
            check(sub.topic_name, msg, before, node.drops.total)
        done[sub.topic_name] = done.get(sub.topic_name, 0) + 1

    feed()


def finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


def test_the_learner_counts_every_transition_it_is_sent(ros, tmp_path):
    from hilserl_ros.nodes.learner_node import LearnerNode

    learner = LearnerNode(context=ros.context, parameter_overrides=[
        Parameter("checkpoint_dir", value=str(tmp_path / "ckpt")), Parameter("hidden_dims", value=[32, 32]),
        Parameter("training_starts", value=1_000_000)])
    try:
        def check(topic, msg, before, after):
            if topic != topics.TRANSITIONS:
                return
            # every arrival is stored, a duplicate, or refused with a reason: nothing unaccounted
            assert learner.arrived == learner.received + learner.duplicates + learner.drops.total
            bad = (not finite(msg.observation) or not finite(msg.next_observation) or not finite(msg.action)
                   or not math.isfinite(msg.reward) or len(msg.action) != ACTION_DIM or msg.seq == 0
                   or msg.session == 0 or msg.observation_spec != STATE.fingerprint)
            if bad:
                assert after == before + 1, f"not counted as refused: {msg}"

        done = fuzz_node(learner, check=check)
        assert done[topics.TRANSITIONS] == EXAMPLES
        assert learner.drops.total > 0 and len(learner.drops.by_reason) <= learner.drops.MAX_REASONS + 1
        # still working: a good transition of a new session is stored
        received = learner.received
        learner._on_transition(over_the_wire(Transition(**{**_fields(valid_transition()), "session": 99})))
        assert learner.received == received + 1
    finally:
        learner._stop.set()
        learner._trainer.join(timeout=30)
        learner.destroy_node()


def _fields(msg) -> dict:
    return {name: getattr(msg, name) for name in msg.get_fields_and_field_types()}


def test_the_actor_with_cameras_survives_anything_on_its_topics(ros, tmp_path):
    from hilserl_ros.nodes.actor_node import ActorNode

    actor = ActorNode(context=ros.context, parameter_overrides=[
        Parameter("use_sim", value=False), Parameter("observation", value="pixels"),
        Parameter("act_without_weights", value=True), Parameter("spool_dir", value=str(tmp_path / "spool"))])
    try:
        def check(topic, msg, before, after):
            if topic == topics.INTERVENTION and msg.active and (len(msg.action) != ACTION_DIM or not finite(msg.action)):
                assert after == before + 1
            if topic == topics.POLICY_WEIGHTS and sha256(bytes(msg.data)) != msg.sha256:
                assert after == before + 1

        done = fuzz_node(actor, check=check)
        cameras = [c.topic for c in actor.spec.cameras]
        assert set(cameras) <= set(done) and topics.POLICY_WEIGHTS in done and topics.INTERVENTION in done
        assert actor.drops.total > 0
        # still working: a well-formed frame is taken
        camera = actor.spec.cameras[0]
        sub = next(s for s in actor.subscriptions if s.topic_name == camera.topic)
        before = actor.drops.total
        sub.callback(over_the_wire(frame(camera.size)))
        assert actor.drops.total == before
    finally:
        actor.destroy_node()


def test_the_ik_intervention_task_and_operator_nodes_survive_anything(ros):
    from hilserl_ros.nodes.ik_node import IKNode
    from hilserl_ros.nodes.intervention_node import InterventionNode
    from hilserl_ros.nodes.scripted_human_node import ScriptedHumanNode
    from hilserl_ros.nodes.task_node import TaskNode

    for factory in (IKNode, InterventionNode, TaskNode, ScriptedHumanNode):
        node = factory(context=ros.context)
        try:
            if not hasattr(node, "drops"):
                node.drops = _NoCounter()
            done = fuzz_node(node)
            assert done and all(n == EXAMPLES for n in done.values()), (factory.__name__, done)
        finally:
            node.destroy_node()


class _NoCounter:
    total = 0


def test_the_servo_driver_refuses_bad_joint_commands_and_keeps_driving(ros, tmp_path):
    from hilserl_ros.nodes.hardware_node import HardwareNode

    bus = EmulatorProcess(str(tmp_path / "ttySO101"))
    node = HardwareNode(context=ros.context, parameter_overrides=[
        Parameter("port", value=bus.link_path), Parameter("use_sim", value=False),
        Parameter("rx_timeout_ms", value=100.0)])
    try:
        assert node.connected

        def check(topic, msg, before, after):
            if topic == topics.JOINT_COMMANDS and (len(msg.name) != len(msg.position) or not finite(msg.position)):
                assert after == before + 1, f"not counted as refused: {msg}"

        done = fuzz_node(node, check=check)
        assert done[topics.JOINT_COMMANDS] == EXAMPLES and node.drops.total > 0
        assert node.connected  # nothing it was sent took the arm off the bus
    finally:
        node.close()
        node.destroy_node()
        bus.stop()
