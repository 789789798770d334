"""Train the SAC core on a gymnasium task (state observations): the learning check of the core
on a standard benchmark, independent of the robot and of ROS.

    python -m hilserl_ros.learning.gym_train --env Pendulum-v1 --steps 15000 --seed 0
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import time

import gymnasium as gym
import numpy as np
import torch

from hilserl_ros.learning.buffers import ReplayBuffer
from hilserl_ros.learning.config import SACConfig
from hilserl_ros.learning.sac import SACAgent


@dataclasses.dataclass
class GymResult:
    seed: int
    steps: int
    episodes: int
    returns: list[float]
    alphas: list[float]
    seconds: float
    reached_at: int | None  # env step at which the goal was first met (None = never)

    def last_mean(self, n: int = 10) -> float:
        return float(np.mean(self.returns[-n:])) if self.returns else float("-inf")


def train_gym(env_id: str, total_steps: int, seed: int = 0, learning_starts: int = 1000,
              goal_return: float | None = None, window: int = 10, threads: int = 1, **overrides) -> GymResult:
    """SAC on ``env_id``; stops early once the mean return of the last ``window`` episodes
    exceeds ``goal_return``. Actions are normalised to [-1, 1] and rescaled to the env's box."""
    torch.set_num_threads(threads)
    env = gym.make(env_id)
    low, high = env.action_space.low, env.action_space.high
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    config = SACConfig(obs_dim=obs_dim, action_dim=action_dim, seed=seed, **overrides)
    agent = SACAgent(config)
    buffer = ReplayBuffer(total_steps, obs_dim, action_dim, seed=seed)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    returns, alphas, episode_return = [], [], 0.0
    recent = collections.deque(maxlen=window)
    start, reached = time.monotonic(), None
    step = 0
    for step in range(1, total_steps + 1):
        if step <= learning_starts:
            action = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
        else:
            action = agent.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(low + (action + 1.0) * 0.5 * (high - low))
        buffer.add(obs, action, reward, next_obs, terminated)
        episode_return += reward
        obs = next_obs
        if step > learning_starts:
            agent.update(buffer.sample)
        if terminated or truncated:
            returns.append(float(episode_return))
            recent.append(episode_return)
            alphas.append(agent.alpha if step > learning_starts else config.temperature_init)
            episode_return = 0.0
            obs, _ = env.reset()
            if goal_return is not None and len(recent) == window and np.mean(recent) > goal_return:
                reached = step
                break
    env.close()
    return GymResult(seed, step, len(returns), returns, alphas, time.monotonic() - start, reached)


PENDULUM = dict(discount=0.99, temperature_init=1.0, utd_ratio=1, batch_size=256)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=15000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--goal", type=float, default=-400.0)
    opts = parser.parse_args(argv)
    result = train_gym(opts.env, opts.steps, opts.seed, goal_return=opts.goal, **PENDULUM)
    print(json.dumps({"seed": result.seed, "steps": result.steps, "episodes": result.episodes,
                      "last10": result.last_mean(), "reached_at": result.reached_at,
                      "seconds": round(result.seconds, 1)}))
    return 0 if result.reached_at else 1


if __name__ == "__main__":
    raise SystemExit(main())
