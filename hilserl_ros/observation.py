"""The state observation and the action of the SO-101 tasks (no ROS).

Observation (float32, 15 values), all in base_link, scaled so each part is of order 1:
    joint positions (6, rad) | EE position (3, x5: 1 = 20 cm) | goal (3, x5) | goal - EE (3, x20: 1 = 5 cm)
Without the scaling, the part that decides a reach (goal - EE, a few centimetres, i.e. 0.02
next to joint angles of order 1) is a whisper the networks learn to hear only slowly.
The goal is the reach target or the cube; on the real arm it comes from whatever publishes
the task state. Action (4, normalised [-1, 1]): EE delta x, y, z (times the IK node's
action_scale) and the gripper command (-1 close, 0 stay, +1 open).
"""
from __future__ import annotations

import numpy as np

OBS_DIM = 15
ACTION_DIM = 4
OBS_NAMES = (
    [f"q_{j}" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]
    + ["ee_x", "ee_y", "ee_z", "goal_x", "goal_y", "goal_z", "to_goal_x", "to_goal_y", "to_goal_z"]
)
ACTION_NAMES = ("dx", "dy", "dz", "gripper")


POSITION_SCALE = 5.0  # per metre
OFFSET_SCALE = 20.0  # per metre


def build_observation(joints, ee, goal) -> np.ndarray:
    joints, ee, goal = (np.asarray(v, np.float32).reshape(-1) for v in (joints, ee, goal))
    if joints.shape != (6,) or ee.shape != (3,) or goal.shape != (3,):
        raise ValueError(f"observation parts must be 6 joints, 3 EE, 3 goal; got {joints.shape}, {ee.shape}, {goal.shape}")
    return np.concatenate([joints, POSITION_SCALE * ee, POSITION_SCALE * goal,
                           OFFSET_SCALE * (goal - ee)]).astype(np.float32)
