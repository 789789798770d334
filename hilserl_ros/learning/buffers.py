"""Replay buffers: fixed-capacity rings in preallocated numpy arrays.

- Capacity and eviction: a buffer holds the last ``capacity`` transitions; once full, each add
  overwrites the oldest (FIFO). Memory is allocated up front, so ``nbytes`` is what it costs.
- Images are stored as uint8 [H, W, 3] (1 byte per channel, the camera's own format), each
  frame once: a :class:`FrameStore` ring per buffer holds the frames, and a transition holds
  the numbers of its two frames (s_t's and s_{t+1}'s). Within an episode the frame of s_{t+1}
  is the frame of the next transition's s_t, so a 100-step episode costs 101 frames, not 200.
  They are scaled to [0, 1] floats only inside the encoder, per batch.
- With a frozen encoder, the store keeps each frame's features (``featurize``), computed once
  when the frame arrives: a batch then carries features and the encoder is not run in training
  at all (the cached-feature path of :mod:`hilserl_ros.learning.sac`). Training then never reads
  the pixels again, so the store may keep the features alone (``keep_frames=False``): two
  128x128 cameras cost 2 KiB per frame instead of 96 KiB, and a 200k-transition buffer fits in
  0.53 GB instead of 24.6 GB (checkpoints shrink alike). The frames stay in bags and the spool.
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
    images: dict[str, torch.Tensor]  # camera -> [B, 3, H, W] uint8 (empty with cached features)
    next_images: dict[str, torch.Tensor]
    features: dict[str, torch.Tensor] | None = None  # camera -> [B, D] float32, frozen-encoder features
    next_features: dict[str, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.obs.shape[0]

    def to(self, device) -> "Batch":
        """This batch on ``device`` (a learner training on a GPU)."""
        def move(tensors):
            return None if tensors is None else {k: v.to(device, non_blocking=True) for k, v in tensors.items()}
        return Batch(self.obs.to(device), self.action.to(device), self.reward.to(device), self.next_obs.to(device),
                     self.terminated.to(device), self.is_intervention.to(device), move(self.images),
                     move(self.next_images), move(self.features), move(self.next_features))

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
            features=None if parts[0].features is None else
            {k: torch.cat([p.features[k] for p in parts]) for k in parts[0].features},
            next_features=None if parts[0].next_features is None else
            {k: torch.cat([p.next_features[k] for p in parts]) for k in parts[0].next_features},
        )


class FrameStore:
    """Camera frames, each stored once, in uint8 rings addressed by an absolute frame number
    (0, 1, 2, ... for the store's life). Frame ``n`` is held until ``capacity`` newer ones have
    arrived. Not locked itself: its :class:`ReplayBuffer` holds the lock."""

    def __init__(self, capacity: int, image_shapes: dict[str, tuple[int, int, int]],
                 featurize=None, feature_dim: int = 0, keep_frames: bool = True, feature_dtype=np.float32):
        if not keep_frames and featurize is None:
            raise ValueError("a frame store that keeps no frames needs featurize (it keeps their features)")
        self.capacity = capacity
        self.shapes = dict(image_shapes)
        self.frames = ({k: np.zeros((capacity, *shape), np.uint8) for k, shape in self.shapes.items()}
                       if keep_frames else {})
        self.featurize = featurize  # images dict -> {camera: float32 [feature_dim]}
        self.features = ({k: np.zeros((capacity, feature_dim), feature_dtype) for k in self.shapes}
                         if featurize is not None else None)
        self.added = 0

    @property
    def oldest(self) -> int:
        """The oldest frame number still held."""
        return max(0, self.added - self.capacity)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.frames.values()) + sum(a.nbytes for a in (self.features or {}).values())

    def check(self, images, what: str) -> None:
        for key, shape in self.shapes.items():
            frame = (images or {}).get(key)
            if frame is None or frame.shape != shape or frame.dtype != np.uint8:
                got = None if frame is None else f"{frame.dtype}{list(frame.shape)}"
                raise ValueError(f"{what}[{key}] must be uint8{list(shape)}, got {got}")

    @property
    def keeps_frames(self) -> bool:
        return bool(self.frames)

    def put(self, images: dict[str, np.ndarray] | None, features: dict[str, np.ndarray] | None = None) -> int:
        slot = self.added % self.capacity
        for key in self.shapes:
            if self.frames:
                self.frames[key][slot] = images[key]
            if self.features is not None:
                self.features[key][slot] = features[key]
        self.added += 1
        return self.added - 1

    def slots(self, numbers: np.ndarray) -> np.ndarray:
        return np.asarray(numbers) % self.capacity


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, action_dim: int,
                 image_shapes: dict[str, tuple[int, int, int]] | None = None, seed: int | None = None,
                 frame_capacity: int | None = None, featurize=None, feature_dim: int = 0,
                 keep_frames: bool = True, feature_dtype=np.float32):
        """``frame_capacity``: frames held (default 1.25 x capacity: episodes of 4 steps or more
        never lose a transition to a frame overwritten early). ``featurize``/``feature_dim``:
        cache frozen-encoder features per frame (``feature_dtype``: float16 for a backbone's
        maps); ``keep_frames=False``: keep only those (see the module docstring)."""
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
        self.frames = (FrameStore(frame_capacity or capacity + capacity // 4 + 1, self.image_shapes, featurize,
                                  feature_dim, keep_frames, feature_dtype) if self.image_shapes else None)
        self.frame = np.zeros(capacity, np.int64)  # frame number of s_t
        self.next_frame = np.zeros(capacity, np.int64)  # frame number of s_{t+1}
        self._next = 0
        self._size = 0
        self.total_added = 0
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        arrays = [self.obs, self.next_obs, self.action, self.reward, self.terminated, self.is_intervention]
        if self.frames is not None:
            arrays += [self.frame, self.next_frame]
        return sum(a.nbytes for a in arrays) + (self.frames.nbytes if self.frames is not None else 0)

    @staticmethod
    def bytes_needed(capacity: int, obs_dim: int, action_dim: int, image_shapes: dict | None = None,
                     frame_capacity: int | None = None, feature_dim: int = 0, keep_frames: bool = True,
                     feature_dtype=np.float32) -> int:
        """What a buffer of these sizes allocates (for sizing one to a memory bound)."""
        per_transition = 4 * (2 * obs_dim + action_dim + 2) + 1 + (16 if image_shapes else 0)
        frames = (frame_capacity or capacity + capacity // 4 + 1) if image_shapes else 0
        per_frame = len(image_shapes or {}) * np.dtype(feature_dtype).itemsize * feature_dim
        if keep_frames:
            per_frame += sum(int(np.prod(s)) for s in (image_shapes or {}).values())
        return capacity * per_transition + frames * per_frame

    def add_frames(self, images: dict[str, np.ndarray]) -> int:
        """Store one frame per camera (uint8 [H, W, 3]); returns its frame number."""
        self.frames.check(images, "images")
        features = self.frames.featurize(images) if self.frames.featurize is not None else None
        with self._lock:
            return self.frames.put(images, features)

    def has_frame(self, number: int) -> bool:
        with self._lock:
            return self.frames is not None and self.frames.oldest <= number < self.frames.added

    def add(self, obs, action, reward: float, next_obs, terminated: bool, is_intervention: bool = False,
            images: dict[str, np.ndarray] | None = None, next_images: dict[str, np.ndarray] | None = None,
            frame: int | None = None, next_frame: int | None = None) -> None:
        """Store one transition. Camera frames come either as ``images``/``next_images`` (uint8
        [H, W, 3] per camera, stored here) or as the numbers ``frame``/``next_frame`` of frames
        already stored with :meth:`add_frames` (each frame once)."""
        obs = np.asarray(obs, np.float32).reshape(-1)
        next_obs = np.asarray(next_obs, np.float32).reshape(-1)
        action = np.asarray(action, np.float32).reshape(-1)
        if obs.shape[0] != self.obs_dim or next_obs.shape[0] != self.obs_dim:
            raise ValueError(f"observation has {obs.shape[0]}/{next_obs.shape[0]} values, expected {self.obs_dim}")
        if action.shape[0] != self.action_dim:
            raise ValueError(f"action has {action.shape[0]} values, expected {self.action_dim}")
        if self.frames is not None:
            if frame is None:
                self.frames.check(images, "images")
            if next_frame is None:
                self.frames.check(next_images, "next_images")
            if frame is None:
                frame = self.add_frames(images)
            if next_frame is None:
                next_frame = self.add_frames(next_images)
        with self._lock:
            if self.frames is not None and not (self.frames.oldest <= min(frame, next_frame)
                                                and max(frame, next_frame) < self.frames.added):
                raise ValueError(f"frames {frame}/{next_frame} are not held (held: {self.frames.oldest} to "
                                 f"{self.frames.added - 1})")
            i = self._next
            self.obs[i], self.next_obs[i], self.action[i] = obs, next_obs, action
            self.reward[i], self.terminated[i], self.is_intervention[i] = reward, float(terminated), is_intervention
            if self.frames is not None:
                self.frame[i], self.next_frame[i] = frame, next_frame
            self._next = (i + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)
            self.total_added += 1
            self._forget_lost_frames()

    def _forget_lost_frames(self) -> None:
        """Drop the oldest transitions whose frames were overwritten (only episodes shorter
        than frame_capacity / capacity allows get here)."""
        if self.frames is None:
            return
        oldest = self.frames.oldest
        while self._size > 0:
            head = (self._next - self._size) % self.capacity
            if min(self.frame[head], self.next_frame[head]) >= oldest:
                return
            self._size -= 1

    def sample(self, batch_size: int) -> Batch:
        with self._lock:
            if self._size == 0:
                raise ValueError("cannot sample from an empty buffer")
            # uniform over the stored transitions, oldest at (next - size)
            idx = (self._next - self._size + self._rng.integers(0, self._size, batch_size)) % self.capacity
            images, next_images, features, next_features = {}, {}, None, None
            if self.frames is not None:
                now, then = self.frames.slots(self.frame[idx]), self.frames.slots(self.next_frame[idx])
                if self.frames.features is not None:
                    features = {k: torch.from_numpy(v[now]) for k, v in self.frames.features.items()}
                    next_features = {k: torch.from_numpy(v[then]) for k, v in self.frames.features.items()}
                else:
                    images = {k: torch.from_numpy(v[now]).permute(0, 3, 1, 2) for k, v in self.frames.frames.items()}
                    next_images = {k: torch.from_numpy(v[then]).permute(0, 3, 1, 2)
                                   for k, v in self.frames.frames.items()}
            # fancy indexing copies, so the batch is ours once the lock is released
            return Batch(
                obs=torch.from_numpy(self.obs[idx]),
                action=torch.from_numpy(self.action[idx]),
                reward=torch.from_numpy(self.reward[idx]),
                next_obs=torch.from_numpy(self.next_obs[idx]),
                terminated=torch.from_numpy(self.terminated[idx]),
                is_intervention=torch.from_numpy(self.is_intervention[idx]),
                images=images, next_images=next_images, features=features, next_features=next_features,
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
            if self.frames is not None and n:
                # the frames the kept transitions use, oldest first, numbers re-based to 0
                order = (np.arange(n) + self._next - n) % self.capacity
                first = int(min(self.frame[order].min(), self.next_frame[order].min()))
                numbers = np.arange(first, self.frames.added)
                state["frame"] = torch.from_numpy(self.frame[order] - first)
                state["next_frame"] = torch.from_numpy(self.next_frame[order] - first)
                slots = self.frames.slots(numbers)
                for key in self.image_shapes:
                    if self.frames.keeps_frames:
                        state[f"frames/{key}"] = torch.from_numpy(self.frames.frames[key][slots])
                    else:  # features alone: valid with the encoder weights saved next to them
                        state[f"features/{key}"] = torch.from_numpy(self.frames.features[key][slots])
            return state

    def check_state_dict(self, state: dict) -> None:
        """ValueError, changing nothing, when this buffer cannot be filled from ``state``."""
        n = state["obs"].shape[0]
        keep = slice(max(0, n - self.capacity), n)
        if self.frames is None or keep.stop == keep.start:
            return
        frame, next_frame = state["frame"][keep].numpy(), state["next_frame"][keep].numpy()
        count = int(max(frame.max(), next_frame.max())) + 1 - int(min(frame.min(), next_frame.min()))
        if count > self.frames.capacity:
            raise ValueError(f"the checkpoint's transitions use {count} frames, this buffer holds {self.frames.capacity}")
        has_frames = all(f"frames/{k}" in state for k in self.image_shapes)
        if not has_frames and self.frames.keeps_frames:
            raise ValueError("the checkpoint's buffer holds frozen-encoder features, not frames: a buffer that keeps "
                             "frames (an encoder being trained) cannot be filled from it; resume with "
                             "freeze_encoder true or start afresh")
        if not has_frames and self.frames.features is None:
            raise ValueError("the checkpoint's buffer holds encoder features only, and this buffer caches none")

    def load_state_dict(self, state: dict) -> None:
        self.check_state_dict(state)
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
            self._size, self._next = m, m % self.capacity
            self.total_added = int(state["total_added"])
        if self.frames is None or m == 0:
            return
        frame, next_frame = state["frame"][keep].numpy(), state["next_frame"][keep].numpy()
        first = int(min(frame.min(), next_frame.min()))
        count = int(max(frame.max(), next_frame.max())) + 1 - first
        keys = list(self.image_shapes)
        has_frames = all(f"frames/{k}" in state for k in keys)
        base = self.frames.added
        for j in range(first, first + count):  # re-stored (features recomputed from frames when cached)
            if has_frames:
                self.add_frames({key: state[f"frames/{key}"][j].numpy() for key in keys})
            else:
                with self._lock:
                    self.frames.put(None, {key: state[f"features/{key}"][j].numpy() for key in keys})
        with self._lock:
            self.frame[:m] = frame - first + base
            self.next_frame[:m] = next_frame - first + base


def sample_mixed(rl: ReplayBuffer, demo: ReplayBuffer | None, batch_size: int) -> Batch:
    """RLPD: half the batch from each buffer once both hold data, else all from the one that does."""
    demo_ready = demo is not None and len(demo) > 0
    if not demo_ready:
        return rl.sample(batch_size)
    if len(rl) == 0:
        return demo.sample(batch_size)
    half = batch_size // 2
    return Batch.concat([rl.sample(batch_size - half), demo.sample(half)])
