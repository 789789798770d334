"""End-effector IK node (/ee_ik): normalised EE deltas -> joint targets.

Each ``EndEffectorCommand`` (deltas in [-1, 1]) becomes: target = FK(measured joints) +
``action_scale`` * delta, clamped to the workspace box, solved to joint positions within the
joint limits (Pinocchio, URDF in urdf/), published on /joint_commands for the hardware node.
The gripper command (-1 close, 0 stay, +1 open) moves the gripper joint to its closed or open
position or holds it. Also publishes the EE pose (from /joint_states) and the workspace box as
latched markers. ``action_scale`` and the box are live parameters: a change applies to the next
command. ``debug_ik`` turns on one log line per command (off by default: at 10 Hz it floods).
"""
from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import Point, PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.kinematics import ARM_JOINTS, EndEffectorTarget, GripperTarget, SO101Kinematics, WorkspaceBox
from hilserl_ros.msg import EndEffectorCommand
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node
from hilserl_ros.ros.validation import DropCounter, non_finite
from hilserl_ros.sim.world import DEFAULT_BOX


def _three_finite(value) -> str | None:
    if len(value) != 3 or not all(math.isfinite(v) for v in value):
        return "needs three finite numbers [x, y, z] in metres"
    return None


PARAMS = [
    ParamSpec("action_scale", 0.02, "metres of EE motion per unit of normalised delta", min=0.001, max=0.1, unit="m"),
    ParamSpec("box_min", list(DEFAULT_BOX[0]), "workspace box lower corner [x, y, z] in base_link", unit="m",
              validator=_three_finite),
    ParamSpec("box_max", list(DEFAULT_BOX[1]), "workspace box upper corner [x, y, z] in base_link", unit="m",
              validator=_three_finite),
    ParamSpec("gripper_open", 1.2, "gripper joint position for 'open'", min=-0.2, max=1.75, unit="rad"),
    ParamSpec("gripper_closed", 0.0, "gripper joint position for 'closed'", min=-0.2, max=1.75, unit="rad"),
    ParamSpec("gripper_max_step", 0.4, "most the gripper target moves per command: open to closed over a few "
              "commands, never a slam (0: jumps)", min=0.0, max=2.0, unit="rad"),
    ParamSpec("reanchor_distance", 0.02, "deltas add to the last commanded EE target (a loaded servo settles "
              "short of it) unless the arm is this far from it; then to the measured position", min=0.0, max=0.5,
              unit="m"),
    ParamSpec("top_down", False, "keep the gripper pointing down with the jaws along base y (grasping)"),
    ParamSpec("tcp_offset", [0.0, 0.0, 0.0], "controlled point in gripper_frame_link [x, y, z] (the grasp point "
              "between the jaws for grasping); /ee_pose is this point", unit="m", validator=_three_finite,
              read_only=True),
    ParamSpec("debug_ik", False, "log every IK solve (targets, clamping, joint solution)"),
    ParamSpec("urdf", "", "URDF file; empty = the package's urdf/so101.urdf", read_only=True),
]


class IKNode(Node):
    def __init__(self, **node_options):
        super().__init__("ee_ik", **node_options)
        self.params = declare(self, PARAMS)
        self.kin = SO101Kinematics(self.params["urdf"] or None, tcp_offset=self.params["tcp_offset"])
        self.box = WorkspaceBox(self.params["box_min"], self.params["box_max"])
        self.params.on_change("box_min", lambda _: self._rebuild_box())
        self.params.on_change("box_max", lambda _: self._rebuild_box())
        self.measured: np.ndarray | None = None
        self.gripper = GripperTarget(self.params["gripper_open"], self.params["gripper_closed"])
        self.ee_target = EndEffectorTarget(self.params["reanchor_distance"])
        self.drops = DropCounter(self.get_logger(), "EE command")
        self.clamped_commands = 0
        self.unsolved_commands = 0
        self.commands = 0
        self.joint_pub = self.create_publisher(JointState, topics.JOINT_COMMANDS, qos.EVENTS)
        self.pose_pub = self.create_publisher(PoseStamped, topics.EE_POSE, qos.EVENTS)
        self.marker_pub = self.create_publisher(MarkerArray, topics.WORKSPACE_MARKERS, qos.LATCHED)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        self.create_subscription(EndEffectorCommand, topics.EE_COMMAND, self._on_command, qos.EVENTS)
        self._publish_box()

    def _rebuild_box(self) -> None:
        try:
            self.box = WorkspaceBox(self.params["box_min"], self.params["box_max"])
        except ValueError as err:  # each corner is valid alone; the pair may not be (yet)
            self.get_logger().error(f"workspace box not changed: {err}")
            return
        self._publish_box()

    # ------------------------------------------------------------------ inputs
    def _on_joints(self, msg: JointState) -> None:
        index = {name: i for i, name in enumerate(msg.name)}
        if any(name not in index for name in JOINT_NAMES) or len(msg.position) != len(msg.name):
            self.drops.drop(f"joint state without all of {JOINT_NAMES}")
            return
        q = np.array([msg.position[index[n]] for n in JOINT_NAMES])
        if non_finite("position", q):
            self.drops.drop(non_finite("joint state position", q))
            return
        self.measured = q
        pose = self.kin.fk(q)
        out = PoseStamped()
        out.header.stamp = msg.header.stamp
        out.header.frame_id = topics.BASE_FRAME
        tcp = pose.translation + pose.rotation @ self.kin.tcp_offset
        out.pose.position.x, out.pose.position.y, out.pose.position.z = (float(v) for v in tcp)
        w, x, y, z = _quaternion(pose.rotation)
        out.pose.orientation.w, out.pose.orientation.x, out.pose.orientation.y, out.pose.orientation.z = w, x, y, z
        self.pose_pub.publish(out)

    def _on_command(self, msg: EndEffectorCommand) -> None:
        delta = np.array([msg.dx, msg.dy, msg.dz, msg.gripper], float)
        reason = non_finite("EE command", delta)
        if reason:
            self.drops.drop(reason)
            return
        if self.measured is None:
            self.drops.drop("no joint state received yet")
            return
        delta = np.clip(delta, -1.0, 1.0)
        q = self.measured
        current = self.kin.position(q)
        scale = self.params["action_scale"]
        self.ee_target.reanchor_distance = self.params["reanchor_distance"]
        wanted = self.ee_target.base(current) + scale * delta[:3]
        target, clamped = self.box.clamp(wanted)
        result = self.kin.solve(target, q, top_down=self.params["top_down"])
        self.ee_target.commanded(target if result.converged else self.kin.position(result.q))
        q_cmd = result.q.copy()
        q_cmd[ARM_JOINTS] = self._gripper(delta[3], q[ARM_JOINTS])
        self.commands += 1
        self.clamped_commands += clamped
        self.unsolved_commands += not result.converged
        if not result.converged and self.unsolved_commands == 1:
            self.get_logger().warning(f"IK did not reach {np.round(target, 3)} (error {result.position_error * 1000:.1f} mm); "
                                      "sending the closest solution (further misses counted, see debug_ik)")
        if self.params["debug_ik"]:
            self.get_logger().info(
                f"[IK] delta={np.round(delta, 3)} scale={scale} ee={np.round(current, 4)} -> "
                f"target={np.round(target, 4)}{' (clamped to box)' if clamped else ''} "
                f"err={result.position_error * 1000:.2f} mm it={result.iterations} q={np.round(q_cmd, 3)}")
        out = JointState()
        # the command's stamp carries on: in simulation it names the period boundary it answers
        stamped = msg.header.stamp.sec or msg.header.stamp.nanosec
        out.header.stamp = msg.header.stamp if stamped else self.get_clock().now().to_msg()
        out.name = list(JOINT_NAMES)
        out.position = [float(v) for v in q_cmd]
        self.joint_pub.publish(out)

    def _gripper(self, command: float, measured: float) -> float:
        g, step = self.gripper, self.params["gripper_max_step"]
        g.open_position, g.closed_position = self.params["gripper_open"], self.params["gripper_closed"]
        g.max_step = step if step > 0 else float("inf")
        return g.update(command, measured)

    # ------------------------------------------------------------------ markers
    def _publish_box(self) -> None:
        lo, hi = self.box.lower, self.box.upper
        marker = Marker()
        marker.header.frame_id = topics.BASE_FRAME
        marker.header.stamp = self.get_clock().now().to_msg()
        marker.ns, marker.id, marker.type, marker.action = "workspace_box", 0, Marker.LINE_LIST, Marker.ADD
        marker.scale.x = 0.003
        marker.pose.orientation.w = 1.0
        marker.color = ColorRGBA(r=1.0, g=0.6, b=0.1, a=1.0)
        corners = [np.array([x, y, z]) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        for i, a in enumerate(corners):
            for b in corners[i + 1:]:
                if np.count_nonzero(a != b) == 1:  # the 12 edges differ in one coordinate
                    marker.points += [Point(x=float(a[0]), y=float(a[1]), z=float(a[2])),
                                      Point(x=float(b[0]), y=float(b[1]), z=float(b[2]))]
        self.marker_pub.publish(MarkerArray(markers=[marker]))


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    import pinocchio as pin

    q = pin.Quaternion(rotation)
    return float(q.w), float(q.x), float(q.y), float(q.z)


def main():
    return run_node(IKNode)


if __name__ == "__main__":
    raise SystemExit(main())
