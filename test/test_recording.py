"""Keeping a run: the recorder writes a rosbag2 MCAP bag that `rosbags` reads back (types,
counts, definitions, QoS), the player republishes it in order, the learner preloads a bag's
transitions as demonstrations (once), and the demonstration command records a real run."""
import math
import os
import threading
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from hilserl_ros import topics
from hilserl_ros.observation import load_observation
from hilserl_ros.msg import EpisodeStats, Transition
from hilserl_ros.nodes.player_node import PlayerNode
from hilserl_ros.nodes.recorder_node import RecorderNode
from hilserl_ros.observation import ACTION_DIM, OBS_DIM
from hilserl_ros.recording.bag import BagWriter, offered_qos, read_messages, topic_counts
from hilserl_ros.recording.types import shared_types
from hilserl_ros.ros import qos
from ros_harness import wait_for

pytestmark = pytest.mark.ros


def _record(ros, tmp_path, publish, **params):
    """Run a recorder next to `publish(node)`, close it, return the bag path."""
    overrides = [Parameter("bag_dir", value=str(tmp_path)), Parameter("bag_name", value="bag")]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    recorder = RecorderNode(context=ros.context, parameter_overrides=overrides)
    ros.add(recorder)
    publish(ros.node("talker"), recorder)
    recorder.close()
    return tmp_path / "bag"


def _episode(i: int) -> EpisodeStats:
    return EpisodeStats(actor_id="a", episode=i, steps=10 + i, reward=0.5 * i, success=i % 2 == 0,
                        intervention_rate=0.1 * i, end_reason="success")


def test_recorded_bag_is_read_back_by_rosbags_with_types_counts_and_definitions(ros, tmp_path):
    def publish(node, recorder):
        episodes = node.create_publisher(EpisodeStats, topics.EPISODE_STATS, qos.EVENTS)
        joints = node.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
        latched = node.create_publisher(String, topics.ROBOT_DESCRIPTION, qos.LATCHED)
        latched.publish(String(data="<robot name='so101'/>"))  # before the recorder subscribes
        wait_for(lambda: {topics.EPISODE_STATS, topics.JOINT_STATES, topics.ROBOT_DESCRIPTION} <= set(recorder.recorded),
                 30, "the recorder to subscribe to the three topics")
        ros.wait_for_subscribers(episodes, timeout=30)
        ros.wait_for_subscribers(joints, timeout=30)
        for i in range(1, 6):
            episodes.publish(_episode(i))
        for i in range(3):
            joints.publish(JointState(name=["shoulder_pan"], position=[0.1 * i]))

        def joints_recorded():  # best effort: again until one is in the bag
            if recorder.bag.counts.get(topics.JOINT_STATES, 0) >= 1:
                return True
            joints.publish(JointState(name=["shoulder_pan"], position=[0.3]))
            return False

        wait_for(joints_recorded, 30, "a joint state in the bag", period=0.1)
        wait_for(lambda: recorder.bag.counts[topics.EPISODE_STATS] == 5
                 and recorder.bag.counts[topics.ROBOT_DESCRIPTION] == 1, 30, "messages in the bag")

    bag = _record(ros, tmp_path, publish)
    assert (bag / "metadata.yaml").is_file() and list(bag.glob("*.mcap"))
    counts = topic_counts(bag)
    assert counts[topics.EPISODE_STATS] == ("hilserl_ros/msg/EpisodeStats", 5)
    assert counts[topics.ROBOT_DESCRIPTION] == ("std_msgs/msg/String", 1)
    assert counts[topics.JOINT_STATES][0] == "sensor_msgs/msg/JointState"
    assert "storage_identifier: mcap" in (bag / "metadata.yaml").read_text()
    with Reader(bag) as reader:
        by_topic = {c.topic: c for c in reader.connections}
        # full definitions travel with the bag: any reader decodes it without our code
        definition = by_topic[topics.EPISODE_STATS].msgdef.data
        assert "float32 intervention_rate" in definition and "MSG: std_msgs/Header" in definition
        # the publishers' QoS is kept, so a replay re-offers it
        assert by_topic[topics.JOINT_STATES].ext.offered_qos_profiles[0].reliability.name == "BEST_EFFORT"
        assert by_topic[topics.ROBOT_DESCRIPTION].ext.offered_qos_profiles[0].durability.name == "TRANSIENT_LOCAL"
    decoded = [shared_types().decode(m)
               for m in read_messages([bag], topics=[topics.EPISODE_STATS])]
    assert [(d.episode, d.steps, d.success) for d in decoded] == [(i, 10 + i, i % 2 == 0) for i in range(1, 6)]
    assert math.isclose(decoded[2].intervention_rate, 0.3, rel_tol=1e-6)


def test_recorder_topic_filters_and_known_topics(ros, tmp_path):
    def publish(node, recorder):
        kept = node.create_publisher(EpisodeStats, topics.EPISODE_STATS, qos.EVENTS)
        excluded = node.create_publisher(String, "/chatter", 10)
        # known topic: subscribed before its publisher exists, so message 1 cannot be missed
        assert topics.EPISODE_STATS in recorder.recorded
        ros.wait_for_subscribers(kept, timeout=30)
        kept.publish(_episode(1))
        excluded.publish(String(data="not wanted"))
        wait_for(lambda: recorder.bag.counts.get(topics.EPISODE_STATS) == 1, 30, "the episode in the bag")
        recorder.discover()
        assert "/chatter" not in recorder.recorded

    bag = _record(ros, tmp_path, publish, exclude_topics=["^/chatter$"],
                  known_topics=[f"{topics.EPISODE_STATS}=hilserl_ros/msg/EpisodeStats"])
    assert "/chatter" not in topic_counts(bag)


def _write_bag(path, messages):
    """A bag written directly (no recorder), messages = [(topic, type, msg)]."""
    writer = BagWriter(path)
    for i, (topic, type_name, msg) in enumerate(messages):
        if not writer.has_topic(topic):
            writer.add_topic(topic, type_name, offered_qos(reliable=True, latched=False))
        writer.write(topic, 1_000_000_000 + i * 20_000_000, serialize_message(msg))
    writer.close()
    return path


class MatchedPlayer(PlayerNode):
    """The player, starting its start_delay only once the test's subscribers are matched: the
    delay alone (1 s) is a guess that a loaded machine can miss, and a message published
    before the match is lost to a volatile subscriber."""

    def __init__(self, **kwargs):
        self.matched = threading.Event()
        super().__init__(**kwargs)

    def _play(self) -> None:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not self._stop.is_set():
            if all(p.get_subscription_count() > 0 for p in self.publishers_by_topic.values()):
                self.matched.set()
                break
            time.sleep(0.02)
        super()._play()


def test_player_republishes_the_bag_in_order(ros, tmp_path):
    messages = [(topics.EPISODE_STATS, "hilserl_ros/msg/EpisodeStats", _episode(i)) for i in range(1, 21)]
    messages.insert(5, ("/chatter", "std_msgs/msg/String", String(data="interleaved")))
    bag = _write_bag(tmp_path / "bag", messages)
    listener = ros.node("listener")
    received = ros.probe(listener, EpisodeStats, topics.EPISODE_STATS, qos.EVENTS)
    chatter = ros.probe(listener, String, "/chatter", qos.EVENTS)
    player = ros.add(MatchedPlayer(context=ros.context, parameter_overrides=[
        Parameter("bag", value=str(bag)), Parameter("rate", value=4.0), Parameter("start_delay", value=1.0),
        Parameter("exit_when_done", value=False)]))
    wait_for(player.finished.is_set, 60, f"the player to finish (matched: {player.matched.is_set()})")
    wait_for(lambda: len(received.messages) >= 20, 30, f"20 episodes, got {[m.episode for m in received.messages]}")
    assert [m.episode for m in received.messages] == list(range(1, 21))
    assert [m.reward for m in received.messages] == [0.5 * i for i in range(1, 21)]
    assert [m.data for m in chatter.wait(1, timeout=30)] == ["interleaved"]
    assert player.published == 21


def test_player_refuses_a_missing_bag(ros, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a rosbag2 directory"):
        PlayerNode(context=ros.context, parameter_overrides=[Parameter("bag", value=str(tmp_path / "nope"))])


def _transition(i: int, intervention: bool, bad: bool = False) -> Transition:
    obs = [0.01 * i] * OBS_DIM
    return Transition(actor_id="demo", seq=i, episode=1, step=i, observation=obs,
                      next_observation=[float("nan") if bad else 0.02 * i] * OBS_DIM,
                      action=[0.1] * ACTION_DIM, reward=1.0 if i == 9 else 0.0, terminated=i == 9,
                      is_intervention=intervention,
                      observation_spec=load_observation("reach", "state").fingerprint)


def _learner(ros, tmp_path, bag, **params):
    from hilserl_ros.nodes.learner_node import LearnerNode

    overrides = [Parameter("demo_bags", value=str(bag)), Parameter("checkpoint_dir", value=str(tmp_path / "ckpt")),
                 Parameter("hidden_dims", value=[32, 32])]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return LearnerNode(context=ros.context, parameter_overrides=overrides)


def test_a_bag_recorded_with_an_older_transition_definition_still_loads(ros, tmp_path):
    """Bags outlive message versions: one written before a field was added (command_late)
    decodes with the definition it carries, and the learner preloads it."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    name = "hilserl_ros/msg/Transition"
    current = shared_types().definition(name)
    older = "\n".join(line for line in current.splitlines() if not line.startswith("bool command_late"))
    assert older != current
    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(older, name))
    Old, Header, Time = (store.types[t] for t in (name, "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    spec = load_observation("reach", "state").fingerprint
    with Writer(tmp_path / "old", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(topics.TRANSITIONS, name, typestore=store)
        for i in range(1, 6):
            msg = Old(header=Header(stamp=Time(sec=1, nanosec=i), frame_id=""), actor_id="old", session=1, seq=i,
                      episode=1, step=i - 1, observation_spec=spec, observation=np.full(OBS_DIM, 0.01 * i, np.float32),
                      next_observation=np.full(OBS_DIM, 0.01 * (i + 1), np.float32), images=[], next_images=[],
                      image_ref="", action=np.full(ACTION_DIM, 0.1, np.float32), reward=0.0, terminated=i == 5,
                      truncated=False, is_intervention=True)
            writer.write(connection, 1_000_000_000 + i, bytes(store.serialize_cdr(msg, name)))
    decoded = [shared_types().decode(m) for m in read_messages([tmp_path / "old"], [topics.TRANSITIONS])]
    assert [t.seq for t in decoded] == [1, 2, 3, 4, 5] and not hasattr(decoded[0], "command_late")
    learner = _learner(ros, tmp_path, tmp_path / "old")
    try:
        assert len(learner.demo) == 5 and learner.drops.total == 0
    finally:
        learner._stop.set()
        learner.destroy_node()


def test_learner_preloads_demonstrations_from_a_bag_once(ros, tmp_path):
    messages = [(topics.TRANSITIONS, "hilserl_ros/msg/Transition", _transition(i, intervention=i % 3 != 0))
                for i in range(10)]
    messages.append((topics.TRANSITIONS, "hilserl_ros/msg/Transition", _transition(10, True, bad=True)))
    messages.append((topics.EPISODE_STATS, "hilserl_ros/msg/EpisodeStats", _episode(1)))
    bag = _write_bag(tmp_path / "demos", messages)

    learner = _learner(ros, tmp_path, bag)
    try:
        assert len(learner.demo) == 10  # the non-finite one is refused, counted
        assert learner.drops.total == 1 and len(learner.rl) == 0
        stored = learner.demo.sample(500)
        assert bool(stored.next_obs.isfinite().all())
        assert set(np.round(stored.obs[:, 0].numpy() * 100).astype(int).tolist()) == set(range(10))
        assert float(stored.reward.max()) == 1.0 and float(stored.terminated.sum()) > 0
        learner.save_checkpoint()
    finally:
        learner._stop.set()
        learner.destroy_node()
    # resumed from its checkpoint, the learner does not load the same bag twice
    again = _learner(ros, tmp_path, bag)
    try:
        assert len(again.demo) == 10
    finally:
        again._stop.set()
        again.destroy_node()
    only_interventions = _learner(ros, tmp_path / "other", bag, demo_interventions_only=True)
    try:
        assert len(only_interventions.demo) == 6  # i = 1, 2, 4, 5, 7, 8
    finally:
        only_interventions._stop.set()
        only_interventions.destroy_node()


@pytest.mark.slow
def test_record_demos_command_records_a_run_the_learner_can_use(ros, tmp_path):
    from hilserl_ros.record_demos import main

    assert main(["--episodes", "2", "--out", str(tmp_path), "--name", "demos"]) == 0
    bag = tmp_path / "demos"
    counts = topic_counts(bag)
    assert counts[topics.EPISODE_STATS][1] >= 2
    steps = [shared_types().decode(m) for m in read_messages([bag], [topics.EPISODE_STATS])]
    transitions = [shared_types().decode(m) for m in read_messages([bag], [topics.TRANSITIONS])]
    # every step of the recorded episodes is in the bag, driven by the operator, numbered from 1
    assert len(transitions) >= sum(e.steps for e in steps[:2])
    assert [t.seq for t in transitions] == list(range(1, len(transitions) + 1))
    assert all(t.is_intervention for t in transitions)
    assert counts[topics.JOINT_STATES][1] > 0 and counts[topics.TASK_STATE][1] > 0
    learner = _learner(ros, tmp_path, bag)
    try:
        # (a step that missed its simulated period on a loaded machine is flagged, and not learnt from)
        assert len(learner.demo) == sum(not t.command_late for t in transitions)
    finally:
        learner._stop.set()
        learner.destroy_node()


@pytest.mark.slow
def test_pick_cube_demonstrations_through_the_graph_grasp_lift_and_show_each_action_at_once(ros, tmp_path):
    """make record-demos ARGS="task:=pick_cube": the scripted picker drives the graph (top-down
    IK, gripper through the bus, lockstep); the episodes end in held lifts, the gripper was
    opened and closed, and every transition shows its own action's effect."""
    from hilserl_ros.action_effect import action_effect
    from hilserl_ros.record_demos import main

    assert main(["--episodes", "3", "--out", str(tmp_path), "--name", "demos", "task:=pick_cube"]) == 0
    bag = tmp_path / "demos"
    episodes = [shared_types().decode(m) for m in read_messages([bag], [topics.EPISODE_STATS])]
    transitions = [shared_types().decode(m) for m in read_messages([bag], [topics.TRANSITIONS])]
    assert sum(e.success for e in episodes[:3]) >= 2
    grips = {float(t.action[3]) for t in transitions}
    assert {-1.0, 1.0} <= grips  # opened and closed through the gamepad-like command
    clean = [t for t in transitions if not t.command_late]  # flagged: the step missed its period (a loaded machine)
    effect = action_effect(np.array([t.observation for t in clean]), np.array([t.action for t in clean]),
                           np.array([t.next_observation for t in clean]))
    assert effect.sound(), str(effect)


def test_known_topics_of_the_recorder_config_are_graph_topics_with_their_types():
    import yaml

    from hilserl_ros import graph

    with open(os.path.join(graph.share_dir(), "config", "recorder.yaml")) as fh:
        known = yaml.safe_load(fh)["recorder"]["ros__parameters"]["known_topics"]
    names = {v for k, v in vars(topics).items() if k.isupper()}
    for entry in known:
        topic, type_name = entry.split("=")
        assert topic in names, f"{topic} is not a topic of hilserl_ros.topics"
        shared_types().definition(type_name)  # raises if the type does not exist
