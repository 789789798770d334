"""HIL-SERL on the ROS-free SO-101 env: the graph's learner core and configuration, no graph.

    python -m hilserl_ros.sim.train_env [--task reach] [--seed 0] [--minutes 3] [--max-steps 20000]
        [--set target_entropy=-4 --set temperature=0.2 ...] [--action-scale 0.02]
        [--switch-at 1500 --switch target_entropy=-2.0]

The same SACAgent, ReplayBuffer pair and RLPD sampling (:func:`sample_mixed`) as /learner,
configured from config/learner.yaml; the same action sampling as /actor; the scripted operator
of config/scripted_human.yaml; interventions go to both buffers. Updates follow the learner's
``updates_per_transition`` cap (an update is ``utd_ratio`` critic steps + one actor step)
and start after ``training_starts`` transitions. Training stops when the policy alone (an
episode without intervention) succeeds in ``target`` of the last ``window`` episodes, or at
the step or time budget. Same seed and configuration here and through the graph should learn
alike: when only the graph fails, the graph is at fault.

The field report's collapse (issue 26): ``--set`` overrides any learner.yaml parameter,
``--switch-at``/``--switch`` changes a live knob mid-run as ``ros2 param set /learner`` does,
and each episode's record carries alpha, the policy's mean |action|, how far the arm left
home and the learner's alpha-collapse watchdog (:class:`CollapseWatchdog`).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from hilserl_ros.learning.buffers import ReplayBuffer, sample_mixed
from hilserl_ros.learning.config import ENCODERS_HELP, SACConfig, camera_encoder_config
from hilserl_ros.learning.sac import SACAgent
from hilserl_ros.learning.watchdog import CollapseWatchdog as SharedWatchdog
from hilserl_ros.sim.env import EnvConfig, make_env, node_parameters

# learner.yaml parameter -> SACConfig field
_SAC_FIELDS = {"target_entropy": "target_entropy", "temperature": "temperature_init", "actor_lr": "actor_lr",
               "critic_lr": "critic_lr", "temperature_lr": "temperature_lr", "discount": "discount", "tau": "tau",
               "utd_ratio": "utd_ratio", "batch_size": "batch_size", "hidden_dims": "hidden_dims",
               "num_critics": "num_critics", "grasp_critic": "grasp_critic", "grasp_penalty": "grasp_penalty",
               "spatial_features": "spatial_features", "spatial_keypoints": "spatial_keypoints",
               "head_dropout": "head_dropout", "obs_dim": "obs_dim", "action_dim": "action_dim",
               # not a /learner parameter (the graph runs False, HIL-SERL's); LeRobot's default is True
               "use_backup_entropy": "use_backup_entropy"}
# live knobs (learner_node's on_change) -> how the agent applies them between updates
LIVE_KNOBS = {"target_entropy": lambda a, v: a.set_target_entropy(float(v)),
              "temperature": lambda a, v: a.set_temperature(float(v)),
              "actor_lr": lambda a, v: a.set_learning_rate("actor", float(v)),
              "critic_lr": lambda a, v: a.set_learning_rate("critic", float(v)),
              "temperature_lr": lambda a, v: a.set_learning_rate("temperature", float(v)),
              "discount": lambda a, v: a.set_discount(float(v)), "tau": lambda a, v: a.set_tau(float(v)),
              "utd_ratio": lambda a, v: a.set_utd_ratio(int(v)), "batch_size": lambda a, v: a.set_batch_size(int(v))}
_FLOAT_KNOBS = {"target_entropy", "temperature", "actor_lr", "critic_lr", "temperature_lr", "discount", "tau",
                "grasp_penalty", "head_dropout", "updates_per_transition", "image_buffer_gb", "alpha_floor",
                "action_floor"}


@dataclass
class LearnerSettings:
    """What /learner reads from config/learner.yaml, in the core's terms."""

    sac: dict
    training_starts: int = 300
    updates_per_transition: float = 1.0
    rl_capacity: int = 200_000
    demo_capacity: int = 100_000
    encoder: str = "so101"  # image encoder: a backbone spec, "so101" or "scratch" (see image_config)
    pretrained_encoder: str = ""  # encoder "so101": "" = the shipped SO-101 camera encoder (hilserl_ros.vision.pretrain)
    freeze_encoder: bool = True
    image_buffer_gb: float = 12.0
    # the learner's alpha-collapse watchdog (learner.yaml)
    stats_period: int = 10
    alpha_floor: float = 0.02
    action_floor: float = 0.1
    watchdog_window: int = 20

    @classmethod
    def from_graph(cls, share: str | None = None, task: str | None = None, **overrides) -> "LearnerSettings":
        p = node_parameters("learner", share, task)
        p.update(overrides)
        sac = {field_name: p[name] for name, field_name in _SAC_FIELDS.items() if name in p}
        return cls(sac=sac, training_starts=int(p.get("training_starts", 300)),
                   updates_per_transition=float(p.get("updates_per_transition", 1.0)),
                   rl_capacity=int(p.get("rl_capacity", 200_000)), demo_capacity=int(p.get("demo_capacity", 100_000)),
                   encoder=str(p.get("encoder", "so101")), pretrained_encoder=str(p.get("pretrained_encoder", "")),
                   freeze_encoder=bool(p.get("freeze_encoder", True)),
                   image_buffer_gb=float(p.get("image_buffer_gb", 12.0)),
                   stats_period=int(p.get("stats_period", 10)), alpha_floor=float(p.get("alpha_floor", 0.02)),
                   action_floor=float(p.get("action_floor", 0.1)),
                   watchdog_window=int(p.get("watchdog_window", 20)))

    @staticmethod
    def known() -> set[str]:
        """Parameter names ``--set`` accepts."""
        return set(_SAC_FIELDS) | {f.name for f in dataclasses.fields(LearnerSettings)} - {"sac"}

    def image_config(self, spec) -> dict:
        """SACConfig fields of an observation with cameras (learner_node.image_config)."""
        return camera_encoder_config(spec, self.encoder, self.pretrained_encoder, self.freeze_encoder)


@dataclass
class EpisodeRecord:
    episode: int
    env_steps: int  # total, at the episode's end
    steps: int
    reward: float
    success: bool
    intervention_steps: int
    seconds: float  # wall clock since the start of training
    alpha: float
    # issue 26, None where the episode saw no update: the mean over this episode's updates of the
    # actor's sampled mean |action| (continuous dims, before action_scale; LearnerStats'
    # action_abs_mean) and of its entropy; the mean |action| the policy sent the env (its own
    # steps only); how far the grasp point got from where the episode started (m); whether the
    # learner's watchdog flags a collapse at the episode's end
    action_abs_mean: float | None = None
    entropy: float | None = None
    policy_action_abs: float | None = None
    policy_mean_abs: float | None = None  # the same of its noise-free action, every 4th of its steps
    travel: float | None = None
    collapse: bool = False

    @property
    def autonomous(self) -> bool:
        """Success by the policy alone: the operator never took over (the graph's monitor too)."""
        return self.success and self.intervention_steps == 0

    @property
    def intervention_rate(self) -> float:
        return self.intervention_steps / self.steps if self.steps else 0.0


@dataclass
class EnvRunResult:
    task: str
    seed: int
    reached: bool
    minutes: float  # wall clock to the point the target was reached (or to the end)
    episodes: int
    env_steps: int
    updates: int
    final_policy_success: float  # over the last `window` episodes
    final_intervention_rate: float
    final_alpha: float
    demo_episodes: int = 0  # scripted demonstrations preloaded
    demo_successes: int = 0  # of them, how many picked / reached (the teacher's own success)
    episodes_log: list = field(default_factory=list)
    watchdog: dict = field(default_factory=dict)  # CollapseWatchdog.summary()
    switch: dict | None = None  # the knobs changed mid-run, and when

    def summary(self) -> dict:
        out = asdict(self)
        out.pop("episodes_log")
        return out


class CollapseWatchdog(SharedWatchdog):
    """/learner's alpha-collapse watchdog (hilserl_ros.learning.watchdog), fed as /learner feeds
    it: the statistics of every ``stats_period``-th update (what LearnerStats publishes)."""

    def __init__(self, stats_period: int = 10, alpha_floor: float = 0.02, action_floor: float = 0.1,
                 window: int = 20):
        super().__init__(alpha_floor, action_floor, window)
        self.stats_period = stats_period

    def observe(self, update_step: int, stats: dict | None, env_step: int) -> str | None:
        if not stats or update_step % self.stats_period:
            return None
        return super().observe(stats, env_step=env_step, update=update_step)

    def summary(self) -> dict:
        return {**super().summary(), "stats_period": self.stats_period}


class EpisodeMeter:
    """What one episode's record says about the learner and the arm (EpisodeRecord's issue-26 fields)."""

    def __init__(self):
        self.abs_means, self.entropies, self.policy_abs, self.mean_abs = [], [], [], []
        self.home = None
        self.travel = 0.0

    def update(self, stats: dict | None) -> None:
        if stats:
            self.abs_means.append(stats["action_abs_mean"])
            self.entropies.append(stats["entropy"])

    def deterministic(self, action) -> None:
        """The policy's noise-free action (tanh of its mean) at a state it acted in."""
        self.mean_abs.append(float(np.abs(np.asarray(action)[:3]).mean()))

    def step(self, action, info, human: bool) -> None:
        if not human:
            self.policy_abs.append(float(np.abs(np.asarray(action)[:3]).mean()))
        ee = np.asarray(info["ee_position"])
        if self.home is None:
            self.home = ee  # one control period in: near enough to where the episode began
        self.travel = max(self.travel, float(np.linalg.norm(ee - self.home)))

    def fields(self) -> dict:
        def mean(xs, digits):
            return round(float(np.mean(xs)), digits) if xs else None
        return {"action_abs_mean": mean(self.abs_means, 4), "entropy": mean(self.entropies, 3),
                "policy_action_abs": mean(self.policy_abs, 4), "policy_mean_abs": mean(self.mean_abs, 4),
                "travel": round(self.travel, 4)}


def parse_settings(items: list[str] | None) -> dict:
    """``name=value`` pairs (``--set``, ``--switch``) with YAML values (true, -4, [256, 256]);
    the float knobs are made floats (``target_entropy=-4`` is -4.0)."""
    import yaml

    out = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{item!r}: expected name=value")
        value = yaml.safe_load(text)
        if name in _FLOAT_KNOBS and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    return out


def rolling(records: list[EpisodeRecord], window: int) -> tuple[float, float]:
    recent = records[-window:]
    if not recent:
        return 0.0, 0.0
    return (sum(r.autonomous for r in recent) / len(recent),
            sum(r.intervention_rate for r in recent) / len(recent))


def train_env(task: str = "reach", seed: int = 0, max_env_steps: int = 20_000, max_minutes: float = 10.0,
              target: float = 0.9, window: int = 20, operator: bool = True, env_config: EnvConfig | None = None,
              learner: LearnerSettings | None = None, threads: int = 1, progress=None,
              update_hook=None, demo_episodes: int = 0, observation: str = "state",
              reward_model: str | None = None, operator_vetoes: float = 0.0, log=None,
              stop_at_target: bool = True, blank_frames: bool = False, switch_at: int | None = None,
              switch: dict | None = None, reward_scale: float = 1.0, sparse_reward: bool = False) -> EnvRunResult:
    """Train until the policy alone reaches ``target`` over ``window`` episodes or a budget ends.
    ``progress(record, result_so_far)`` is called after each episode; ``update_hook(agent,
    sample)`` replaces ``agent.update(sample)`` (tests use it to break learning on purpose);
    ``demo_episodes`` scripted demonstrations (the operator driving every step, as
    ``make record-demos``) are preloaded into the demonstration buffer first. ``reward_model``:
    a reward classifier file whose verdict on the frames replaces the simulator's reward and
    success (the real arm's setting, sparse reward); the simulator still judges the records.
    ``operator_vetoes``: the share of the classifier's false successes the scripted operator
    vetoes (0: none, 1: every one; a person misses some), which it learns as hard negatives
    (``log`` gets a line per veto). ``stop_at_target`` False: train on to the budget (does the
    success last?); the result still says when it was reached. ``blank_frames``: the cameras
    show black (the control of a pixel run: what the state alone allows). ``switch``: live knobs
    (:data:`LIVE_KNOBS`) set after env step ``switch_at``, as ``ros2 param set /learner`` would.
    ``reward_scale`` multiplies the reward the agent learns from; ``sparse_reward``: that reward
    is 1 on success and 0 otherwise (the real arm's classifier), the dense shaping dropped."""
    if switch and (switch_at is None or set(switch) - set(LIVE_KNOBS)):
        raise ValueError(f"switch needs switch_at and live knobs only ({sorted(LIVE_KNOBS)}), got {sorted(switch)}")
    torch.set_num_threads(threads)
    learner = learner or LearnerSettings.from_graph(task=task)
    env = judged(make_env(task, seed=seed, operator=operator, config=env_config, observation=observation), reward_model,
                 operator_vetoes, log, seed)
    if blank_frames:
        env = BlankFrames(env)
    spec = env.unwrapped.observation_spec
    sac = dict(learner.sac, seed=seed, **learner.image_config(spec))
    config = SACConfig(obs_dim=spec.obs_dim, action_dim=env.action_space.shape[0],
                       **{k: v for k, v in sac.items() if k not in ("obs_dim", "action_dim")})
    agent = SACAgent(config)
    initial = {k: v for k, v in config.to_dict().items()  # before any switch changes the live ones
               if k in ("target_entropy", "temperature_init", "discount", "use_backup_entropy", "utd_ratio",
                        "batch_size")}
    rl, demo = make_buffers(agent, spec, min(learner.rl_capacity, max_env_steps + 1),
                            min(learner.demo_capacity, max_env_steps + 1), seed)
    update = update_hook or (lambda a, sample: a.update(sample))
    def sample(n):
        return sample_mixed(rl, demo, n)

    shape = reward_shaping(reward_scale, sparse_reward)
    demo_stats = (record_demonstrations(task, seed + 10_000, demo_episodes, demo, env_config, observation,
                                        reward_model, blank_frames, shape) if demo_episodes else None)
    watchdog = CollapseWatchdog(learner.stats_period, learner.alpha_floor, learner.action_floor,
                                learner.watchdog_window)
    meter = EpisodeMeter()
    switched = None

    records: list[EpisodeRecord] = []
    start = time.monotonic()
    obs, _ = env.reset(seed=seed)
    to_rl, to_demo = FrameFeed(rl), FrameFeed(demo)
    ep_reward, ep_steps, ep_human, received = 0.0, 0, 0, 0
    reached_at = None
    for step in range(1, max_env_steps + 1):
        if env.will_intervene:
            action = np.zeros(env.action_space.shape, np.float32)  # the operator's action is executed instead
        else:
            action = agent.act(*split(obs))
            if step % 4 == 0:  # "outputs near zero": the mean, not the noise (no generator drawn from)
                meter.deterministic(agent.policy.act(*split(obs), deterministic=True))
        next_obs, reward, terminated, truncated, info = env.step(action)
        executed, human = info["action"], info["intervention"]
        meter.step(executed, info, human)
        learned = shape(reward, info)
        to_rl.add(obs, executed, learned, next_obs, terminated, human)
        if human:
            to_demo.add(obs, executed, learned, next_obs, terminated, human)  # HIL-SERL: interventions are demos
        else:
            to_demo.cut()
        received += 1
        ep_reward += reward
        ep_steps += 1
        ep_human += int(human)
        obs = next_obs
        cap = learner.updates_per_transition
        while len(rl) >= learner.training_starts and (
                agent.update_step < cap * (received - learner.training_starts + 1)):
            stats = update(agent, sample)  # a test's hook may return nothing
            meter.update(stats)
            watchdog.observe(agent.update_step, stats, step)
            if cap == 0:
                break
        if switch and switched is None and step >= switch_at:
            for name, value in switch.items():
                LIVE_KNOBS[name](agent, value)
            switched = {"env_step": step, "update": agent.update_step, "alpha": round(agent.alpha, 5), **switch}
        if terminated or truncated:
            records.append(EpisodeRecord(len(records) + 1, step, ep_steps, ep_reward, bool(info["success"]),
                                         ep_human, time.monotonic() - start, agent.alpha, **meter.fields(),
                                         collapse=watchdog.collapse))
            meter = EpisodeMeter()
            ep_reward, ep_steps, ep_human = 0.0, 0, 0
            obs, _ = env.reset()
            to_rl.cut()
            to_demo.cut()
            rate, _ = rolling(records, window)
            if progress is not None:
                progress(records[-1], rate)
            if len(records) >= window and rate >= target and reached_at is None:
                reached_at = time.monotonic() - start
                if stop_at_target:
                    break
        if time.monotonic() - start > max_minutes * 60:
            break
    env.close()
    rate, intervention = rolling(records, window)
    elapsed = reached_at if reached_at is not None else time.monotonic() - start
    result = EnvRunResult(task, seed, reached_at is not None, elapsed / 60.0, len(records),
                          records[-1].env_steps if records else 0, agent.update_step, rate, intervention,
                          agent.alpha, demo_episodes, demo_stats[0] if demo_stats else 0,
                          [asdict(r) for r in records], watchdog.summary(), switched)
    result.pixels = bool(spec.cameras)
    result.sac = initial  # not a field either: the SAC knobs it started with
    result.agent = agent  # not a field (summary() leaves it out): the trained agent, for evaluate()
    result.classifier = env.stats() if reward_model else None  # the classifier's false successes, vetoes
    return result


def classifier_timeline(records: list[EpisodeRecord], veto_steps: list[int], minutes: float = 3.0,
                        budget: float | None = None) -> list[dict]:
    """Per ``minutes`` of a classifier-reward run: episodes, the policy's own successes (the
    simulator's verdict), the classifier's successes the simulator did not see (episodes that
    ended with the success reward but no success) and the operator's vetoes. The episode that
    ends just past the ``budget`` counts in the last window."""
    out = []
    end = budget if budget is not None else (records[-1].seconds / 60.0 if records else 0.0)
    starts = list(np.arange(0.0, end, minutes))
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else float("inf")
        mine = [r for r in records if start * 60 <= r.seconds < stop * 60]
        if not mine:
            continue
        first, last = mine[0].env_steps - mine[0].steps, mine[-1].env_steps
        claimed = [r for r in mine if r.reward >= 0.5]
        out.append({"from_minute": float(start), "env_steps": [int(first), int(last)], "episodes": len(mine),
                    "policy_success": sum(r.autonomous for r in mine) / len(mine),
                    "classifier_successes": len(claimed),
                    "false_share": (sum(not r.success for r in claimed) / len(claimed)) if claimed else 0.0,
                    "vetoes": sum(first < s <= last for s in veto_steps)})
    return out


def evaluate(agent: SACAgent, task: str, seed: int, episodes: int = 20, observation: str = "state",
             deterministic: bool = True, env_config: EnvConfig | None = None) -> float:
    """Success rate of the policy alone (no operator) over ``episodes`` episodes."""
    env = make_env(task, seed=seed, operator=False, config=env_config, observation=observation)
    successes = 0
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            while True:
                obs, _, terminated, truncated, info = env.step(agent.act(*split(obs), deterministic=deterministic))
                if terminated or truncated:
                    successes += bool(info["success"])
                    break
    finally:
        env.close()
    return successes / episodes


def make_buffers(agent: SACAgent, spec, rl_capacity: int, demo_capacity: int, seed: int):
    """The RL and demonstration buffers for ``spec``; with a frozen encoder they keep each
    frame's features instead of the frame, as /learner's (hilserl_ros.learning.buffers)."""
    shapes = spec.image_shapes or None
    cached = bool(shapes) and agent.config.freeze_encoder
    extra = dict(featurize=agent.encoder.camera_features, feature_dim=agent.encoder.cache_dim,
                 feature_dtype=agent.encoder.cache_dtype, keep_frames=False) if cached else {}
    return (ReplayBuffer(rl_capacity, spec.obs_dim, agent.config.action_dim, shapes, seed=seed, **extra),
            ReplayBuffer(demo_capacity, spec.obs_dim, agent.config.action_dim, shapes, seed=seed + 1, **extra))


def split(obs) -> tuple[np.ndarray, dict | None]:
    """(state, camera frames) of an env observation (a vector, or a dict with cameras)."""
    if isinstance(obs, dict):
        return obs["state"], {k: v for k, v in obs.items() if k != "state"}
    return obs, None


class BlankFrames:
    """An env whose camera frames are all black (everything else passes through)."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    @staticmethod
    def _blank(obs):
        if not isinstance(obs, dict):
            return obs
        return {k: (v if k == "state" else np.zeros_like(v)) for k, v in obs.items()}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._blank(obs), info

    def step(self, action):
        obs, *rest = self.env.step(action)
        return (self._blank(obs), *rest)


class FrameFeed:
    """Adds consecutive transitions of one episode to a buffer, storing each camera frame
    once: s_{t+1}'s frame is the next transition's s_t frame. ``cut`` ends a run of
    consecutive transitions (an episode's end, or a step this buffer does not take)."""

    def __init__(self, buffer: ReplayBuffer):
        self.buffer = buffer
        self.last: int | None = None  # frame number of the last transition's s_{t+1}

    def add(self, obs, action, reward, next_obs, terminated, human) -> None:
        state, frames = split(obs)
        next_state, next_frames = split(next_obs)
        if frames is None:
            self.buffer.add(state, action, reward, next_state, terminated, human)
            return
        frame = self.last if self.last is not None else self.buffer.add_frames(frames)
        self.last = self.buffer.add_frames(next_frames)
        self.buffer.add(state, action, reward, next_state, terminated, human, frame=frame, next_frame=self.last)

    def cut(self) -> None:
        self.last = None


def judged(env, reward_model: str | None, vetoes: float = 0.0, log=None, seed: int = 0):
    """``env`` with the reward classifier of ``reward_model`` as its reward, if one is given
    (``vetoes``: the share of its false successes the scripted operator vetoes; it learns them)."""
    if not reward_model:
        return env
    from hilserl_ros.learning.reward_classifier import ClassifierReward, RewardClassifier, VetoLearner

    model = RewardClassifier.load(reward_model)
    return ClassifierReward(env, model, vetoes=VetoLearner(model) if vetoes > 0 else None, veto_share=vetoes,
                            seed=seed, log=log)


def record_demonstrations(task: str, seed: int, episodes: int, buffer: ReplayBuffer,
                          env_config: EnvConfig | None = None, observation: str = "state",
                          reward_model: str | None = None, blank_frames: bool = False,
                          shape=None) -> tuple[int, int]:
    """``episodes`` episodes driven by the scripted operator into ``buffer``; (successes, steps).
    ``shape(reward, info)``: the reward stored (:func:`reward_shaping`)."""
    env = judged(make_env(task, seed=seed, config=env_config, demonstrate=True, observation=observation),
                 reward_model)
    if blank_frames:
        env = BlankFrames(env)
    feed = FrameFeed(buffer)
    successes = steps = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        feed.cut()
        while True:
            next_obs, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
            feed.add(obs, info["action"], shape(reward, info) if shape else reward, next_obs, terminated, True)
            obs, steps = next_obs, steps + 1
            if terminated or truncated:
                successes += bool(info["success"])
                break
    env.close()
    return successes, steps


def reward_shaping(scale: float = 1.0, sparse: bool = False):
    """The reward the agent learns from, of the env's reward and info."""
    if sparse:
        return lambda reward, info: scale * float(info["success"])
    return lambda reward, info: scale * reward


EPISODE_COLUMNS = ("episode", "env_steps", "success", "autonomous", "intervention", "alpha", "action_abs_mean",
                   "entropy", "policy_action_abs", "policy_mean_abs", "travel", "collapse", "policy_success")


def episode_rows(log: list[dict], window: int) -> list[list]:
    """One compact row per episode (:data:`EPISODE_COLUMNS`); policy_success over the last ``window``."""
    rows, recent = [], collections.deque(maxlen=window)
    for r in log:
        record = EpisodeRecord(**r)
        recent.append(record.autonomous)
        rows.append([record.episode, record.env_steps, int(record.success), int(record.autonomous),
                     round(record.intervention_rate, 2), round(record.alpha, 5), record.action_abs_mean,
                     record.entropy, record.policy_action_abs, record.policy_mean_abs, record.travel,
                     int(record.collapse),
                     round(sum(recent) / len(recent), 2)])
    return rows


def dump_compact(record: dict, path: str, rows_key: str = "episode_rows") -> None:
    """JSON with one line per key and one line per row of ``record[rows_key]``."""
    rows = record.get(rows_key) or []
    head = {k: v for k, v in record.items() if k != rows_key}
    columns = head.pop("episode_columns", None)
    text = json.dumps(head, indent=1)
    if columns is not None:
        text = text[:-2] + f',\n "episode_columns": {json.dumps(columns)}\n}}'

    lines = ",\n".join("  " + json.dumps(row) for row in rows)
    with open(path, "w") as fh:
        fh.write(text[:-2] + f',\n "{rows_key}": [\n{lines}\n ]\n}}\n')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="reach")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=20_000)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--no-operator", action="store_true", help="pure RL: the scripted operator never helps")
    parser.add_argument("--demos", type=int, default=0, help="scripted demonstration episodes preloaded (demo buffer)")
    parser.add_argument("--observation", default="state",
                        help="observation of config/observation/<task>.yaml: state | pixels")
    parser.add_argument("--result-json", default=None, help="write the outcome here (make bench-learning)")
    parser.add_argument("--reward-classifier", default=None, help="reward and success from this classifier file "
                        "(pixels; sparse reward as on the real arm); the simulator still judges success")
    parser.add_argument("--keep-training", action="store_true",
                        help="train on to the budget after reaching the target (does the success last?)")
    parser.add_argument("--operator-vetoes", type=float, nargs="?", const=1.0, default=0.0, metavar="SHARE",
                        help="with --reward-classifier: the scripted operator vetoes this share of the classifier's "
                        "false successes (alone: all of them), which it learns as hard negatives")
    parser.add_argument("--encoder", default=None, help="image encoder (pixels): " + ENCODERS_HELP +
                        "; default: config/learner.yaml's")
    parser.add_argument("--blank-frames", action="store_true",
                        help="the cameras show black frames: the control of a pixel run (what can it learn blind?)")
    parser.add_argument("--cell", type=int, default=None, metavar="N",
                        help="train (and record the demonstrations) in visual cell N (hilserl_ros.sim.cells); "
                        "default: the shipped cell")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a learner parameter as config/learner.yaml names it (repeatable): "
                        "target_entropy, temperature (initial alpha), discount, utd_ratio, use_backup_entropy, "
                        "updates_per_transition, alpha_floor, ...")
    parser.add_argument("--action-scale", type=float, default=None, metavar="M",
                        help="m per unit of normalised action (ee_ik action_scale); default: config/ik.yaml's")
    parser.add_argument("--switch-at", type=int, default=None, metavar="STEPS",
                        help="after this many env steps apply --switch (as ros2 param set /learner does)")
    parser.add_argument("--switch", action="append", default=[], metavar="NAME=VALUE",
                        help="a live knob for --switch-at (repeatable): " + ", ".join(LIVE_KNOBS))
    parser.add_argument("--reward-scale", type=float, default=1.0, help="multiply the reward learnt from")
    parser.add_argument("--sparse-reward", action="store_true",
                        help="learn from 1 on success, else 0 (the real arm's classifier), not the shaped reward")
    opts = parser.parse_args(argv)
    try:
        sets, switch = parse_settings(opts.set), parse_settings(opts.switch)
    except ValueError as exc:
        parser.error(str(exc))
    unknown = set(sets) - LearnerSettings.known()
    if unknown:
        parser.error(f"--set: unknown parameter(s) {sorted(unknown)}; known: {sorted(LearnerSettings.known())}")
    if set(switch) - set(LIVE_KNOBS):
        parser.error(f"--switch: not a live knob {sorted(set(switch) - set(LIVE_KNOBS))}; live: {sorted(LIVE_KNOBS)}")
    if bool(switch) != (opts.switch_at is not None):
        parser.error("--switch-at and --switch go together")
    if opts.encoder:
        sets["encoder"] = opts.encoder
    if opts.operator_vetoes and not opts.reward_classifier:
        parser.error("--operator-vetoes needs --reward-classifier")
    if not 0.0 <= opts.operator_vetoes <= 1.0:
        parser.error("--operator-vetoes SHARE must be within [0, 1]")

    def show(record: EpisodeRecord, rate: float) -> None:
        print(f"[ENV] Episode {record.episode} done | step={record.env_steps} | reward={record.reward:.2f} | "
              f"{'success' if record.success else 'timeout'} | intervention={100 * record.intervention_rate:.0f}% | "
              f"policy success@{opts.window}={rate:.0%} | alpha={record.alpha:.4f} | "
              f"|a|={fmt(record.action_abs_mean)} | policy |a|={fmt(record.policy_action_abs)} "
              f"(mean {fmt(record.policy_mean_abs)}) | H={fmt(record.entropy)} | "
              f"travel={100 * record.travel:.1f} cm{' | COLLAPSE' if record.collapse else ''} | {record.seconds:.0f} s",
              flush=True)

    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    env_config = dataclasses.replace(EnvConfig.from_graph(opts.task), cell=opts.cell)
    if opts.action_scale is not None:
        env_config = dataclasses.replace(env_config, action_scale=opts.action_scale)
    learner = LearnerSettings.from_graph(task=opts.task, **sets)
    result = train_env(opts.task, opts.seed, opts.max_steps, opts.minutes, opts.target, opts.window,
                       operator=not opts.no_operator, env_config=env_config, learner=learner, progress=show,
                       demo_episodes=opts.demos, blank_frames=opts.blank_frames,
                       observation=opts.observation, reward_model=opts.reward_classifier,
                       operator_vetoes=opts.operator_vetoes, stop_at_target=not opts.keep_training,
                       log=lambda line: print(f"[ENV] {line}", flush=True), switch_at=opts.switch_at,
                       switch=switch or None, reward_scale=opts.reward_scale, sparse_reward=opts.sparse_reward)
    summary = result.summary()
    print(json.dumps(summary))
    if opts.result_json:
        record = {"task": opts.task, "observation": opts.observation, "where": "env", **summary, "target": opts.target,
                  "demos": opts.demos, "cell": opts.cell, "encoder": learner.encoder if result.pixels else None,
                  "blank_frames": opts.blank_frames,
                  "reward": "classifier" if opts.reward_classifier else "simulator",
                  "operator_vetoes": opts.operator_vetoes, "classifier": result.classifier,
                  "timeline": classifier_timeline([EpisodeRecord(**r) for r in result.episodes_log],
                                                  result.classifier["veto_steps"], budget=opts.minutes)
                  if result.classifier else None,
                  "window": opts.window, "budget_minutes": opts.minutes,
                  "conditions": {"set": sets, "action_scale": env_config.action_scale, "operator": not opts.no_operator,
                                 "reward_scale": opts.reward_scale, "sparse_reward": opts.sparse_reward,
                                 "sac": result.sac},
                  "episode_columns": list(EPISODE_COLUMNS), "episode_rows": episode_rows(result.episodes_log,
                                                                                          opts.window)}
        dump_compact(record, opts.result_json)
    return 0 if result.reached else 1


if __name__ == "__main__":
    sys.exit(main())
