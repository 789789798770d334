"""Replay buffers: fixed-capacity rings in preallocated numpy arrays.

- Capacity and eviction: a buffer holds the last ``capacity`` transitions; once full, each add
  overwrites the oldest (FIFO). Memory is allocated up front, so ``nbytes`` is what it costs.
- Images are stored as uint8 [H, W, 3] (1 byte per channel, the camera's own format); they are
  scaled to [0, 1] floats only inside the encoder, per batch.
- Thread safety: one lock guards add and sample, so a ROS subscription thread may add while
  the training thread samples; a sample never sees a half-written transition.
- HIL-SERL/RLPD: the learner keeps an RL buffer (everything) and a demonstration buffer
  (demos and human interventions); :func:`sample_mixed` draws half of each batch from each
  once both hold data.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Batch:
    obs: torch.Tensor  # [B, obs_dim] float32
    action: torch.Tensor  # [B, action_dim] float32 in [-1, 1]
    reward: torch.Tensor  # [B] float32
    next_obs: torch.Tensor  # [B, obs_dim]
    terminated: torch.Tensor  # [B] float32 (1 = no bootstrap)
    is_intervention: torch.Tensor  # [B] bool
    images: dict[str, torch.Tensor]  # camera -> [B, 3, H, W] uint8
    next_images: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return self.obs.shape[0]

    @staticmethod
    def concat(parts: list["Batch"]) -> "Batch":
        if len(parts) == 1:
            return parts[0]
        return Batch(
            obs=torch.cat([p.obs for p in parts]),
            action=torch.cat([p.action for p in parts]),
            reward=torch.cat([p.reward for p in parts]),
            next_obs=torch.cat([p.next_obs for p in parts]),
            terminated=torch.cat([p.terminated for p in parts]),
            is_intervention=torch.cat([p.is_intervention for p in parts]),
            images={k: torch.cat([p.images[k] for p in parts]) for k in parts[0].images},
            next_images={k: torch.cat([p.next_images[k] for p in parts]) for k in parts[0].next_images},
        )


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, action_dim: int,
                 image_shapes: dict[str, tuple[int, int, int]] | None = None, seed: int | None = None):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity, self.obs_dim, self.action_dim = capacity, obs_dim, action_dim
        self.image_shapes = dict(image_shapes or {})
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.is_intervention = np.zeros(capacity, np.bool_)
        self.images = {k: np.zeros((capacity, *shape), np.uint8) for k, shape in self.image_shapes.items()}
        self.next_images = {k: np.zeros((capacity, *shape), np.uint8) for k, shape in self.image_shapes.items()}
        self._next = 0
        self._size = 0
        self.total_added = 0
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        arrays = [self.obs, self.next_obs, self.action, self.reward, self.terminated, self.is_intervention,
                  *self.images.values(), *self.next_images.values()]
        return sum(a.nbytes for a in arrays)

    def add(self, obs, action, reward: float, next_obs, terminated: bool, is_intervention: bool = False,
            images: dict[str, np.ndarray] | None = None, next_images: dict[str, np.ndarray] | None = None) -> None:
        """Store one transition (``images`` as uint8 [H, W, 3] per camera)."""
        obs = np.asarray(obs, np.float32).reshape(-1)
        next_obs = np.asarray(next_obs, np.float32).reshape(-1)
        action = np.asarray(action, np.float32).reshape(-1)
        if obs.shape[0] != self.obs_dim or next_obs.shape[0] != self.obs_dim:
            raise ValueError(f"observation has {obs.shape[0]}/{next_obs.shape[0]} values, expected {self.obs_dim}")
        if action.shape[0] != self.action_dim:
            raise ValueError(f"action has {action.shape[0]} values, expected {self.action_dim}")
        for name, frames in (("images", images), ("next_images", next_images)):
            for key, shape in self.image_shapes.items():
                frame = (frames or {}).get(key)
                if frame is None or frame.shape != shape or frame.dtype != np.uint8:
                    got = None if frame is None else f"{frame.dtype}{list(frame.shape)}"
                    raise ValueError(f"{name}[{key}] must be uint8{list(shape)}, got {got}")
        with self._lock:
            i = self._next
            self.obs[i], self.next_obs[i], self.action[i] = obs, next_obs, action
            self.reward[i], self.terminated[i], self.is_intervention[i] = reward, float(terminated), is_intervention
            for key in self.image_shapes:
                self.images[key][i] = images[key]
                self.next_images[key][i] = next_images[key]
            self._next = (i + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)
            self.total_added += 1

    def sample(self, batch_size: int) -> Batch:
        with self._lock:
            if self._size == 0:
                raise ValueError("cannot sample from an empty buffer")
            idx = self._rng.integers(0, self._size, batch_size)
            # fancy indexing copies, so the batch is ours once the lock is released
            return Batch(
                obs=torch.from_numpy(self.obs[idx]),
                action=torch.from_numpy(self.action[idx]),
                reward=torch.from_numpy(self.reward[idx]),
                next_obs=torch.from_numpy(self.next_obs[idx]),
                terminated=torch.from_numpy(self.terminated[idx]),
                is_intervention=torch.from_numpy(self.is_intervention[idx]),
                images={k: torch.from_numpy(v[idx]).permute(0, 3, 1, 2) for k, v in self.images.items()},
                next_images={k: torch.from_numpy(v[idx]).permute(0, 3, 1, 2) for k, v in self.next_images.items()},
            )

    # -- checkpoints: tensors only, so torch.load(weights_only=True) reads them back ----------
    def state_dict(self) -> dict:
        with self._lock:
            n = self._size
            # store in age order (oldest first), so a restore into any capacity keeps the newest
            order = np.arange(n) if n < self.capacity else (np.arange(n) + self._next) % self.capacity
            state = {
                "obs": torch.from_numpy(self.obs[order]), "next_obs": torch.from_numpy(self.next_obs[order]),
                "action": torch.from_numpy(self.action[order]), "reward": torch.from_numpy(self.reward[order]),
                "terminated": torch.from_numpy(self.terminated[order]),
                "is_intervention": torch.from_numpy(self.is_intervention[order]),
                "total_added": self.total_added,
            }
            for key in self.image_shapes:
                state[f"images/{key}"] = torch.from_numpy(self.images[key][order])
                state[f"next_images/{key}"] = torch.from_numpy(self.next_images[key][order])
            return state

    def load_state_dict(self, state: dict) -> None:
        n = state["obs"].shape[0]
        keep = slice(max(0, n - self.capacity), n)
        m = keep.stop - keep.start
        with self._lock:
            self.obs[:m] = state["obs"][keep].numpy()
            self.next_obs[:m] = state["next_obs"][keep].numpy()
            self.action[:m] = state["action"][keep].numpy()
            self.reward[:m] = state["reward"][keep].numpy()
            self.terminated[:m] = state["terminated"][keep].numpy()
            self.is_intervention[:m] = state["is_intervention"][keep].numpy()
            for key in self.image_shapes:
                self.images[key][:m] = state[f"images/{key}"][keep].numpy()
                self.next_images[key][:m] = state[f"next_images/{key}"][keep].numpy()
            self._size, self._next = m, m % self.capacity
            self.total_added = int(state["total_added"])


def sample_mixed(rl: ReplayBuffer, demo: ReplayBuffer | None, batch_size: int) -> Batch:
    """RLPD: half the batch from each buffer once both hold data, else all from the one that does."""
    demo_ready = demo is not None and len(demo) > 0
    if not demo_ready:
        return rl.sample(batch_size)
    if len(rl) == 0:
        return demo.sample(batch_size)
    half = batch_size // 2
    return Batch.concat([rl.sample(batch_size - half), demo.sample(half)])
