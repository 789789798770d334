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

    def step(self, ee, goal) -> np.ndarray | None:
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
