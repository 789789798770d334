"""SO-101 kinematics on Pinocchio, from the URDF in urdf/ (no ROS).

The policy commands end-effector *positions*; the arm has five joints before the gripper, so
position-only IK is redundant. :meth:`SO101Kinematics.solve` uses damped least squares with a
small pull of the redundant directions towards a rest posture (the current joints), which keeps
the wrist where it was instead of wandering. Units: metres and radians, base_link frame
(REP-103). The gripper joint is not part of the IK: it is passed through.

For grasping (``pick_cube``) the controlled point is the tool centre point between the jaws
(``tcp_offset`` from the gripper frame) and :meth:`SO101Kinematics.solve` with ``top_down``
also keeps the gripper pointing straight down with the jaws closing along base y: a
position-only solution reaches the cube with the jaws at whatever angle the arm arrives, and
a block is then touched, not straddled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pinocchio as pin

ARM_JOINTS = 5  # shoulder_pan .. wrist_roll; index 5 is the gripper
# Axes of gripper_frame_link: z runs out of the gripper along the jaws (the approach), x from
# the moving jaw to the fixed jaw (the closing direction).
APPROACH_AXIS, JAW_AXIS = 2, 0
# Midpoint of the two fingertip pads with the jaws 4 cm apart, in gripper_frame_link (metres):
# the point that should sit at the block's centre line (measured on the MuJoCo model).
GRASP_TCP_OFFSET = (-0.026, 0.0, -0.001)
ORIENTATION_WEIGHT = 0.03  # metres of TCP position traded for one unit of gripper axis error (top-down IK)


def default_urdf() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(here, "urdf", "so101.urdf")
    if os.path.isfile(path):
        return path
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory("hilserl_ros"), "urdf", "so101.urdf")


@dataclass
class IKResult:
    q: np.ndarray  # joint positions (rad), all six joints, within limits
    position_error: float  # metres between the reached and the asked position
    iterations: int
    converged: bool


class WorkspaceBox:
    """Axis-aligned box the end effector must stay in (metres, base frame)."""

    def __init__(self, lower, upper):
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        if self.lower.shape != (3,) or self.upper.shape != (3,) or np.any(self.lower >= self.upper):
            raise ValueError(f"workspace box needs lower < upper on x, y, z, got {self.lower} / {self.upper}")

    def clamp(self, point) -> tuple[np.ndarray, bool]:
        """The nearest point inside the box, and whether clamping moved it."""
        point = np.asarray(point, float)
        inside = np.clip(point, self.lower, self.upper)
        return inside, bool(np.any(inside != point))

    def contains(self, point, tolerance: float = 0.0) -> bool:
        p = np.asarray(point, float)
        return bool(np.all(p >= self.lower - tolerance) and np.all(p <= self.upper + tolerance))


class SO101Kinematics:
    def __init__(self, urdf_path: str | None = None, ee_frame: str = "gripper_frame_link", tcp_offset=(0.0, 0.0, 0.0)):
        self.tcp_offset = np.asarray(tcp_offset, float)
        if self.tcp_offset.shape != (3,) or not np.all(np.isfinite(self.tcp_offset)):
            raise ValueError(f"tcp_offset must be 3 finite values (metres), got {tcp_offset}")
        self.model = pin.buildModelFromUrdf(urdf_path or default_urdf())
        self.data = self.model.createData()
        if not self.model.existFrame(ee_frame):
            raise ValueError(f"{ee_frame} is not a frame of the URDF")
        self.ee = self.model.getFrameId(ee_frame)
        self.lower = self.model.lowerPositionLimit.copy()
        self.upper = self.model.upperPositionLimit.copy()
        self.joint_names = tuple(self.model.names[1:])

    def fk(self, q) -> pin.SE3:
        pin.framesForwardKinematics(self.model, self.data, np.asarray(q, float))
        return self.data.oMf[self.ee].copy()

    def position(self, q) -> np.ndarray:
        """World position of the controlled point (the gripper frame plus ``tcp_offset``)."""
        pose = self.fk(q)
        return pose.translation + pose.rotation @ self.tcp_offset

    def tilt(self, q) -> float:
        """Angle (rad) between the gripper's approach axis and straight down."""
        approach = self.fk(q).rotation[:, APPROACH_AXIS]
        return float(np.arccos(np.clip(-approach[2], -1.0, 1.0)))

    def solve(self, target, q_init, tolerance: float = 1e-4, max_iterations: int = 60,
              restarts: int = 6, top_down: bool = False) -> IKResult:
        """Joint positions that put the end effector at ``target`` (metres), starting from
        ``q_init``; joints are kept within their limits at every iteration. If a start gets
        stuck against a limit, a few restarts from spread-out postures are tried (seeded, so
        the answer is deterministic); the best result is returned either way."""
        if top_down:
            return self._solve_top_down(target, q_init, tolerance, max_iterations)
        best = self._solve_from(target, q_init, tolerance, max_iterations)
        rng = np.random.default_rng(0)
        for _ in range(restarts):
            if best.converged:
                break
            start = np.asarray(q_init, float).copy()
            start[:ARM_JOINTS] = rng.uniform(self.lower[:ARM_JOINTS], self.upper[:ARM_JOINTS]) * 0.8
            attempt = self._solve_from(target, start, tolerance, max_iterations)
            if attempt.position_error < best.position_error:
                best = IKResult(attempt.q, attempt.position_error, best.iterations + attempt.iterations,
                                attempt.converged)
        return best

    def _solve_from(self, target, q_init, tolerance: float, max_iterations: int,
                    damping: float = 1e-6, rest_weight: float = 0.1) -> IKResult:
        target = np.asarray(target, float)
        q = np.clip(np.asarray(q_init, float).copy(), self.lower, self.upper)
        rest = q.copy()
        err = np.inf
        for it in range(1, max_iterations + 1):
            pin.computeJointJacobians(self.model, self.data, q)
            pin.framesForwardKinematics(self.model, self.data, q)
            pose = self.data.oMf[self.ee]
            lever = pose.rotation @ self.tcp_offset
            err_vec = target - (pose.translation + lever)
            err = float(np.linalg.norm(err_vec))
            if err < tolerance:
                return IKResult(q, err, it, True)
            jac = pin.getFrameJacobian(self.model, self.data, self.ee, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)
            j = jac[:3, :ARM_JOINTS] - _skew(lever) @ jac[3:, :ARM_JOINTS]
            # damped pseudo-inverse for the position error; the redundant directions (null
            # space of j) are used only to drift back towards the rest posture
            j_pinv = j.T @ np.linalg.inv(j @ j.T + damping * np.eye(3))
            null = np.eye(ARM_JOINTS) - j_pinv @ j
            dq = j_pinv @ err_vec + null @ (rest_weight * (rest[:ARM_JOINTS] - q[:ARM_JOINTS]))
            q[:ARM_JOINTS] += dq
            q = np.clip(q, self.lower, self.upper)
        return IKResult(q, err, max_iterations, err < tolerance)

    def _solve_top_down(self, target, q_init, tolerance: float, max_iterations: int,
                        damping: float = 1e-5) -> IKResult:
        """Damped least squares on 7 rows: the TCP position (3), the approach axis pointing
        down (3, rank 2) and the jaw axis free of a base-x component (1: jaws along base y),
        the axis rows weighted by ``ORIENTATION_WEIGHT``. Five joints for what is locally five
        constraints; near the edge of the top-down workspace (above ~9 cm, past ~26 cm out:
        the wrist_flex limit) the answer is the weighted compromise, the gripper tilting a
        little and the position off by millimetres (``converged`` false)."""
        target = np.asarray(target, float)
        q = np.clip(np.asarray(q_init, float).copy(), self.lower, self.upper)
        down, base_x = np.array([0.0, 0.0, -1.0]), np.array([1.0, 0.0, 0.0])
        w = ORIENTATION_WEIGHT
        err = np.inf
        for it in range(1, max_iterations + 1):
            pin.computeJointJacobians(self.model, self.data, q)
            pin.framesForwardKinematics(self.model, self.data, q)
            pose = self.data.oMf[self.ee]
            rot = pose.rotation
            lever = rot @ self.tcp_offset
            approach, jaw = rot[:, APPROACH_AXIS], rot[:, JAW_AXIS]
            pos_err = target - (pose.translation + lever)
            err = float(np.linalg.norm(pos_err))
            orient_err = np.concatenate([down - approach, [-float(base_x @ jaw)]])
            if err < tolerance and np.linalg.norm(orient_err) < 1e-3:
                return IKResult(q, err, it, True)
            jac = pin.getFrameJacobian(self.model, self.data, self.ee, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)
            j_ang = jac[3:, :ARM_JOINTS]
            # an axis a turns as w x a: da/dq = -[a]x J_w
            rows = np.vstack([jac[:3, :ARM_JOINTS] - _skew(lever) @ j_ang, w * (-_skew(approach) @ j_ang),
                              w * (base_x @ (-_skew(jaw) @ j_ang))[None, :]])
            e = np.concatenate([pos_err, w * orient_err])
            # a joint at its limit that the step would push further is taken out of the step, so
            # the others make up for it (clipping alone would stall against the limit)
            free = np.ones(ARM_JOINTS, bool)
            for _ in range(ARM_JOINTS):
                cols = rows * free
                dq = cols.T @ np.linalg.solve(cols @ cols.T + damping * np.eye(len(e)), e)
                pushing = ((q[:ARM_JOINTS] <= self.lower[:ARM_JOINTS] + 1e-9) & (dq < 0)) | (
                    (q[:ARM_JOINTS] >= self.upper[:ARM_JOINTS] - 1e-9) & (dq > 0))
                if not np.any(pushing & free):
                    break
                free &= ~pushing
            norm = float(np.linalg.norm(dq))
            if norm > 0.3:  # long steps overshoot into the joint limits
                dq *= 0.3 / norm
            q[:ARM_JOINTS] += dq
            q = np.clip(q, self.lower, self.upper)
        return IKResult(q, err, max_iterations, False)


def _skew(v) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


class EndEffectorTarget:
    """Where the next EE command is relative to: the last commanded target, not the measured
    position. A position servo under load settles short of its target (the arm sags a few
    millimetres, more with a cube in the gripper); deltas added to the measured position would
    carry that sag into every command and the arm would drift down and back while told to go
    up. The target re-anchors to the measured position when they are ``reanchor_distance``
    apart (a reset, a collision, a person moving the arm) or when nothing was commanded yet."""

    def __init__(self, reanchor_distance: float = 0.02):
        self.reanchor_distance = reanchor_distance
        self.target: np.ndarray | None = None

    def reset(self) -> None:
        self.target = None

    def base(self, measured) -> np.ndarray:
        measured = np.asarray(measured, float)
        if self.target is None or np.linalg.norm(self.target - measured) > self.reanchor_distance:
            self.target = measured.copy()
        return self.target.copy()

    def commanded(self, target) -> None:
        """The target actually sent (after the box clamp; the reached point if IK fell short)."""
        self.target = np.asarray(target, float).copy()


class GripperTarget:
    """The gripper joint target for normalised commands: -1 close, +1 open, 0 stay (keep the
    last goal). The target moves towards the goal by at most ``max_step`` rad per command, so
    the real servo is never slammed shut and one close command completes over the next steps
    (the grasp critic need not repeat it). Starts where the gripper is measured."""

    def __init__(self, open_position: float, closed_position: float, max_step: float = float("inf")):
        self.open_position, self.closed_position, self.max_step = open_position, closed_position, max_step
        self.reset()

    def reset(self) -> None:
        self.goal: float | None = None
        self.target: float | None = None

    def update(self, command: float, measured: float) -> float:
        if self.target is None:
            self.goal = self.target = float(measured)
        if command <= -0.5:
            self.goal = self.closed_position
        elif command >= 0.5:
            self.goal = self.open_position
        self.target += float(np.clip(self.goal - self.target, -self.max_step, self.max_step))
        return self.target
