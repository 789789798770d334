"""Transitions whose camera frames cross the wire once (no ROS).

An actor sends each step's frames once: a transition carries the frames of s_t, and the
frames of s_{t+1} arrive as the next transition's (same actor session, seq + 1, same
episode). Only the last transition of an episode (terminated or truncated) carries its
s_{t+1} frames itself. :class:`FramePairer` puts such a stream into replay buffers with each
frame stored once per buffer:

- a transition waits (``pending``) until the frames of its successor arrive, then goes into
  its buffers, its s_{t+1} frame being the successor's s_t frame;
- a transition that arrives without its predecessor pending (a re-send after a gap, or the
  first after a restart) keeps its frames (``early``, bounded) in case the predecessor comes;
- :meth:`unheld` says which accepted sequence numbers are not in a buffer yet, so the learner
  acknowledges (and checkpoints) only what it really holds, and a restart re-sends the rest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hilserl_ros.learning.buffers import ReplayBuffer


@dataclass
class Step:
    """One transition as the pairer needs it (from a Transition message or a bag)."""

    seq: int
    episode: int
    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    is_intervention: bool
    images: dict[str, np.ndarray]  # frames of s_t, uint8 [H, W, 3] per camera
    next_images: dict[str, np.ndarray] | None  # frames of s_{t+1}: only on an episode's last step


@dataclass
class _Waiting:
    step: Step
    frames: dict[int, int]  # id(buffer) -> frame number of s_t in that buffer
    buffers: tuple[ReplayBuffer, ...]


class FramePairer:
    def __init__(self, max_early: int = 200):
        self.pending: dict[tuple, _Waiting] = {}  # (link, seq) -> waits for the frames of seq + 1
        self.early: dict[tuple, Step] = {}  # (link, seq) -> arrived before seq - 1
        self.max_early = max_early
        self.lost_early = 0  # early arrivals dropped to keep the bound (their predecessor never came)

    def add(self, link, step: Step, buffers: tuple[ReplayBuffer, ...]) -> int:
        """Take one transition of ``link`` (an actor session) for ``buffers``; returns how many
        transitions went into buffers now (0 while it waits, more when it completes others)."""
        stored = 0
        frames = {id(b): b.add_frames(step.images) for b in buffers}
        before = self.pending.pop((link, step.seq - 1), None)
        if before is not None:
            stored += self._complete(before, step.images, frames)
        waiting = _Waiting(step, frames, buffers)
        if step.next_images is not None:  # an episode's last step brings its own s_{t+1} frames
            return stored + self._complete(waiting, step.next_images)
        successor = self.early.pop((link, step.seq + 1), None)
        if successor is not None and successor.episode == step.episode:
            return stored + self._complete(waiting, successor.images)
        self.pending[(link, step.seq)] = waiting
        if before is None and step.seq > 1 and (link, step.seq - 1) not in self.early:
            self._keep_early(link, step)
        return stored

    def _keep_early(self, link, step: Step) -> None:
        # the predecessor may still come (re-sent): it will need these frames as its s_{t+1}
        self.early[(link, step.seq)] = step
        while len(self.early) > self.max_early:
            self.early.pop(next(iter(self.early)))
            self.lost_early += 1

    def _complete(self, waiting: _Waiting, next_images: dict, next_frames: dict | None = None) -> int:
        """Into its buffers, with ``next_images`` as s_{t+1} (``next_frames``: the numbers of
        those frames in buffers that already hold them)."""
        s = waiting.step
        for buffer in waiting.buffers:
            after = (next_frames or {}).get(id(buffer))
            if after is None:
                after = buffer.add_frames(next_images)
            if not buffer.has_frame(waiting.frames[id(buffer)]):  # overwritten meanwhile (a huge gap)
                continue
            buffer.add(s.obs, s.action, s.reward, s.next_obs, s.terminated, s.is_intervention,
                       frame=waiting.frames[id(buffer)], next_frame=after)
        return 1

    def unheld(self, link) -> set[int]:
        """Accepted sequence numbers of ``link`` not in a buffer yet (an early arrival is
        pending too, or already stored: its entry in ``early`` only keeps its frames)."""
        return {seq for (key, seq) in list(self.pending) if key == link}
