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

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from hilserl_ros.vision.images import crop_error, crop_resize, to_uint8

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


# --------------------------------------------------------------------------- configuration
# What an observation is made of is configured per task (config/observation/<task>.yaml) and
# read by the actor, the learner and the ROS-free env alike, so the three agree by construction;
# each transition carries the description's fingerprint and the learner refuses any other.
STATE_PARTS = {  # name -> (values, scale); scales as in build_observation
    "joints": 6,  # measured joint positions (rad), gripper last
    "ee_position": 3,  # FK of the measured joints (x5)
    "goal": 3,  # the target (reach) or the cube (pick_cube): known only in simulation (x5)
    "goal_offset": 3,  # goal - EE (x20): known only in simulation
}
PRIVILEGED = frozenset({"goal", "goal_offset"})  # never on the real arm, never with cameras


@dataclass(frozen=True)
class CameraSpec:
    name: str  # key of the camera in transitions and buffers ("front", "wrist")
    topic: str  # sensor_msgs/Image, or sensor_msgs/CompressedImage when it ends in /compressed
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)  # px (x, y, w, h) of the received frame; zeros = whole
    size: int = 128  # px, side of the square image the policy sees
    max_age: float = 0.15  # s, a frame older than this next to the joint state of its step is stale

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)


@dataclass(frozen=True)
class ObservationSpec:
    task: str
    name: str  # "state" | "pixels" | ...
    state: tuple[str, ...]
    cameras: tuple[CameraSpec, ...] = ()

    def __post_init__(self):
        unknown = [k for k in self.state if k not in STATE_PARTS]
        if unknown:
            raise ValueError(f"observation {self.label}: unknown state keys {unknown} (known: {sorted(STATE_PARTS)})")
        if self.cameras and PRIVILEGED & set(self.state):
            raise ValueError(f"observation {self.label}: privileged keys {sorted(PRIVILEGED & set(self.state))} "
                             f"are not allowed next to cameras: a policy would read the goal from them, not the image")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"observation {self.label}: camera names repeat: {names}")
        for camera in self.cameras:
            crop_problem = crop_error(camera.crop) if any(camera.crop) else None
            if crop_problem:
                raise ValueError(f"observation {self.label}: camera {camera.name}: {crop_problem}")
            if not 16 <= camera.size <= 512:
                raise ValueError(f"observation {self.label}: camera {camera.name}: size must be in [16, 512]")
        if not self.state and not self.cameras:
            raise ValueError(f"observation {self.label}: neither state keys nor cameras")

    @property
    def label(self) -> str:
        return f"{self.task}/{self.name}"

    @property
    def obs_dim(self) -> int:
        return sum(STATE_PARTS[k] for k in self.state)

    @property
    def image_keys(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def image_shapes(self) -> dict[str, tuple[int, int, int]]:
        return {c.name: c.shape for c in self.cameras}

    @property
    def privileged(self) -> bool:
        return bool(PRIVILEGED & set(self.state))

    @property
    def fingerprint(self) -> str:
        """``task/name:hash`` of everything that shapes a transition (keys, order, sizes, crops)."""
        layout = json.dumps({"state": list(self.state), "cameras": [[c.name, list(c.crop), c.size]
                                                                    for c in self.cameras]}, sort_keys=True)
        return f"{self.label}:{hashlib.sha256(layout.encode()).hexdigest()[:12]}"

    def check_world(self, use_sim: bool) -> None:
        if self.privileged and not use_sim:
            raise ValueError(f"observation {self.label} uses {sorted(PRIVILEGED & set(self.state))}, which only "
                             f"the simulation knows; on the real arm choose an observation without them (pixels)")

    def build_state(self, joints, ee, goal=None) -> np.ndarray:
        joints = np.asarray(joints, np.float32).reshape(-1)
        ee = np.asarray(ee, np.float32).reshape(-1)
        parts = {"joints": lambda: joints, "ee_position": lambda: POSITION_SCALE * ee}
        if self.privileged:
            if goal is None:
                raise ValueError(f"observation {self.label} needs the goal")
            goal = np.asarray(goal, np.float32).reshape(-1)
            parts["goal"] = lambda: POSITION_SCALE * goal
            parts["goal_offset"] = lambda: OFFSET_SCALE * (goal - ee)
        if joints.shape != (6,) or ee.shape != (3,):
            raise ValueError(f"observation parts must be 6 joints and 3 EE values; got {joints.shape}, {ee.shape}")
        return np.concatenate([parts[k]() for k in self.state]).astype(np.float32) if self.state \
            else np.zeros(0, np.float32)

    def process_frame(self, camera: CameraSpec, frame: np.ndarray) -> np.ndarray:
        """A received RGB frame as the policy sees it: cropped, resized, uint8 [size, size, 3]."""
        crop = None if not any(camera.crop) else camera.crop
        return crop_resize(to_uint8(frame), crop, (camera.size, camera.size))


def observation_dir(share: str | None = None) -> str:
    from hilserl_ros.graph import share_dir
    return os.path.join(share or share_dir(), "config", "observation")


def load_observation(task: str, name: str = "state", path: str | None = None) -> ObservationSpec:
    """The observation ``name`` of ``task`` from config/observation/<task>.yaml (or ``path``)."""
    import yaml

    path = path or os.path.join(observation_dir(), f"{task}.yaml")
    with open(path) as fh:
        document = yaml.safe_load(fh) or {}
    if name not in document:
        raise ValueError(f"{path} has no observation {name!r} (it has {sorted(document)})")
    entry = document[name] or {}
    cameras = tuple(CameraSpec(name=c["name"], topic=c["topic"], crop=tuple(int(v) for v in c.get("crop", (0, 0, 0, 0))),
                               size=int(c.get("size", 128)), max_age=float(c.get("max_age", 0.15)))
                    for c in entry.get("cameras", []) or [])
    return ObservationSpec(task=task, name=name, state=tuple(entry.get("state", [])), cameras=cameras)
