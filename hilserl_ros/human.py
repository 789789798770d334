"""A scripted operator for simulation that intervenes the way a person with a gamepad does
(no ROS).

It watches the task (goal and end effector) and does nothing while the policy makes progress.
When the distance to the goal has not shrunk by ``progress`` metres over the last ``patience``
steps (the policy is stuck or drifting), it takes over, steering straight at the goal with a
saturated proportional command and some hand jitter, and hands back as a person would: once
it has brought the arm within ``release_distance`` of the goal (the policy is left the last
stretch to learn) or after ``takeover_steps`` at most; then it watches again, with its
patience renewed. A policy that is getting there is not interrupted, one that improves is
interrupted less and less, so the intervention rate falls as training goes, as it does with
a real operator.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np


@dataclass
class HumanConfig:
    patience: int = 8  # steps without progress before taking over
    progress: float = 0.005  # metres the distance must shrink over `patience` steps
    takeover_steps: int = 12  # most steps of steering once engaged
    release_distance: float = 0.03  # metres from the goal at which it hands back (0: only after takeover_steps)
    gain: float = 1.0 / 0.02  # normalised command per metre of error (saturates at 2 cm)
    jitter: float = 0.1  # std of the operator's hand noise (normalised units)
    success_radius: float = 0.02  # no need to intervene inside this distance
    seed: int = 0
    demonstrate: bool = False  # drive every step (recording demonstrations), not only when stuck


class ScriptedHuman:
    def __init__(self, config: HumanConfig | None = None):
        self.config = config or HumanConfig()
        self.rng = np.random.default_rng(self.config.seed)
        self.reset()

    def reset(self) -> None:
        self.history: collections.deque = collections.deque(maxlen=self.config.patience + 1)
        self.remaining = 0
        self.engaged_at = 0.0  # distance to the goal when the current takeover began

    @property
    def active(self) -> bool:
        return self.remaining > 0

    def step(self, ee, goal, gripper: float | None = None) -> np.ndarray | None:
        """The operator's normalised action for this step, or None when not intervening."""
        ee, goal = np.asarray(ee, float), np.asarray(goal, float)
        error = goal - ee
        distance = float(np.linalg.norm(error))
        self.history.append(distance)
        if self.config.demonstrate:
            self.remaining = max(self.remaining, 1)  # always engaged: the whole episode is shown
        elif self.remaining == 0 and distance > self.config.success_radius \
                and len(self.history) == self.history.maxlen \
                and self.history[0] - distance < self.config.progress:
            self.remaining = self.config.takeover_steps
            self.engaged_at = distance
        if self.remaining == 0:
            return None
        if not self.config.demonstrate and distance <= self.config.release_distance < self.engaged_at:
            self.remaining = 0  # brought close: the policy may finish (stuck this close, it is helped home)
            self.history.clear()
            return None
        self.remaining -= 1
        if self.remaining == 0:
            self.history.clear()  # give the policy a fresh chance
        move = np.clip(self.config.gain * error, -1.0, 1.0) + self.rng.normal(0.0, self.config.jitter, 3)
        return np.concatenate([np.clip(move, -1.0, 1.0), [0.0]]).astype(np.float32)


@dataclass
class PickConfig:
    """The scripted operator of ``pick_cube`` (config/tasks/pick_cube.yaml, section scripted_human)."""

    patience: int = 8  # steps without progress before taking over
    progress: float = 0.005  # metres the task potential must fall over `patience` steps
    takeover_steps: int = 20  # most steps of one takeover (a whole pick is ~20)
    gain: float = 1.0 / 0.02  # normalised command per metre of error (saturates at 2 cm)
    careful_speed: float = 0.5  # command magnitude next to the cube (descending, closing, lifting)
    jitter: float = 0.1  # std of the operator's hand noise (normalised units)
    hover_height: float = 0.05  # m above the cube's centre before descending
    grasp_height: float = 0.01  # m above the cube's centre where the jaws close (pads on its upper half)
    align_tolerance: float = 0.006  # m of horizontal error accepted before descending
    close_steps: tuple = (3, 6)  # a person holds the close button this many steps (uniform, inclusive)
    lift_height: float = 0.08  # m above the cube's resting place the operator lifts it to
    gripper_closed_below: float = 0.8  # rad: gripper position that counts as closed (open is 1.2)
    lift_success: float = 0.05  # m: the task's lift_height (the potential's lift part)
    seed: int = 0
    demonstrate: bool = False


class ScriptedPicker:
    """A person picking the cube with the gamepad: above it with the gripper open, down, close
    (holding the button a few steps), up. Watches like :class:`ScriptedHuman` (takes over when
    the task stalls, hands back after ``takeover_steps``) and sees what a person sees: the
    grasp point (between the jaws), the cube and how far the gripper is open."""

    HOVER, DESCEND, CLOSE, LIFT, REOPEN = "hover", "descend", "close", "lift", "reopen"

    def __init__(self, config: PickConfig | None = None):
        self.config = config or PickConfig()
        self.rng = np.random.default_rng(self.config.seed)
        self.reset()

    def reset(self) -> None:
        self.history: collections.deque = collections.deque(maxlen=self.config.patience + 1)
        self.remaining = 0
        self.phase = self.HOVER
        self.phase_steps = 0
        self.close_for = 0
        self.rest_z: float | None = None  # the cube's resting height, seen at the episode's start
        self.lift_xy = None  # where the lift began: straight up from there

    @property
    def active(self) -> bool:
        return self.remaining > 0

    def potential(self, ee, cube) -> float:
        """What falls as the task goes well: distance to the cube plus the lift still missing."""
        lift = 0.0 if self.rest_z is None else float(np.clip(cube[2] - self.rest_z, 0.0, self.config.lift_success))
        return float(np.linalg.norm(cube - ee)) + (self.config.lift_success - lift)

    def step(self, ee, goal, gripper: float | None = None) -> np.ndarray | None:
        """The operator's action [dx, dy, dz, gripper] for this step, or None when watching.
        ``goal`` is the cube's position, ``gripper`` the gripper joint position (rad)."""
        cfg = self.config
        ee, cube = np.asarray(ee, float), np.asarray(goal, float)
        if self.rest_z is None:
            self.rest_z = float(cube[2])
        self.history.append(self.potential(ee, cube))
        if cfg.demonstrate:
            self.remaining = max(self.remaining, 1)
        elif self.remaining == 0 and len(self.history) == self.history.maxlen \
                and self.history[0] - self.history[-1] < cfg.progress:
            self.remaining = cfg.takeover_steps
            self._enter(self._phase_on_takeover(ee, cube, gripper))
        if self.remaining == 0:
            return None
        self.remaining -= 1
        if self.remaining == 0:
            self.history.clear()  # give the policy a fresh chance
        return self._act(ee, cube, gripper)

    # ------------------------------------------------------------------ the pick
    def _enter(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0
        if phase == self.CLOSE:
            lo, hi = self.config.close_steps
            self.close_for = int(self.rng.integers(lo, hi + 1))
        self.lift_xy = None

    def _closed(self, gripper) -> bool:
        return gripper is not None and gripper < self.config.gripper_closed_below

    def _phase_on_takeover(self, ee, cube, gripper) -> str:
        """Where a person would pick up from what the policy left."""
        near = np.linalg.norm(cube - ee) < 0.015
        if self._closed(gripper):
            return self.LIFT if near else self.REOPEN
        return self.DESCEND if np.linalg.norm((cube - ee)[:2]) < self.config.align_tolerance else self.HOVER

    def _act(self, ee, cube, gripper) -> np.ndarray:
        cfg = self.config
        self.phase_steps += 1
        error_xy = float(np.linalg.norm((cube - ee)[:2]))
        speed, grip = 1.0, 1.0  # full stick, gripper open
        if self.phase == self.REOPEN:  # a failed grasp: open and go back up
            target = cube + [0.0, 0.0, cfg.hover_height]
            if not self._closed(gripper):
                self._enter(self.HOVER)
        if self.phase == self.HOVER:
            target = cube + [0.0, 0.0, cfg.hover_height]
            if error_xy < cfg.align_tolerance and abs(target[2] - ee[2]) < 0.01:
                self._enter(self.DESCEND)
        if self.phase == self.DESCEND:
            target, speed = cube + [0.0, 0.0, cfg.grasp_height], cfg.careful_speed
            if error_xy > 2.5 * cfg.align_tolerance:
                self._enter(self.HOVER)
                target, speed = cube + [0.0, 0.0, cfg.hover_height], 1.0
            elif (ee[2] - target[2] < 0.005 and error_xy < 1.5 * cfg.align_tolerance) or self.phase_steps > 15:
                self._enter(self.CLOSE)  # low enough between the jaws (or tired of aiming: try)
        if self.phase == self.CLOSE:
            target, speed, grip = ee, 0.0, -1.0
            if self.phase_steps >= self.close_for:
                self._enter(self.LIFT)
        if self.phase == self.LIFT:
            if self.lift_xy is None:
                self.lift_xy = ee[:2].copy()
            target, speed, grip = np.array([*self.lift_xy, self.rest_z + cfg.lift_height]), cfg.careful_speed, -1.0
            if np.linalg.norm(cube - ee) > 0.025:  # dropped it (or never had it)
                self._enter(self.REOPEN)
                target, speed, grip = cube + [0.0, 0.0, cfg.hover_height], 1.0, 1.0
        move = np.clip(cfg.gain * (target - ee), -speed, speed)
        if speed > 0.0:
            move = move + self.rng.normal(0.0, cfg.jitter, 3)
        return np.concatenate([np.clip(move, -1.0, 1.0), [grip]]).astype(np.float32)


def make_operator(task: str, settings: dict | None = None, seed: int = 0, demonstrate: bool = False):
    """The scripted operator of ``task`` from its parameters (config/scripted_human.yaml and
    the task's overlay): :class:`ScriptedHuman` for reach, :class:`ScriptedPicker` for pick_cube."""
    from dataclasses import fields

    cls, config_cls = (ScriptedPicker, PickConfig) if task == "pick_cube" else (ScriptedHuman, HumanConfig)
    names = {f.name for f in fields(config_cls)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in (settings or {}).items() if k in names}
    values.update(seed=seed, demonstrate=demonstrate)
    return cls(config_cls(**values))
