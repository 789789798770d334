"""/actor with cameras outside the simulation's lockstep (the real arm's way): it pairs each
camera's newest frame with the joint state of the control step, refuses frames older than the
camera's ``max_age`` (counted, said, and no step taken: no acting blind), reads
CompressedImage topics, crops and resizes as configured, sends each frame once, and shows
what the policy sees on /actor/view/<camera>."""
import itertools
import time

import cv2
import numpy as np
import pytest
import yaml
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, JointState

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.msg import TaskState, Transition
from hilserl_ros.observation import load_observation
from hilserl_ros.ros import qos
from hilserl_ros.vision.ros_image import to_image_msg
from ros_harness import wait_for

pytestmark = pytest.mark.ros

OBSERVATION = {"pixels": {"state": ["joints", "ee_position"], "cameras": [
    # a 240x320 frame cropped to its central 200x200 square, seen at 64x64
    {"name": "front", "topic": "/test_cam/front/image_raw", "crop": [60, 20, 200, 200], "size": 64, "max_age": 0.15},
    {"name": "wrist", "topic": "/test_cam/wrist/compressed", "size": 64, "max_age": 0.15},
]}}


def frame(shade: int) -> np.ndarray:
    """240x320 RGB: ``shade`` inside the crop, 0 outside it."""
    image = np.zeros((240, 320, 3), np.uint8)
    image[20:220, 60:260] = shade
    return image


def test_stale_frames_are_counted_and_refused_fresh_ones_reach_the_transitions(ros, tmp_path):
    from hilserl_ros.nodes.actor_node import ActorNode

    path = tmp_path / "observation.yaml"
    path.write_text(yaml.safe_dump(OBSERVATION))
    spec = load_observation("reach", "pixels", str(path))
    actor = ros.add(ActorNode(context=ros.context, parameter_overrides=[
        Parameter("use_sim", value=False), Parameter("observation", value="pixels"),
        Parameter("observation_file", value=str(path)), Parameter("act_without_weights", value=True),
        Parameter("spool_dir", value=str(tmp_path / "spool")), Parameter("control_rate", value=20.0)]))
    peer = ros.node("camera_rig")
    sent = ros.probe(peer, Transition, topics.TRANSITIONS, qos.TRANSITIONS)
    views = {name: ros.probe(peer, Image, f"/actor/view/{name}", qos.SENSOR) for name in ("front", "wrist")}
    joints = peer.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
    pose = peer.create_publisher(PoseStamped, topics.EE_POSE, qos.EVENTS)
    task = peer.create_publisher(TaskState, topics.TASK_STATE, qos.EVENTS)
    front = peer.create_publisher(Image, "/test_cam/front/image_raw", qos.SENSOR)
    wrist = peer.create_publisher(CompressedImage, "/test_cam/wrist/compressed", qos.SENSOR)
    ros.wait_for_subscribers(front)
    ros.wait_for_subscribers(wrist)

    def publish(shade: int, frame_age: float) -> None:
        now = peer.get_clock().now()
        stamp = now.to_msg()
        old = (now - rclpy_duration(frame_age)).to_msg()
        joints.publish(JointState(name=list(JOINT_NAMES), position=[0.1] * 6, header=header(stamp)))
        msg = PoseStamped(header=header(stamp))
        msg.pose.position.x, msg.pose.position.z = 0.2, 0.1
        pose.publish(msg)
        task.publish(TaskState(task="reach", episode=1, header=header(stamp)))
        front.publish(to_image_msg(frame(shade), "rgb8", stamp=old))
        _, png = cv2.imencode(".png", frame(shade + 1)[:, :, ::-1])  # lossless, so the shade is exact
        wrist.publish(CompressedImage(header=header(old), format="rgb8; png compressed bgr8", data=png.tobytes()))

    def publish_until(done, shades, frame_age: float, at_least: int, what: str) -> None:
        """Publish every 50 ms, ``at_least`` times and then until ``done()``, however slowly
        the actor keeps up (a fixed number of publications was a race on a loaded machine)."""
        published = 0

        def one_more():
            nonlocal published
            publish(next(shades), frame_age)
            published += 1
            time.sleep(0.05)
            return published >= at_least and done()

        wait_for(one_more, 60, what)

    # frames half a second behind the joint state: stale, the actor must wait, not act
    publish_until(lambda: actor.stale_frames > 0, itertools.repeat(50), 0.5, 15, "a step refused for stale frames")
    assert actor.total_steps == 0 and not sent.messages
    # fresh frames: steps, and transitions carrying the policy's view of each camera once
    # (shades 60, 62, ... up to 252, then 252 again: the wrist's odd shade + 1 stays a byte)
    shades = itertools.chain(range(60, 254, 2), itertools.repeat(252))
    publish_until(lambda: len(sent.messages) >= 3, shades, 0.01, 30, "three transitions")
    transitions = sent.wait(3, timeout=30)
    for t in transitions:
        assert t.observation_spec == spec.fingerprint and len(t.observation) == 9
        assert [(i.width, i.height, i.encoding) for i in t.images] == [(64, 64, "rgb8")] * 2
        assert not t.next_images  # the next transition brings s_{t+1}'s frames
        front_view, wrist_view = (np.frombuffer(bytes(i.data), np.uint8).reshape(64, 64, 3).astype(int)
                                  for i in t.images)
        # the front crop kept only the shaded square; the wrist frame (PNG, not cropped) kept its border
        shade, wrist_shade = front_view[0, 0, 0], wrist_view[32, 32, 0]
        assert front_view.min() == front_view.max() == shade >= 60
        # each camera's newest frame: the two may come from different publications (50 ms and 2 shades
        # apart), all within max_age (0.15 s: 3 publications); the wrist's PNG decodes to its exact odd shade
        assert wrist_shade % 2 == 1 and abs(wrist_shade - 1 - shade) <= 6 and wrist_view[0, 0, 0] == 0
    for name in ("front", "wrist"):
        view = views[name].wait(1, timeout=30)[-1]
        assert (view.width, view.height) == (64, 64)
    assert actor.drops.total == 0


def header(stamp):
    from std_msgs.msg import Header

    return Header(stamp=stamp, frame_id="base_link")


def rclpy_duration(seconds: float):
    from rclpy.duration import Duration

    return Duration(nanoseconds=int(seconds * 1e9))
