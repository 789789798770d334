"""SO-101 kinematics on Pinocchio, from the URDF in urdf/ (no ROS).

The policy commands end-effector *positions*; the arm has five joints before the gripper, so
position-only IK is redundant. :meth:`SO101Kinematics.solve` uses damped least squares with a
small pull of the redundant directions towards a rest posture (the current joints), which keeps
the wrist where it was instead of wandering. Units: metres and radians, base_link frame
(REP-103). The gripper joint is not part of the IK: it is passed through.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pinocchio as pin

ARM_JOINTS = 5  # shoulder_pan .. wrist_roll; index 5 is the gripper


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
    def __init__(self, urdf_path: str | None = None, ee_frame: str = "gripper_frame_link"):
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
        return self.fk(q).translation.copy()

    def solve(self, target, q_init, tolerance: float = 1e-4, max_iterations: int = 60,
              restarts: int = 6) -> IKResult:
        """Joint positions that put the end effector at ``target`` (metres), starting from
        ``q_init``; joints are kept within their limits at every iteration. If a start gets
        stuck against a limit, a few restarts from spread-out postures are tried (seeded, so
        the answer is deterministic); the best result is returned either way."""
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
            err_vec = target - self.data.oMf[self.ee].translation
            err = float(np.linalg.norm(err_vec))
            if err < tolerance:
                return IKResult(q, err, it, True)
            jac = pin.getFrameJacobian(self.model, self.data, self.ee, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)
            j = jac[:3, :ARM_JOINTS]
            # damped pseudo-inverse for the position error; the redundant directions (null
            # space of j) are used only to drift back towards the rest posture
            j_pinv = j.T @ np.linalg.inv(j @ j.T + damping * np.eye(3))
            null = np.eye(ARM_JOINTS) - j_pinv @ j
            dq = j_pinv @ err_vec + null @ (rest_weight * (rest[:ARM_JOINTS] - q[:ARM_JOINTS]))
            q[:ARM_JOINTS] += dq
            q = np.clip(q, self.lower, self.upper)
        return IKResult(q, err, max_iterations, err < tolerance)


def gripper_target(command: float, held: float | None, measured: float, open_position: float,
                   closed_position: float) -> float:
    """The gripper joint target for a normalised gripper command: -1 close, +1 open, 0 stay
    (at the target held so far, or where it is when nothing was commanded yet)."""
    if command <= -0.5:
        return closed_position
    if command >= 0.5:
        return open_position
    return float(measured) if held is None else held
