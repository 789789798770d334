"""The SO-101 tasks as a gymnasium environment, without ROS (``make bench-learning``, tests).

Built from the pieces the training graph runs, so that a learning problem shows here and a
graph problem shows only there:

- physics, tasks, reward and success: :class:`hilserl_ros.sim.world.SO101World` (as /sim);
- action -> joints: the last EE target (re-anchored to the FK of the measured joints when
  they part) + ``action_scale`` x delta, clamped to the workspace box, Pinocchio IK (top-down
  for grasping), gripper open/close/stay ramped (as /ee_ik), then each joint target
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

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import yaml

from hilserl_ros.human import make_operator
from hilserl_ros.kinematics import ARM_JOINTS, EndEffectorTarget, GripperTarget, SO101Kinematics, WorkspaceBox
from hilserl_ros.observation import ACTION_DIM, ObservationSpec, load_observation
from hilserl_ros.sim.cells import sample_cell
from hilserl_ros.sim.world import DEFAULT_BOX, TASKS, SO101World


def node_parameters(node: str, share: str | None = None, task: str | None = None) -> dict:
    """The ``ros__parameters`` of ``node`` in its file in config/, then those of the task's
    overlay (config/tasks/<task>.yaml): what the launch passes it."""
    from hilserl_ros.graph import NODES, params_file_path, task_params_path

    spec = next((s for s in NODES if s.name == node), None)
    if spec is None or spec.params_file is None:
        raise KeyError(f"no parameter file for node {node!r}")
    params: dict = {}
    for path in (params_file_path(spec, share), task_params_path(task, share) if task else None):
        if path is None:
            continue
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        params.update(data.get(node, {}).get("ros__parameters", {}) or {})
    return params


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
    gripper_max_step: float = 0.4  # rad per command (ee_ik)
    reanchor_distance: float = 0.02  # m (ee_ik)
    top_down: bool = False  # (ee_ik)
    tcp_offset: tuple = (0.0, 0.0, 0.0)  # m (ee_ik)
    max_step: float = 0.25  # rad per command (so101_driver)
    human: dict = field(default_factory=dict)  # scripted_human parameters (hilserl_ros.human.make_operator)
    cell: int | None = None  # seed of the visual cell (hilserl_ros.sim.cells); None: the shipped cell

    @classmethod
    def from_graph(cls, task: str = "reach", share: str | None = None) -> "EnvConfig":
        """The configuration the training graph runs with: config/actor.yaml, ik.yaml,
        hardware.yaml and scripted_human.yaml (the seed is the run's: make_env)."""
        actor, ik = node_parameters("actor", share, task), node_parameters("ee_ik", share, task)
        driver, human = node_parameters("so101_driver", share, task), node_parameters("scripted_human", share, task)
        return cls(task=task, control_rate=float(actor.get("control_rate", 10.0)),
                   max_episode_steps=int(actor.get("max_episode_steps", 100)),
                   action_scale=float(ik.get("action_scale", 0.02)),
                   box_min=tuple(ik.get("box_min", DEFAULT_BOX[0])), box_max=tuple(ik.get("box_max", DEFAULT_BOX[1])),
                   gripper_open=float(ik.get("gripper_open", 1.2)), gripper_closed=float(ik.get("gripper_closed", 0.0)),
                   gripper_max_step=float(ik.get("gripper_max_step", 0.4)), top_down=bool(ik.get("top_down", False)),
                   reanchor_distance=float(ik.get("reanchor_distance", 0.02)),
                   tcp_offset=tuple(ik.get("tcp_offset", (0.0, 0.0, 0.0))),
                   max_step=float(driver.get("max_step", 0.25)), human=human)


class SO101Env(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, config: EnvConfig | None = None, seed: int = 0, render_mode: str | None = None,
                 observation: ObservationSpec | str = "state"):
        """``observation``: a name in config/observation/<task>.yaml or a spec. A state-only
        observation is a flat float32 vector; one with cameras is a dict: ``state`` and one
        uint8 [size, size, 3] frame per camera, rendered as /sim_camera renders them."""
        self.config = config or EnvConfig()
        if self.config.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.config.task!r}")
        if isinstance(observation, str):
            observation = load_observation(self.config.task, observation)
        self.observation_spec = observation
        self.render_mode = render_mode
        box = (tuple(self.config.box_min), tuple(self.config.box_max))
        cell = None if self.config.cell is None else sample_cell(self.config.cell)
        self.world = SO101World(self.config.task, seed=seed, box=box, cell=cell)
        self.kin = SO101Kinematics(tcp_offset=self.config.tcp_offset)
        self.box = WorkspaceBox(*box)
        self.lower, self.upper = self.kin.lower, self.kin.upper
        state_space = gym.spaces.Box(-np.inf, np.inf, (self.observation_spec.obs_dim,), np.float32)
        if self.observation_spec.cameras:
            self.observation_space = gym.spaces.Dict({"state": state_space, **{
                c.name: gym.spaces.Box(0, 255, c.shape, np.uint8) for c in self.observation_spec.cameras}})
        else:
            self.observation_space = state_space
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.period = 1.0 / self.config.control_rate
        self._seed = seed
        self.steps = 0
        step = self.config.gripper_max_step
        self.gripper = GripperTarget(self.config.gripper_open, self.config.gripper_closed,
                                     step if step > 0 else float("inf"))
        self.ee_target = EndEffectorTarget(self.config.reanchor_distance)
        self.state = None

    # ------------------------------------------------------------------ gymnasium
    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self.state = self.world.reset(seed=seed)
        self.steps = 0
        self.gripper.reset()
        self.ee_target.reset()
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
        wanted = self.ee_target.base(self.kin.position(q)) + self.config.action_scale * action[:3]
        target, _ = self.box.clamp(wanted)
        result = self.kin.solve(target, q, top_down=self.config.top_down)
        self.ee_target.commanded(target if result.converged else self.kin.position(result.q))
        q_cmd = result.q.copy()
        q_cmd[ARM_JOINTS] = self.gripper.update(action[3], q[ARM_JOINTS])
        q_cmd = np.clip(q_cmd, q - self.config.max_step, q + self.config.max_step)
        return np.clip(q_cmd, self.lower, self.upper)

    def _observation(self):
        q = self.world.joint_state()[0]
        state = self.observation_spec.build_state(q, self.kin.position(q), self.state.goal)
        if not self.observation_spec.cameras:
            return state
        frames = {c.name: self.observation_spec.process_frame(c, self.world.render(c.name)) for c in self.observation_spec.cameras}
        return {"state": state, **frames}

    def _info(self) -> dict:
        s = self.state
        return {"success": bool(s.success), "distance": float(s.distance), "goal": s.goal.copy(),
                "ee_position": s.ee_position.copy(), "gripper": float(self.world.joint_state()[0][ARM_JOINTS])}


class ScriptedIntervention(gym.Wrapper):
    """The scripted operator of the graph (/scripted_human) as a wrapper: it watches the task
    state after each step and, when it decides to intervene, its action is executed instead
    of the policy's. ``info["intervention"]`` flags those steps; ``info["action"]`` is what
    was executed (what a Transition carries)."""

    def __init__(self, env: SO101Env, seed: int = 0, enabled: bool = True, demonstrate: bool = False):
        super().__init__(env)
        self.human = make_operator(env.config.task, env.config.human, seed=seed, demonstrate=demonstrate)
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
        self._pending = self.human.step(info["ee_position"], info["goal"], info["gripper"]) if self.enabled else None


def make_env(task: str = "reach", seed: int = 0, operator: bool = True, config: EnvConfig | None = None,
             share: str | None = None, demonstrate: bool = False, observation: ObservationSpec | str = "state"):
    """The env with the graph's configuration (config/ and config/tasks/), wrapped with the
    scripted operator (``demonstrate``: it drives every step, as make record-demos)."""
    config = config or EnvConfig.from_graph(task, share)
    env = SO101Env(config, seed=seed, observation=observation)
    # one seed for the run, as the graph's launch argument seed sets every node's
    return ScriptedIntervention(env, seed=seed, enabled=operator, demonstrate=demonstrate)


