"""Binary reward classifier: P(success) from the camera frames of one step (no ROS).

On the real arm nothing knows whether the cube is lifted. HIL-SERL trains a classifier on
frames labelled success / failure and uses it as the reward; so does this module. It uses the
policy's own frozen camera encoders (hilserl_ros/vision/weights, one ConvEncoder per camera),
so training is a small MLP on cached features: seconds on two cores. The file it writes is
self-contained (the encoders travel with the head) and is a safetensors file with its settings
as JSON metadata: nothing is unpickled when it is loaded.

Labelled frames come from

- rosbag2 bags of the training graph (``make record-demos``, ``record:=true``): the frames of
  the last step of an episode that ended in success (the simulation's success, or the
  operator's success button on the real arm, which the task node turns into the success
  reward) are positives, every other step's frames are negatives;
- the ROS-free simulation (``--sim-episodes``), where the true success of every frame is known:
  the scripted operator demonstrates, and holds the success pose a few steps longer so a
  positive is not one frame per episode. Held-out episodes measure precision and recall.

``make train-reward-classifier ARGS="runs/demos_..."`` trains from bags;
``python -m hilserl_ros.learning.reward_classifier --sim-episodes 60`` from simulation.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hilserl_ros.learning.networks import ConvEncoder

DEFAULT_PATH = os.path.join("runs", "reward_classifier.safetensors")
SUCCESS_REWARD_MIN = 0.5  # a terminal transition with at least this reward ended in success


@dataclass
class LabelledFrames:
    """Frames per camera (uint8 [N, H, W, 3]), success labels [N] and the episode of each."""

    frames: dict[str, np.ndarray]
    labels: np.ndarray
    episodes: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> "LabelledFrames":
        return LabelledFrames({k: v[mask] for k, v in self.frames.items()}, self.labels[mask], self.episodes[mask])


class RewardClassifier(nn.Module):
    """Frozen ConvEncoder per camera -> concatenated features -> MLP -> success logit."""

    def __init__(self, cameras: tuple[str, ...], image_size: int = 128, latent_dim: int = 256, hidden: int = 128):
        super().__init__()
        self.cameras = tuple(cameras)
        self.image_size = image_size
        self.encoders = nn.ModuleDict({c: ConvEncoder(image_size, latent_dim) for c in self.cameras})
        self.head = nn.Sequential(nn.Linear(latent_dim * len(self.cameras), hidden), nn.LayerNorm(hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))
        for p in self.encoders.parameters():
            p.requires_grad_(False)
        self.threshold = 0.5
        self.info: dict = {}

    @torch.no_grad()
    def features(self, frames: dict[str, np.ndarray], batch: int = 256) -> torch.Tensor:
        """[N, latent * cameras] for uint8 frames [N, H, W, 3] per camera."""
        n = len(next(iter(frames.values())))
        out = []
        for start in range(0, n, batch):
            parts = []
            for c in self.cameras:
                chunk = frames[c][start:start + batch]
                if chunk.shape[1:] != (self.image_size, self.image_size, 3) or chunk.dtype != np.uint8:
                    raise ValueError(f"camera {c}: frames must be uint8 [N, {self.image_size}, {self.image_size}, 3], "
                                     f"got {chunk.dtype} {list(chunk.shape)}")
                x = torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2).float().div_(255.0)
                parts.append(self.encoders[c].eval()(x))
            out.append(torch.cat(parts, dim=1))
        return torch.cat(out) if out else torch.zeros(0, self.head[0].in_features)

    @torch.no_grad()
    def probability(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """P(success) per frame set; ``frames`` per camera, [N, H, W, 3] or one [H, W, 3]."""
        single = next(iter(frames.values())).ndim == 3
        if single:
            frames = {k: v[None] for k, v in frames.items()}
        missing = [c for c in self.cameras if c not in frames]
        if missing:
            raise ValueError(f"no frame of camera(s) {missing}")
        p = torch.sigmoid(self.head.eval()(self.features(frames))).squeeze(1).numpy()
        return p[0:1] if single else p

    def fit(self, data: LabelledFrames, epochs: int = 200, seed: int = 0, lr: float = 1e-3,
            batch_size: int = 256) -> dict:
        """Train the head on the frames' features (class-balanced); returns training accuracy."""
        if data.labels.sum() == 0 or data.labels.sum() == len(data):
            raise ValueError(f"need frames of both classes to train, got {int(data.labels.sum())} success of "
                             f"{len(data)}")
        torch.manual_seed(seed)
        x = self.features(data.frames)
        y = torch.from_numpy(data.labels.astype(np.float32))
        positives = float(y.sum())
        # success frames are rare (a few per episode): weigh them as much as the failures
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - positives) / positives))
        optimizer = torch.optim.Adam(self.head.parameters(), lr=lr, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(seed)
        self.head.train()
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), batch_size):
                idx = order[start:start + batch_size]
                loss = loss_fn(self.head(x[idx]).squeeze(1), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.head.eval()
        with torch.no_grad():
            p = torch.sigmoid(self.head(x)).squeeze(1).numpy()
        return scores(p, data.labels, self.threshold)

    # ------------------------------------------------------------------ files
    def save(self, path: str, info: dict | None = None) -> str:
        import safetensors.torch

        self.info = {**self.info, **(info or {})}
        meta = {"cameras": list(self.cameras), "image_size": self.image_size, "threshold": self.threshold,
                "latent_dim": self.head[0].in_features // len(self.cameras), "hidden": self.head[0].out_features,
                **self.info}
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        safetensors.torch.save_file(tensors, path, metadata={"hilserl_reward_classifier": json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str) -> "RewardClassifier":
        import safetensors.torch
        from safetensors import safe_open

        with safe_open(path, "pt") as fh:
            metadata = fh.metadata() or {}
        if "hilserl_reward_classifier" not in metadata:
            raise ValueError(f"{path} is not a reward classifier of make train-reward-classifier (no metadata)")
        meta = json.loads(metadata["hilserl_reward_classifier"])
        model = cls(tuple(meta["cameras"]), meta["image_size"], meta["latent_dim"], meta["hidden"])
        model.load_state_dict(safetensors.torch.load_file(path))
        model.threshold = float(meta.get("threshold", 0.5))
        model.info = {k: v for k, v in meta.items() if k not in ("cameras", "image_size", "latent_dim", "hidden")}
        return model.eval()


def from_policy_encoders(cameras: tuple[str, ...], weights: str | None = None) -> RewardClassifier:
    """A classifier whose encoders are the policy's frozen pretrained ones."""
    from hilserl_ros.vision.pretrain import WEIGHTS, load

    regressors = load(weights or WEIGHTS)
    missing = [c for c in cameras if c not in regressors]
    if missing:
        raise ValueError(f"{weights or WEIGHTS} has no encoder for camera(s) {missing} (it has {sorted(regressors)})")
    first = regressors[cameras[0]].encoder
    size = first.spatial.shape[1] * 16
    model = RewardClassifier(tuple(cameras), size, first.project[0].out_features)
    for c in cameras:
        model.encoders[c].load_state_dict(regressors[c].encoder.state_dict())
    model.info["encoder_sha256"] = file_sha256(weights or WEIGHTS)[:16]
    return model


def file_sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def scores(probability: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Precision, recall and accuracy of ``probability >= threshold`` against the labels."""
    predicted = probability >= threshold
    truth = labels.astype(bool)
    tp = int(np.sum(predicted & truth))
    fp = int(np.sum(predicted & ~truth))
    fn = int(np.sum(~predicted & truth))
    return {"precision": tp / (tp + fp) if tp + fp else float("nan"), "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "accuracy": float(np.mean(predicted == truth)) if len(truth) else float("nan"),
            "frames": int(len(truth)), "success_frames": int(truth.sum())}


# --------------------------------------------------------------------------- data
def collect_sim(task: str, episodes: int, seed: int = 0, hold_steps: int = 10, random_share: float = 0.25,
                progress: bool = True) -> LabelledFrames:
    """Frames of simulated episodes with their true success. The scripted operator
    demonstrates (and holds the success pose ``hold_steps`` steps longer); ``random_share`` of
    the episodes are random actions, so failures look like more than a good demonstration."""
    from tqdm import tqdm

    from hilserl_ros.sim.env import make_env

    rng = np.random.default_rng(seed)
    demo = make_env(task, seed=seed, demonstrate=True, observation="pixels")
    cameras = [c.name for c in demo.env.observation_spec.cameras]
    frames: dict[str, list] = {c: [] for c in cameras}
    labels, which = [], []

    def keep(obs, success: bool, episode: int) -> None:
        for c in cameras:
            frames[c].append(obs[c])
        labels.append(success)
        which.append(episode)

    for episode in tqdm(range(episodes), desc=f"{task} frames", unit="episode", disable=not progress):
        random_actions = rng.random() < random_share
        demo.enabled = not random_actions
        obs, info = demo.reset(seed=int(rng.integers(1 << 30)))
        keep(obs, info["success"], episode)
        done, extra = False, 0
        while True:
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            if done:  # after success: the operator holds still, the cube stays up
                obs, _, _, _, info = demo.env.step(np.zeros(4, np.float32))
                extra += 1
            else:
                obs, _, terminated, truncated, info = demo.step(action)
                done = terminated or truncated
            keep(obs, info["success"], episode)
            if done and (not info["success"] or extra >= hold_steps):
                break
    demo.close()
    return LabelledFrames({c: np.stack(v) for c, v in frames.items()}, np.array(labels, bool), np.array(which))


def collect_bags(paths, cameras: tuple[str, ...] | None = None) -> LabelledFrames:
    """Frames of the transitions recorded in bags, labelled by how their episode ended."""
    from hilserl_ros import topics
    from hilserl_ros.recording.bag import read_messages
    from hilserl_ros.recording.types import shared_types

    types = shared_types()
    frames: dict[str, list] = {}
    labels, which = [], []
    episode_ids: dict[tuple, int] = {}

    def add(images, success: bool, key: tuple) -> None:
        named = {img.header.frame_id: img for img in images}
        wanted = cameras or tuple(sorted(named))
        if any(c not in named for c in wanted):
            return
        for c in wanted:
            img = named[c]
            frames.setdefault(c, []).append(np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.width, 3))
        labels.append(success)
        which.append(episode_ids.setdefault(key, len(episode_ids)))

    for message in read_messages(paths, topics=[topics.TRANSITIONS]):
        msg = types.deserialize(message.data, message.type_name)
        key = (message.topic, msg.actor_id, msg.session, msg.episode)
        if len(msg.images):
            add(msg.images, False, key)
        if msg.terminated and len(msg.next_images):
            add(msg.next_images, float(msg.reward) >= SUCCESS_REWARD_MIN, key)
    if not labels:
        raise ValueError(f"no transitions with camera frames in {list(paths)} (record with observation:=pixels)")
    return LabelledFrames({c: np.stack(v) for c, v in frames.items()}, np.array(labels, bool), np.array(which))


def split_episodes(data: LabelledFrames, held_out: float, seed: int = 0) -> tuple[LabelledFrames, LabelledFrames]:
    """Train / held-out by whole episodes (frames of one episode look alike)."""
    episodes = np.unique(data.episodes)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(episodes, max(1, int(round(held_out * len(episodes)))), replace=False).tolist())
    mask = np.array([e in held for e in data.episodes])
    return data.subset(~mask), data.subset(mask)


def train(data: LabelledFrames, held_out: float = 0.25, seed: int = 0, epochs: int = 200,
          weights: str | None = None) -> tuple[RewardClassifier, dict]:
    """Fit on some episodes, score on the others; returns the model and its scores."""
    training, held = split_episodes(data, held_out, seed) if held_out > 0 else (data, None)
    torch.manual_seed(seed)  # the head's initial weights too: same data and seed, same classifier
    model = from_policy_encoders(tuple(sorted(data.frames)), weights)
    report = {"train": model.fit(training, epochs=epochs, seed=seed)}
    if held is not None and len(held):
        report["held_out"] = scores(model.probability(held.frames), held.labels, model.threshold)
    model.info["scores"] = report
    return model, report


class ClassifierReward:
    """Wraps a pixel env (hilserl_ros.sim.env.make_env) so that reward and termination come from
    the classifier, as on the real arm: HIL-SERL's sparse ``success_reward`` when P(success) >=
    the threshold, else 0, and the episode ends there. ``info["success"]`` stays the simulator's
    (it still judges how well the policy does); ``info["classifier_p"]`` is the probability."""

    def __init__(self, env, model: RewardClassifier, success_reward: float = 1.0, threshold: float | None = None):
        self.env = env
        self.model = model
        self.success_reward = success_reward
        self.threshold = model.threshold if threshold is None else threshold
        self.false_successes = self.missed_successes = 0

    def __getattr__(self, name):  # action_space, will_intervene, unwrapped, close, ...
        return getattr(self.env, name)

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, _, _, _, info = self.env.step(action)
        p = float(self.model.probability({c: obs[c] for c in self.model.cameras})[0])
        success = p >= self.threshold
        self.false_successes += int(success and not info["success"])
        self.missed_successes += int(info["success"] and not success)
        inner = self.env.unwrapped
        truncated = not success and inner.steps >= inner.config.max_episode_steps
        info["classifier_p"] = p
        return obs, (self.success_reward if success else 0.0), success, truncated, info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train the reward classifier from bags or from simulation.")
    parser.add_argument("bags", nargs="*", help="rosbag2 directories (or folders of them) with pixel transitions")
    parser.add_argument("--sim-episodes", type=int, default=0, help="episodes of simulated frames instead of bags")
    parser.add_argument("--task", default="pick_cube")
    parser.add_argument("--held-out", type=float, default=0.25, help="share of episodes kept for precision/recall")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=DEFAULT_PATH)
    opts = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if opts.sim_episodes:
        data = collect_sim(opts.task, opts.sim_episodes, opts.seed)
        source = f"simulation: {opts.sim_episodes} episodes of {opts.task}, seed {opts.seed}"
    elif opts.bags:
        data = collect_bags(opts.bags)
        source = "bags: " + ", ".join(opts.bags)
    else:
        parser.error("give bags, or --sim-episodes N")
    print(f"[reward classifier] {len(data)} frames, {int(data.labels.sum())} success, "
          f"{len(np.unique(data.episodes))} episodes ({source})")
    model, report = train(data, opts.held_out, opts.seed, opts.epochs)
    model.save(opts.out, {"source": source})
    for part, s in report.items():
        print(f"[reward classifier] {part}: precision {s['precision']:.3f} recall {s['recall']:.3f} "
              f"accuracy {s['accuracy']:.3f} ({s['frames']} frames, {s['success_frames']} success)")
    print(f"[reward classifier] written {opts.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
