"""Reading (and stamping) the messages several nodes take: stamps, joint states, camera frames."""
from __future__ import annotations

import numpy as np
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image

from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.vision.ros_image import compressed_to_rgb8, msg_to_rgb8


def seconds(stamp) -> float:
    """A builtin_interfaces/Time as float seconds."""
    return stamp.sec + 1e-9 * stamp.nanosec


def to_stamp(seconds_: float):
    """Float seconds as a builtin_interfaces/Time (the inverse of :func:`seconds`)."""
    return Time(nanoseconds=round(seconds_ * 1e9)).to_msg()


def joint_positions(msg) -> np.ndarray:
    """The six joint positions of a JointState in JOINT_NAMES order; ValueError says what is wrong."""
    index = {n: i for i, n in enumerate(msg.name)}
    if any(n not in index for n in JOINT_NAMES) or len(msg.position) != len(msg.name):
        raise ValueError("joint state without all joints")
    joints = np.array([msg.position[index[n]] for n in JOINT_NAMES])
    if not np.all(np.isfinite(joints)):
        raise ValueError("non-finite joint state")
    return joints


def subscribe_camera(node, spec, camera, on_view, drops, qos_profile):
    """Subscribe ``camera``'s topic (sensor_msgs/Image, or CompressedImage on a .../compressed
    topic). Each frame, cropped and resized as the observation ``spec`` describes, goes to
    ``on_view(camera, view, stamp_seconds)``; a frame that cannot be read is counted in ``drops``."""
    compressed = camera.topic.rstrip("/").endswith("/compressed")

    def on_frame(msg) -> None:
        try:
            view = spec.process_frame(camera, compressed_to_rgb8(msg) if compressed else msg_to_rgb8(msg))
        except ValueError as err:
            drops.drop(f"camera {camera.name} on {camera.topic}: {err}")
            return
        on_view(camera, view, seconds(msg.header.stamp))

    return node.create_subscription(CompressedImage if compressed else Image, camera.topic, on_frame, qos_profile)
