"""Simulated camera node (/sim_camera): renders the MuJoCo scene as the sim node's physics has
it (joints from /joint_states, target or cube from /sim/task_state) and publishes it on
/camera/image_raw, the topic the real camera node uses.

Its own process on purpose: software rendering on a CPU machine takes ~0.25 s a frame and
holds the interpreter meanwhile. ``render_rate`` is capped by what the CPU sustains: a frame
that is not ready in time is skipped, never queued.
"""
from __future__ import annotations

import array

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.msg import TaskState
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node
from hilserl_ros.sim.world import TASKS, SO101World

PARAMS = [
    ParamSpec("task", "reach", "task: " + " | ".join(TASKS), read_only=True,
              validator=lambda v: None if v in TASKS else f"must be one of {TASKS}"),
    ParamSpec("render_rate", 2.0, "frames per second (software GL: ~4 at most here)", min=0.1, max=30.0, unit="Hz"),
    ParamSpec("render_size", 128, "image side (the policy's input size)", min=32, max=512, read_only=True, unit="px"),
]


class SimCameraNode(Node):
    def __init__(self, **node_options):
        super().__init__("sim_camera", **node_options)
        self.params = declare(self, PARAMS)
        self.world = SO101World(self.params["task"], render_size=self.params["render_size"])
        self.joints: tuple | None = None  # (positions, stamp)
        self.task: TaskState | None = None
        self.pub = self.create_publisher(Image, topics.CAMERA_IMAGE, qos.SENSOR)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        self.create_subscription(TaskState, topics.TASK_STATE, self._on_task, qos.EVENTS)
        self.timer = self.create_timer(1.0 / self.params["render_rate"], self._render)
        self.params.bind_rate("render_rate", self.timer)

    def _on_joints(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if all(n in index for n in JOINT_NAMES) and len(msg.position) == len(msg.name):
            self.joints = (np.array([msg.position[index[n]] for n in JOINT_NAMES]), msg.header.stamp)

    def _on_task(self, msg: TaskState) -> None:
        self.task = msg

    def _render(self) -> None:
        if self.joints is None or self.task is None:
            return
        q, stamp = self.joints
        goal = np.array([self.task.goal.x, self.task.goal.y, self.task.goal.z])
        self.world.show(q, goal, block=goal if self.task.task == "pick_cube" else None)
        pixels = self.world.render()
        msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", is_bigendian=0,
                    step=pixels.shape[1] * 3)
        msg.data = array.array("B", pixels.tobytes())  # taken as is (bytes would be checked one by one)
        msg.header.stamp, msg.header.frame_id = stamp, topics.CAMERA_FRAME
        self.pub.publish(msg)

    def close(self) -> None:
        self.world.close()


def main():
    return run_node(SimCameraNode)


if __name__ == "__main__":
    raise SystemExit(main())
