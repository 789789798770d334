"""Episodes on the real arm, without a simulator (no ROS): reset, start, reward, success.

In simulation the world knows when the cube is lifted. On the real SO-101 nobody does, so,
as in HIL-SERL and LeRobot's HIL-SERL, success comes from the operator's buttons and/or a
reward classifier on the camera frames, and reward is HIL-SERL's sparse one: ``success_reward``
on the step that succeeds, optionally minus a ``step_penalty`` on every step. Between episodes
the arm goes back to its home pose, slowly, through the driver (:class:`HomeMove`), and the
next episode starts on the operator's START button or after a delay.

:class:`EpisodeJudge` is the state machine; ``hilserl_ros.nodes.task_node`` feeds it the
joint states, the operator's events and the classifier's predictions, and publishes what it
decides as ``TaskState`` on the topic the simulation uses, so the actor runs the same code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REWARD_SOURCES = ("buttons", "classifier", "both")
START_ON = ("button", "timer")

RESETTING, WAITING, RUNNING, STOPPED = "resetting", "waiting for start", "running", "stopped"


class HomeMove:
    """A straight line in joint space from the measured pose to ``home``, every joint arriving
    together, with the speed limited to ``max_speed`` rad/s and changing by at most
    ``max_accel`` rad/s^2 (a trapezoid: it starts and stops gently). :meth:`next` gives the
    next position target, one per ``1/rate`` s."""

    def __init__(self, start, home, max_speed: float, max_accel: float, rate: float):
        if max_speed <= 0 or max_accel <= 0 or rate <= 0:
            raise ValueError("max_speed, max_accel and rate must be positive")
        self.start = np.asarray(start, float)
        self.home = np.asarray(home, float)
        if self.start.shape != self.home.shape or not np.all(np.isfinite(self.start)):
            raise ValueError("start and home must be finite joint vectors of the same length")
        self.length = float(np.max(np.abs(self.home - self.start)))  # the joint that moves farthest
        self.max_speed, self.max_accel, self.dt = max_speed, max_accel, 1.0 / rate
        self.travelled = 0.0
        self.speed = 0.0

    @property
    def done(self) -> bool:
        return self.travelled >= self.length - 1e-12

    def next(self) -> np.ndarray:
        if self.length == 0.0:
            return self.home.copy()
        left = self.length - self.travelled
        # fastest speed that can still stop at home, slowing by max_accel * dt each period:
        # v + (v - a dt) + ... = left  <=>  v^2 / (2 a) + v dt / 2 = left
        a_dt = self.max_accel * self.dt
        stopping = a_dt * (np.sqrt(0.25 + 2.0 * left / (a_dt * self.dt)) - 0.5)
        self.speed = min(self.speed + self.max_accel * self.dt, self.max_speed, stopping)
        # never stall short of home: the slowest step is one period's acceleration (or what is left)
        self.speed = max(self.speed, min(self.max_accel * self.dt, self.max_speed, left / self.dt))
        self.travelled = min(self.length, self.travelled + self.speed * self.dt)
        return self.start + (self.home - self.start) * (self.travelled / self.length)


@dataclass
class JudgeConfig:
    reward_source: str = "both"  # buttons | classifier | both
    start_on: str = "button"  # button | timer
    start_delay: float = 2.0  # s after the arm is home, when start_on is timer
    success_reward: float = 1.0
    step_penalty: float = 0.0
    classifier_timeout: float = 0.5  # s: an older prediction means the classifier (or a camera) is gone
    reset_tolerance: float = 0.05  # rad: home reached when every joint is this close
    reset_timeout: float = 20.0  # s
    veto_window: float = 3.0  # s after the classifier ends an episode in which FAILURE vetoes its success

    def check(self) -> None:
        if self.reward_source not in REWARD_SOURCES:
            raise ValueError(f"reward_source must be one of {REWARD_SOURCES}, got {self.reward_source!r}")
        if self.start_on not in START_ON:
            raise ValueError(f"start_on must be one of {START_ON}, got {self.start_on!r}")

    @property
    def uses_classifier(self) -> bool:
        return self.reward_source in ("classifier", "both")

    @property
    def uses_buttons(self) -> bool:
        return self.reward_source in ("buttons", "both")


@dataclass
class Veto:
    """The operator's FAILURE right after the classifier claimed a success: it was none.
    ``stamp`` is the vetoed prediction's (what the classifier learns as hard negatives)."""

    episode: int
    stamp: float
    probability: float


@dataclass
class Verdict:
    """What the judge says of one control step (the content of a TaskState)."""

    episode: int
    reward: float
    success: bool
    failure: bool
    reason: str


class EpisodeJudge:
    """reset -> (arm home) -> waiting -> (START or timer) -> running -> (success / failure /
    the actor's timeout, then reset) ... Times are in seconds of one clock, passed in."""

    def __init__(self, config: JudgeConfig, home, max_speed: float, max_accel: float, rate: float):
        config.check()
        self.config = config
        self.home = np.asarray(home, float)
        self.max_speed, self.max_accel, self.rate = max_speed, max_accel, rate
        self.state = STOPPED  # until the first reset is asked for
        self.episode = 0
        self.move: HomeMove | None = None
        self.phase_since = 0.0
        self.pending: tuple[bool, str] | None = None  # a button's verdict, for the next step
        self.prediction: tuple[float, bool, float] | None = None  # (stamp, success, probability)
        self.why_not_started = ""
        self.reset_failed = False  # the last way home timed out: START tries it again
        self.claimed: tuple[float, Veto] | None = None  # (when, what) of the classifier's last success
        self.started_at = 0.0  # when the running episode began (its predictions are of frames after it)

    # ------------------------------------------------------------------ inputs
    def reset(self, joints, now: float) -> None:
        """Back home, then wait for the start (the actor asks after each episode)."""
        self.move = HomeMove(joints, self.home, self.max_speed, self.max_accel, self.rate)
        self.state, self.phase_since, self.pending = RESETTING, now, None
        self.reset_failed = False

    def button(self, success: bool, now: float | None = None) -> Veto | None:
        """The operator's SUCCESS (True) or FAILURE (False) button. FAILURE within
        ``veto_window`` s of a success the classifier claimed is a veto of it (returned once)."""
        if self.state != RUNNING:
            if not success and self.claimed is not None and now is not None:
                when, veto = self.claimed
                self.claimed = None
                if now - when <= self.config.veto_window:
                    return veto
            return None
        if success and not self.config.uses_buttons:
            return None  # the classifier alone judges success; failure stays the operator's right
        self.pending = (success, "operator: success button" if success else "operator: failure button")
        return None

    def start(self, now: float) -> bool:
        """The operator's START button: begins the episode if the arm is home."""
        if self.state != WAITING:
            return False
        return self._begin(now)

    def classifier(self, stamp: float, success: bool, probability: float) -> None:
        """The classifier's newest prediction; ``stamp`` is when its frames were taken (the same
        clock as ``now``), which decides the episode it can judge."""
        self.prediction = (stamp, success, probability)

    # ------------------------------------------------------------------ the clock
    def reset_target(self, measured, now: float) -> np.ndarray | None:
        """While resetting: the next joint target (None once home, or on a timeout)."""
        if self.state != RESETTING or self.move is None:
            return None
        measured = np.asarray(measured, float)
        if self.move.done and np.max(np.abs(measured - self.home)) <= self.config.reset_tolerance:
            self.state, self.phase_since = WAITING, now
            return None
        if now - self.phase_since > self.config.reset_timeout:
            self.state, self.phase_since, self.reset_failed = STOPPED, now, True
            self.why_not_started = (f"the arm did not reach home within {self.config.reset_timeout:.0f} s "
                                    f"(largest joint error {np.max(np.abs(measured - self.home)):.3f} rad)")
            return None
        return self.move.next()

    def tick(self, now: float) -> Verdict | None:
        """One control step: the verdict while running, else None (and maybe the timer's start)."""
        if self.state == WAITING and self.config.start_on == "timer" and now - self.phase_since >= self.config.start_delay:
            self._begin(now)
        if self.state != RUNNING:
            return None
        penalty = -self.config.step_penalty
        if self.pending is not None:
            success, reason = self.pending
            self.pending = None
            return self._end(success, not success, reason, penalty)
        if self.config.uses_classifier:
            missing = self._classifier_missing(now)
            if missing:
                return self._end(False, True, missing, penalty)
            stamp, success, probability = self.prediction
            # a prediction of frames taken before this episode began judges the last one (or the
            # way home): it may keep the episode alive (the classifier is there) but never end it
            if success and stamp >= self.started_at:
                self.claimed = (now, Veto(self.episode, stamp, probability))
                return self._end(True, False, f"classifier p={probability:.2f}", penalty)
        return Verdict(self.episode, penalty, False, False, "")

    # ------------------------------------------------------------------ internals
    def _classifier_missing(self, now: float) -> str:
        if self.prediction is None:
            return "no prediction from the reward classifier: episode stopped (no judging blind)"
        age = now - self.prediction[0]
        if age > self.config.classifier_timeout:
            return (f"reward classifier silent for {age:.2f} s (> classifier_timeout "
                    f"{self.config.classifier_timeout} s; a camera or the classifier is gone): episode stopped")
        return ""

    def _begin(self, now: float) -> bool:
        if self.config.uses_classifier:
            missing = self._classifier_missing(now)
            if missing:
                self.why_not_started = missing.replace("episode stopped", "not starting")
                return False
        self.why_not_started = ""
        self.claimed = None  # a new episode: too late to veto the last one
        self.episode += 1
        self.state, self.phase_since, self.started_at = RUNNING, now, now
        return True

    def _end(self, success: bool, failure: bool, reason: str, penalty: float) -> Verdict:
        self.state = STOPPED  # until the actor asks for the next reset
        reward = penalty + (self.config.success_reward if success else 0.0)
        return Verdict(self.episode, reward, success, failure, reason)
