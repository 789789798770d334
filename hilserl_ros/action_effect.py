"""Does each transition show the effect of its own action? (no ROS)

    python -m hilserl_ros.action_effect runs/train-.../checkpoints/learner.pt [--action-scale 0.02]
    python -m hilserl_ros.action_effect runs/demos/demos_<time>      (a bag: its /transitions)

Regresses the end-effector motion between a transition's observation and next observation on
its own action and on the previous step's action (consecutive transitions of an episode), in
units of the commanded motion (``action_scale`` x delta). A sound control loop shows about
0.8 on the own action (the servos reach most of a 2 cm step in one 100 ms period) and about 0
on the previous one. A loop whose observation lags the arm shows the opposite: the action's
effect appears one step later, and SAC learns from transitions that pair each action with its
predecessor's effect. This is how issue 11's failure to learn through the graph was found
(0.00 own, 0.36 previous at time_scale 3 without lockstep; the ROS-free env: 0.81, -0.03).

For ``reach`` from state it also says how far each reward is from minus the distance of the
next observation's EE to the goal (the reward must describe the state the action led to); an
observation without the goal (pixels) has nothing to check it against.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from hilserl_ros.observation import OFFSET_SCALE, POSITION_SCALE


@dataclass
class ActionEffect:
    own: float  # EE motion per commanded motion, this step's action
    previous: float  # ... the previous step's action
    r2: float  # of the two-action fit
    pairs: int  # consecutive transition pairs used
    reward_offset_m: float  # mean |reward + distance(next EE, goal)| over non-terminal steps (reach)

    def sound(self) -> bool:
        return self.own > 0.5 and self.own > 3 * abs(self.previous)

    def __str__(self) -> str:
        reward = ("no goal in the observation to check the reward against" if np.isnan(self.reward_offset_m)
                  else f"reward vs next observation {self.reward_offset_m * 100:.2f} cm")
        return (f"EE motion per commanded motion: own action {self.own:.2f}, previous action {self.previous:.2f} "
                f"(R2 {self.r2:.2f}, {self.pairs} consecutive pairs); {reward} -> "
                f"{'sound' if self.sound() else 'LAGGING: actions show late'}")


def action_effect(obs, action, next_obs, reward=None, terminated=None, action_scale: float = 0.02) -> ActionEffect:
    obs, action, next_obs = (np.asarray(v, np.float64) for v in (obs, action, next_obs))
    ee, next_ee = obs[:, 6:9] / POSITION_SCALE, next_obs[:, 6:9] / POSITION_SCALE
    motion, commanded = next_ee - ee, action[:, :3] * action_scale
    # pairs (i, i+1) where transition i+1 starts where i ended: the same episode, in order
    follows = np.flatnonzero(np.all(np.abs(next_obs[:-1] - obs[1:]) < 1e-6, axis=1))
    if len(follows) < 10:
        raise ValueError(f"only {len(follows)} consecutive transitions: need at least 10")
    x = np.stack([commanded[follows + 1].ravel(), commanded[follows].ravel()], axis=1)
    y = motion[follows + 1].ravel()
    (own, previous), *_ = np.linalg.lstsq(x, y, rcond=None)
    r2 = 1.0 - float(np.var(y - x @ [own, previous]) / max(np.var(y), 1e-12))
    offset = float("nan")
    if reward is not None and next_obs.shape[1] >= 15:  # the state layout: goal - EE at 12:15
        goal_offset = next_obs[:, 12:15] / OFFSET_SCALE
        keep = np.ones(len(obs), bool) if terminated is None else np.asarray(terminated) < 0.5
        offset = float(np.mean(np.abs(np.asarray(reward)[keep] + np.linalg.norm(goal_offset[keep], axis=1))))
    return ActionEffect(float(own), float(previous), r2, len(follows), offset)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a learner checkpoint (its RL buffer is read) or a bag directory "
                        "(its /transitions are read)")
    parser.add_argument("--action-scale", type=float, default=0.02)
    opts = parser.parse_args(argv)
    import os

    if os.path.isdir(opts.checkpoint):
        from hilserl_ros import topics
        from hilserl_ros.recording.bag import read_messages
        from hilserl_ros.recording.types import shared_types

        types = shared_types()
        msgs = [types.decode(m) for m in read_messages([opts.checkpoint], [topics.TRANSITIONS])]
        # steps whose action missed its simulated period (lockstep timeout) are nobody's training data
        msgs = [t for t in msgs if not getattr(t, "command_late", False)]
        arrays = [np.array([getattr(t, f) for t in msgs], float)
                  for f in ("observation", "action", "next_observation", "reward", "terminated")]
        task = next((types.decode(m).task
                     for m in read_messages([opts.checkpoint], [topics.TASK_STATE])), "reach")
        if task != "reach":  # the reward check is reach's (minus the distance); pick_cube's reward has more terms
            arrays[3] = None
        result = action_effect(*arrays, action_scale=opts.action_scale)
    else:
        from hilserl_ros.learning import checkpoint

        rl = checkpoint.load(opts.checkpoint)["buffers"]["rl"]
        result = action_effect(rl["obs"].numpy(), rl["action"].numpy(), rl["next_obs"].numpy(), rl["reward"].numpy(),
                               rl["terminated"].numpy(), opts.action_scale)
    print(result)
    return 0 if result.sound() else 1


if __name__ == "__main__":
    sys.exit(main())
