"""The SO-101 tasks as a gymnasium environment, without ROS (``make bench-learning``, tests).

Built from the pieces the training graph runs, so that a learning problem shows here and a
graph problem shows only there:

- physics, tasks, reward and success: :class:`hilserl_ros.sim.world.SO101World` (as /sim);
- action -> joints: FK of the measured joints + ``action_scale`` x delta, clamped to the
  workspace box, Pinocchio IK, gripper open/close/stay (as /ee_ik), then each joint target
  limited to ``max_step`` from the measured position and to the joint range (as the driver);
- observation: :func:`hilserl_ros.observation.build_observation` of the measured joints, the
  FK end-effector position and the task's goal (as /actor);
- one step is one control period (1 / ``control_rate``, 10 Hz) of simulated time; no DDS, no
  serial bus, no wall-clock sleeps, so it runs as fast as MuJoCo and the IK allow.

:class:`ScriptedIntervention` wraps it with the scripted operator of hilserl_ros.human: on the
steps the operator drives, its action replaces the policy's and ``info["intervention"]`` is
true (the ``is_intervention`` flag of a Transition); ``info["action"]`` is the action executed.

Parameters default to the graph's parameter files in config/ (:func:`graph_defaults`), so the
same configuration runs in both places.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import gymnasium as gym
import numpy as np
import yaml

from hilserl_ros.human import HumanConfig, ScriptedHuman
from hilserl_ros.kinematics import ARM_JOINTS, SO101Kinematics, WorkspaceBox, gripper_target
from hilserl_ros.observation import ACTION_DIM, OBS_DIM, build_observation
from hilserl_ros.sim.world import DEFAULT_BOX, TASKS, SO101World


def node_parameters(node: str, share: str | None = None) -> dict:
    """The ``ros__parameters`` of ``node`` in its file in config/ (what the launch passes it)."""
    from hilserl_ros.graph import NODES, params_file_path

    spec = next((s for s in NODES if s.name == node), None)
    if spec is None or spec.params_file is None:
        raise KeyError(f"no parameter file for node {node!r}")
    with open(params_file_path(spec, share)) as fh:
        data = yaml.safe_load(fh) or {}
    return dict(data.get(node, {}).get("ros__parameters", {}))


@dataclass
class EnvConfig:
    task: str = "reach"
    control_rate: float = 10.0  # Hz (actor)
    max_episode_steps: int = 100  # (actor)
    action_scale: float = 0.02  # m per unit of normalised delta (ee_ik)
    box_min: tuple = DEFAULT_BOX[0]
    box_max: tuple = DEFAULT_BOX[1]
    gripper_open: float = 1.2  # rad (ee_ik)
    gripper_closed: float = 0.0
    max_step: float = 0.25  # rad per command (so101_driver)
    human: HumanConfig = field(default_factory=HumanConfig)

    @classmethod
    def from_graph(cls, task: str = "reach", share: str | None = None) -> "EnvConfig":
        """The configuration the training graph runs with: config/actor.yaml, ik.yaml,
        hardware.yaml and scripted_human.yaml (the seed is the run's: make_env)."""
        actor, ik = node_parameters("actor", share), node_parameters("ee_ik", share)
        driver, human = node_parameters("so101_driver", share), node_parameters("scripted_human", share)
        names = {f.name for f in fields(HumanConfig)}
        human_config = HumanConfig(**{k: v for k, v in human.items() if k in names})
        return cls(task=task, control_rate=float(actor.get("control_rate", 10.0)),
                   max_episode_steps=int(actor.get("max_episode_steps", 100)),
                   action_scale=float(ik.get("action_scale", 0.02)),
                   box_min=tuple(ik.get("box_min", DEFAULT_BOX[0])), box_max=tuple(ik.get("box_max", DEFAULT_BOX[1])),
                   gripper_open=float(ik.get("gripper_open", 1.2)), gripper_closed=float(ik.get("gripper_closed", 0.0)),
                   max_step=float(driver.get("max_step", 0.25)), human=human_config)


class SO101Env(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, config: EnvConfig | None = None, seed: int = 0, render_mode: str | None = None):
        self.config = config or EnvConfig()
        if self.config.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.config.task!r}")
        self.render_mode = render_mode
        box = (tuple(self.config.box_min), tuple(self.config.box_max))
        self.world = SO101World(self.config.task, seed=seed, box=box)
        self.kin = SO101Kinematics()
        self.box = WorkspaceBox(*box)
        self.lower, self.upper = self.kin.lower, self.kin.upper
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.period = 1.0 / self.config.control_rate
        self._seed = seed
        self.steps = 0
        self.gripper_target: float | None = None
        self.state = None

    # ------------------------------------------------------------------ gymnasium
    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self.state = self.world.reset(seed=seed)
        self.steps = 0
        self.gripper_target = None
        return self._observation(), self._info()

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64).reshape(-1), -1.0, 1.0)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {ACTION_DIM} finite values, got {action}")
        q = self.world.joint_state()[0]
        self.world.set_joint_targets(self._joint_targets(q, action))
        self.world.step(self.period)
        self.state = self.world.task_state()
        self.steps += 1
        terminated = bool(self.state.success)
        truncated = not terminated and self.steps >= self.config.max_episode_steps
        return self._observation(), float(self.state.reward), terminated, truncated, self._info()

    def render(self):
        return self.world.render()

    def close(self):
        self.world.close()

    # ------------------------------------------------------------------ the graph's pieces
    def _joint_targets(self, q: np.ndarray, action: np.ndarray) -> np.ndarray:
        """/ee_ik then the driver's command limits."""
        wanted = self.kin.position(q) + self.config.action_scale * action[:3]
        target, _ = self.box.clamp(wanted)
        q_cmd = self.kin.solve(target, q).q.copy()
        self.gripper_target = gripper_target(action[3], self.gripper_target, q[ARM_JOINTS], self.config.gripper_open,
                                             self.config.gripper_closed)
        q_cmd[ARM_JOINTS] = self.gripper_target
        q_cmd = np.clip(q_cmd, q - self.config.max_step, q + self.config.max_step)
        return np.clip(q_cmd, self.lower, self.upper)

    def _observation(self) -> np.ndarray:
        q = self.world.joint_state()[0]
        return build_observation(q, self.kin.position(q), self.state.goal)

    def _info(self) -> dict:
        s = self.state
        return {"success": bool(s.success), "distance": float(s.distance), "goal": s.goal.copy(),
                "ee_position": s.ee_position.copy()}


class ScriptedIntervention(gym.Wrapper):
    """The scripted operator of the graph (/scripted_human) as a wrapper: it watches the task
    state after each step and, when it decides to intervene, its action is executed instead
    of the policy's. ``info["intervention"]`` flags those steps; ``info["action"]`` is what
    was executed (what a Transition carries)."""

    def __init__(self, env: SO101Env, config: HumanConfig | None = None, enabled: bool = True):
        super().__init__(env)
        self.human = ScriptedHuman(config or env.config.human)
        self.enabled = enabled
        self._pending: np.ndarray | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.human.reset()
        self._decide(info)
        return obs, info

    def step(self, action):
        intervening = self._pending is not None
        executed = self._pending if intervening else np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        info["intervention"], info["action"] = intervening, np.asarray(executed, np.float32)
        if not (terminated or truncated):
            self._decide(info)
        return obs, reward, terminated, truncated, info

    @property
    def will_intervene(self) -> bool:
        """Whether the next step is the operator's (the policy need not be asked)."""
        return self._pending is not None

    def _decide(self, info: dict) -> None:
        self._pending = self.human.step(info["ee_position"], info["goal"]) if self.enabled else None


def make_env(task: str = "reach", seed: int = 0, operator: bool = True, config: EnvConfig | None = None,
             share: str | None = None):
    """The env with the graph's configuration (config/), wrapped with the scripted operator."""
    config = config or EnvConfig.from_graph(task, share)
    env = SO101Env(config, seed=seed)
    # one seed for the run, as the graph's launch argument seed sets every node's
    return ScriptedIntervention(env, replace(config.human, seed=seed), enabled=operator)


