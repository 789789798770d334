"""Simulated camera node (/sim_camera): renders the MuJoCo scene as the sim node's physics has
it (joints from /joint_states, target or cube from /sim/task_state) and publishes each camera
on its topic, as real cameras would: ``front`` on /camera/image_raw (the real camera node's
topic), ``wrist`` on /camera/wrist/image_raw.

Which cameras: those of the observation in use (``task``/``observation``, config/observation),
or only ``front`` for a state observation (to watch it). A frame is rendered for each new task
state (each control period boundary under lockstep), from the first joint state measured at or
after it, and stamped with that joint state's stamp: the actor pairs frames and joint states by
stamp. Under lockstep every task state is rendered (the actor waits for its frames); without,
at most ``render_rate`` frames per simulated second per camera. Never queued. Its own process: rendering holds the interpreter.

What rendering costs while the graph runs goes to /diagnostics every ``report_period`` (wall)
seconds, one status per camera (median render time, the frames per second it allows, frames
rendered), and to the log every 30 s; ``make bench-graph`` reads the diagnostics.
"""
from __future__ import annotations

import array
import collections
import time

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image, JointState

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.msg import TaskState
from hilserl_ros.observation import load_observation
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare, observation_params
from hilserl_ros.ros.messages import seconds as _seconds
from hilserl_ros.ros.runner import run_node
from hilserl_ros.sim.world import SO101World

PARAMS = [
    *observation_params("the observation whose cameras are rendered (state: front only)"),
    ParamSpec("render_rate", 10.0, "without lockstep: most frames per simulated second per camera",
              min=0.1, max=60.0, unit="Hz"),
    ParamSpec("lockstep", False, "the simulation's lockstep: render every task state (one per control period "
              "boundary, and the reset's), which the actor waits for", read_only=True),
    ParamSpec("render_size", 128, "image side (the policy's input size)", min=32, max=512, read_only=True, unit="px"),
    ParamSpec("report_period", 5.0, "wall seconds between render-cost diagnostics", min=0.5, max=600.0, unit="s",
              read_only=True),
]


class SimCameraNode(Node):
    def __init__(self, **node_options):
        super().__init__("sim_camera", **node_options)
        self.params = declare(self, PARAMS)
        spec = load_observation(self.params["task"], self.params["observation"],
                                self.params["observation_file"] or None)
        self.cameras = {c.name: c.topic for c in spec.cameras} or {"front": topics.CAMERA_IMAGE}
        self.world = SO101World(self.params["task"], render_size=self.params["render_size"])
        self.task: TaskState | None = None
        self.wanted: float | None = None  # stamp of the task state still to be rendered
        self.last_render = -1e9
        self.rendered = 0
        self.pubs = {name: self.create_publisher(Image, topic, qos.SENSOR) for name, topic in self.cameras.items()}
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        self.create_subscription(TaskState, topics.TASK_STATE, self._on_task, qos.EVENTS)
        self.render_seconds = {name: collections.deque(maxlen=500) for name in self.cameras}
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.EVENTS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(30.0, self._report, clock=steady)
        self.create_timer(self.params["report_period"], self._diagnose, clock=steady)
        self.get_logger().info(f"rendering {', '.join(f'{n} on {t}' for n, t in self.cameras.items())}")

    def _costs(self) -> dict[str, float]:
        """Median render seconds per camera over its last 500 frames."""
        return {name: float(np.median(s)) for name, s in self.render_seconds.items() if s}

    def _report(self) -> None:
        parts = [f"{name} {1e3 * median:.1f} ms ({1.0 / median:.0f} frames/s possible)"
                 for name, median in self._costs().items()]
        if parts:
            self.get_logger().info(f"[CAMERA] {self.rendered} frames per camera so far; median render time "
                                   + ", ".join(parts))

    def _diagnose(self) -> None:
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        costs = self._costs()
        for name, topic in self.cameras.items():
            status = DiagnosticStatus(name=f"sim_camera: {name}", hardware_id=topic)
            median = costs.get(name)
            if median is None:
                status.level, status.message = DiagnosticStatus.WARN, "no frame rendered yet"
            else:
                status.level, status.message = DiagnosticStatus.OK, f"{1.0 / median:.0f} frames/s possible"
            status.values = [KeyValue(key="render_ms_median", value=f"{1e3 * median:.3f}" if median else ""),
                             KeyValue(key="frames_per_s_possible", value=f"{1.0 / median:.2f}" if median else ""),
                             KeyValue(key="frames", value=str(self.rendered)),
                             KeyValue(key="size", value=str(self.params["render_size"]))]
            out.status.append(status)
        self.diag_pub.publish(out)

    def _on_task(self, msg: TaskState) -> None:
        self.task = msg
        stamp = _seconds(msg.header.stamp)
        if self.params["lockstep"] or stamp - self.last_render >= 1.0 / self.params["render_rate"] - 1e-6:
            self.wanted = stamp

    def _on_joints(self, msg: JointState) -> None:
        if self.wanted is None or self.task is None or _seconds(msg.header.stamp) < self.wanted - 1e-6:
            return
        index = {n: i for i, n in enumerate(msg.name)}
        if any(n not in index for n in JOINT_NAMES) or len(msg.position) != len(msg.name):
            return
        q = np.array([msg.position[index[n]] for n in JOINT_NAMES])
        self.last_render, self.wanted = self.wanted, None
        goal = np.array([self.task.goal.x, self.task.goal.y, self.task.goal.z])
        self.world.show(q, goal, block=goal if self.task.task == "pick_cube" else None)
        for name, pub in self.pubs.items():
            start = time.perf_counter()
            pixels = self.world.render(name)
            self.render_seconds[name].append(time.perf_counter() - start)
            image = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", is_bigendian=0,
                          step=pixels.shape[1] * 3)
            image.data = array.array("B", pixels.tobytes())  # taken as is (bytes would be checked one by one)
            image.header.stamp = msg.header.stamp  # the joint state it shows
            image.header.frame_id = f"{name}_camera_link" if name != "front" else topics.CAMERA_FRAME
            pub.publish(image)
        self.rendered += 1

    def close(self) -> None:
        self.world.close()


def main():
    return run_node(SimCameraNode)


if __name__ == "__main__":
    raise SystemExit(main())
