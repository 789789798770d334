"""Binary reward classifier: P(success) from the camera frames of one step (no ROS).

On the real arm nothing knows whether the cube is lifted. HIL-SERL trains a classifier on
frames labelled success / failure and uses it as the reward; so does this module.

Its camera encoder is the policy's (``DEFAULT_ENCODER`` of hilserl_ros.learning.config, an
ImageNet-pretrained backbone, ``efficientnet-lite0:stage4`` unless told otherwise), frozen:
features that owe nothing to the simulator's labels, so a user's real (or visually different)
cell needs no labelled frames other than its own success / failure ones, and the classifier
sees what the policy sees. Per camera a frame becomes a small descriptor of the backbone's map
that keeps its coarse layout (where in the picture the cube is matters for "lifted"):
the map averaged over its 2x2 quadrants and its spatial maximum, 5 values per channel
(:func:`map_descriptor`). Training is a small MLP on those cached descriptors (the backbone's
pass over the frames, about 10 ms a frame on one core, is most of it). The backbone is not in
the file (every process builds the same one from the installed package; the file's metadata
names it), so a file holds the head and its training features.

``--encoder so101`` keeps the older encoder: the policy's ConvEncoders trained on the simulated
cell's own labels (hilserl_ros/vision/weights, one per camera), which travel in the file. Files
written with it (and before backbones) load and judge as they did.

Files are safetensors with their settings as JSON metadata: nothing is unpickled when one is
loaded.

Labelled frames come from

- rosbag2 bags of the training graph (``make record-demos``, ``record:=true``): the frames of
  the last step of an episode that ended in success (the simulation's success, or the
  operator's success button on the real arm, which the task node turns into the success
  reward) are positives, every other step's frames are negatives;
- the ROS-free simulation (``--sim-episodes``), where the true success of every frame is known:
  the scripted operator demonstrates, and holds the success pose a few steps longer so a
  positive is not one frame per episode. Held-out episodes measure precision and recall.
  ``--cell N`` renders them in a visually different cell (hilserl_ros.sim.cells).

While training runs, the operator's vetoes teach it its false successes (:class:`VetoLearner`,
HIL-SERL's hard negatives): the training features are kept in the file for that.

``make train-reward-classifier ARGS="runs/demos_..."`` trains from bags;
``python -m hilserl_ros.learning.reward_classifier --sim-episodes 60`` from simulation.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import copy
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hilserl_ros.learning.config import DEFAULT_ENCODER, encoder_error
from hilserl_ros.learning.networks import ConvEncoder, shared_backbone

DEFAULT_PATH = os.path.join("runs", "reward_classifier.safetensors")
SUCCESS_REWARD_MIN = 0.5  # a terminal transition with at least this reward ended in success
DESCRIPTOR_PER_CHANNEL = 5  # 2x2 average pool (4) + spatial maximum (1): map_descriptor
# Regularisation of the head on backbone descriptors (thousands of values a frame set, a few
# hundred success frames): dropout on its input while it trains, and a stronger weight decay.
# Without them it overfits the training episodes and calls too few held-out successes (with
# stage7, recall as low as 0.04 on some episode splits). Measured on held-out splits of
# simulated pick_cube (3 splits, 2 data seeds): dropout 0.5 gave stage7 recall 0.88-0.94 (mean)
# at precision 0.84-0.91; 0.3 gave less recall (0.73-0.89). The so101 encoders' 256 features
# keep the old training (no dropout, weight decay 1e-4).
BACKBONE_INPUT_DROPOUT = 0.5
BACKBONE_WEIGHT_DECAY = 1e-2


def map_descriptor(maps: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] backbone maps -> [N, C * 5]: the mean of each 2x2 quadrant of the map (where
    in the picture a feature is: a cube up by the gripper vs. on the table) and its maximum over
    the whole map (whether it is anywhere, however small). Fixed, nothing to learn: a few
    hundred labelled frames train the head, not a spatial embedding of 80x8x8 values."""
    quadrants = F.adaptive_avg_pool2d(maps, 2).flatten(1)
    return torch.cat([quadrants, maps.amax(dim=(2, 3))], dim=1)


def classifier_encoder_error(value) -> str | None:
    """Why the reward classifier cannot use ``value`` as its camera encoder, or None."""
    if value == "scratch":
        # its encoders are frozen: random conv weights would never learn, and a few hundred
        # labelled frames are too few to train an encoder end to end anyway
        return ("'scratch' is no encoder for the reward classifier: it trains only a head on frozen "
                "features; use a pretrained backbone (e.g. " + DEFAULT_ENCODER + ") or so101")
    reason = encoder_error(value)
    return reason.replace(" (or so101, scratch)", " (or so101)") if reason else None


@dataclass
class LabelledFrames:
    """Frames per camera (uint8 [N, H, W, 3]), success labels [N] and the episode of each."""

    frames: dict[str, np.ndarray]
    labels: np.ndarray
    episodes: np.ndarray
    vetoed_episodes: int = 0  # bags: episodes whose claimed success the operator vetoed

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> "LabelledFrames":
        return LabelledFrames({k: v[mask] for k, v in self.frames.items()}, self.labels[mask], self.episodes[mask])


class RewardClassifier(nn.Module):
    """Frozen camera encoder -> concatenated features -> MLP -> success logit.

    ``backbone`` (a spec of hilserl_ros.vision.backbones.from_spec): one shared pretrained
    backbone for every camera, each frame's map reduced by :func:`map_descriptor`; it is not a
    submodule (not in the state dict, not in the file): :func:`shared_backbone` builds it once
    per process. Empty: one ConvEncoder of ``latent_dim`` features per camera (so101)."""

    def __init__(self, cameras: tuple[str, ...], image_size: int = 128, latent_dim: int = 256, hidden: int = 128,
                 backbone: str = ""):
        super().__init__()
        self.cameras = tuple(cameras)
        self.image_size = image_size
        self.backbone = backbone
        if backbone:
            # building it may draw random initial weights: keep the caller's seeded head the same
            # whether or not this process built the backbone before
            with torch.random.fork_rng():
                latent_dim = self._backbone().channels * DESCRIPTOR_PER_CHANNEL
        self.encoders = nn.ModuleDict({} if backbone else {c: ConvEncoder(image_size, latent_dim)
                                                            for c in self.cameras})
        self.head = nn.Sequential(nn.Linear(latent_dim * len(self.cameras), hidden), nn.LayerNorm(hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))
        for p in self.encoders.parameters():
            p.requires_grad_(False)
        self.threshold = 0.5
        self.info: dict = {}
        # (features [N, D], labels [N], sample weights [N]) the head was trained on, or None
        self.training_set: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _backbone(self):
        return shared_backbone(self.backbone, self.image_size)

    @torch.no_grad()
    def features(self, frames: dict[str, np.ndarray], batch: int = 128) -> torch.Tensor:
        """[N, latent * cameras] for uint8 frames [N, H, W, 3] per camera (latent: the
        ConvEncoder's width, or channels * 5 of the backbone's descriptor)."""
        n = len(next(iter(frames.values())))
        out = []
        for start in range(0, n, batch):
            chunks = []
            for c in self.cameras:
                chunk = frames[c][start:start + batch]
                if chunk.shape[1:] != (self.image_size, self.image_size, 3) or chunk.dtype != np.uint8:
                    raise ValueError(f"camera {c}: frames must be uint8 [N, {self.image_size}, {self.image_size}, 3], "
                                     f"got {chunk.dtype} {list(chunk.shape)}")
                chunks.append(torch.from_numpy(np.ascontiguousarray(chunk)).permute(0, 3, 1, 2))
            if self.backbone:
                # every camera in one call (one pass of the network's layers, not one per camera);
                # the backbone scales uint8 itself
                maps = self._backbone()(torch.cat(chunks))
                parts = list(map_descriptor(maps).split([len(x) for x in chunks]))
            else:
                parts = [self.encoders[c].eval()(x.float().div_(255.0)) for c, x in zip(self.cameras, chunks)]
            out.append(torch.cat(parts, dim=1))
        return torch.cat(out) if out else torch.zeros(0, self.head[0].in_features)

    def probability(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """P(success) per frame set; ``frames`` per camera, [N, H, W, 3] or one [H, W, 3]."""
        single = next(iter(frames.values())).ndim == 3
        if single:
            frames = {k: v[None] for k, v in frames.items()}
        p, _ = self.judge(frames)
        return p[0:1] if single else p

    @torch.no_grad()
    def judge(self, frames: dict[str, np.ndarray]) -> tuple[np.ndarray, torch.Tensor]:
        """(P(success), features) of frame sets [N, H, W, 3] per camera: the features are what a
        veto makes a hard negative of (:class:`VetoLearner`)."""
        missing = [c for c in self.cameras if c not in frames]
        if missing:
            raise ValueError(f"no frame of camera(s) {missing}")
        x = self.features(frames)
        return self.head_probability(x), x

    @torch.no_grad()
    def head_probability(self, features: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(self.head.eval()(features)).squeeze(1).numpy()

    def fit(self, data: LabelledFrames, epochs: int = 200, seed: int = 0, lr: float = 1e-3,
            batch_size: int = 256) -> dict:
        """Train the head on the frames' features (class-balanced); returns training accuracy.
        The features and labels are kept (and saved with the file): vetoes retrain on them."""
        if data.labels.sum() == 0 or data.labels.sum() == len(data):
            raise ValueError(f"need frames of both classes to train, got {int(data.labels.sum())} success of "
                             f"{len(data)}")
        torch.manual_seed(seed)
        x = self.features(data.frames)
        y = torch.from_numpy(data.labels.astype(np.float32))
        self.training_set = (x, y, torch.ones(len(y)))
        self.fit_features(epochs=epochs, seed=seed, lr=lr, batch_size=batch_size)
        return scores(self.head_probability(x), data.labels, self.threshold)

    def fit_features(self, epochs: int, seed: int = 0, lr: float = 1e-3, batch_size: int = 256,
                     head: nn.Module | None = None) -> nn.Module:
        """Train ``head`` (default: this model's) on the kept training features, class-balanced
        and weighted per sample (a hard negative weighs more than an ordinary failure). On a
        backbone's descriptors: input dropout and a stronger weight decay (BACKBONE_INPUT_DROPOUT)."""
        x, y, w = self.training_set
        head = self.head if head is None else head
        positives = float(y.sum())
        # success frames are rare (a few per episode): weigh them as much as the failures
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - positives) / positives), reduction="none")
        dropout, decay = (BACKBONE_INPUT_DROPOUT, BACKBONE_WEIGHT_DECAY) if self.backbone else (0.0, 1e-4)
        optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=decay)
        generator = torch.Generator().manual_seed(seed)
        head.train()
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), batch_size):
                idx = order[start:start + batch_size]
                # the dropout mask from the seeded generator: same data and seed, same head,
                # whatever else this process drew before
                keep = torch.rand(x[idx].shape, generator=generator) >= dropout if dropout else None
                inputs = x[idx] * keep / (1.0 - dropout) if dropout else x[idx]
                loss = (loss_fn(head(inputs).squeeze(1), y[idx]) * w[idx]).sum() / w[idx].sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return head.eval()

    # ------------------------------------------------------------------ files
    def save(self, path: str, info: dict | None = None) -> str:
        import safetensors.torch

        self.info = {**self.info, **(info or {})}
        meta = {"cameras": list(self.cameras), "image_size": self.image_size, "threshold": self.threshold,
                "latent_dim": self.head[0].in_features // len(self.cameras), "hidden": self.head[0].out_features,
                **self.info}
        if self.backbone:  # the loader rebuilds it from this spec (its weights are not in the file)
            meta["backbone"] = self.backbone
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        if self.training_set is not None:  # what a veto retrains on (float16: half the size, same verdicts)
            x, y, w = self.training_set
            tensors.update({"training.features": x.half().contiguous(), "training.labels": y.contiguous(),
                            "training.weights": w.contiguous()})
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # whole or not at all: a reader (the next session, a test) never sees a half-written file
        partial = f"{path}.{os.getpid()}.partial"
        try:
            safetensors.torch.save_file(tensors, partial, metadata={"hilserl_reward_classifier": json.dumps(meta)})
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
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
        backbone = meta.get("backbone", "")  # files of the so101 encoders have none
        if backbone and (reason := classifier_encoder_error(backbone)):
            raise ValueError(f"{path}: its backbone {backbone!r} cannot be built here: {reason}")
        model = cls(tuple(meta["cameras"]), meta["image_size"], meta["latent_dim"], meta["hidden"], backbone=backbone)
        if model.head[0].in_features != meta["latent_dim"] * len(model.cameras):
            raise ValueError(f"{path}: {meta['latent_dim']} features per camera, but backbone {backbone} gives "
                             f"{model.head[0].in_features // len(model.cameras)}")
        tensors = safetensors.torch.load_file(path)
        kept = [tensors.pop(f"training.{k}", None) for k in ("features", "labels", "weights")]
        model.load_state_dict(tensors)
        if all(t is not None for t in kept):
            model.training_set = (kept[0].float(), kept[1].float(), kept[2].float())
        model.threshold = float(meta.get("threshold", 0.5))
        model.info = {k: v for k, v in meta.items()
                      if k not in ("cameras", "image_size", "latent_dim", "hidden", "backbone")}
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


def from_backbone(cameras: tuple[str, ...], spec: str = DEFAULT_ENCODER, image_size: int = 128) -> RewardClassifier:
    """A classifier on the policy's pretrained backbone (``spec``), an untrained head."""
    reason = classifier_encoder_error(spec)
    if reason or spec == "so101":
        raise ValueError(f"encoder {spec!r}: {reason or 'not a backbone (from_policy_encoders)'}")
    model = RewardClassifier(tuple(cameras), image_size, backbone=spec)
    model.info["encoder"] = spec
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
                progress: bool = True, cell: int | None = None) -> LabelledFrames:
    """Frames of simulated episodes with their true success. The scripted operator
    demonstrates (and holds the success pose ``hold_steps`` steps longer); ``random_share`` of
    the episodes are random actions, so failures look like more than a good demonstration.
    ``cell``: the seed of a visual cell (hilserl_ros.sim.cells) to render instead of the shipped
    one: same physics, another look, as a user's own cell would have."""
    from tqdm import tqdm

    from hilserl_ros.sim.env import EnvConfig, make_env

    rng = np.random.default_rng(seed)
    config = None if cell is None else dataclasses.replace(EnvConfig.from_graph(task), cell=cell)
    demo = make_env(task, seed=seed, demonstrate=True, observation="pixels", config=config)
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


def collect_bags(paths, cameras: tuple[str, ...] | None = None, guard_steps: int = 0,
                 veto_window: float = 10.0) -> LabelledFrames:
    """Frames of the transitions recorded in bags, labelled by how their episode ended.

    - ``guard_steps``: the frames of the last ``guard_steps`` steps before a success are left
      out (neither class). An operator presses SUCCESS a moment after the cube is up, so those
      frames may show a success that was labelled a failure.
    - A veto recorded on /reward_classifier/veto within ``veto_window`` s after an episode ended
      with the success reward turns that episode's final frames into a failure: the classifier
      claimed that success and the operator said no (the hard negatives HIL-SERL collects)."""
    from hilserl_ros import topics
    from hilserl_ros.recording.bag import read_messages
    from hilserl_ros.recording.types import shared_types

    types = shared_types()
    episodes: dict[tuple, list] = {}  # key -> [(frames per camera, label, is_final)], in order
    ended: list[tuple[int, tuple]] = []  # (bag time, key) of the episodes that ended with the success reward
    vetoed: set[tuple] = set()

    def named(images) -> dict | None:
        found = {img.header.frame_id: img for img in images}
        wanted = cameras or tuple(sorted(found))
        if any(c not in found for c in wanted):
            return None
        return {c: np.frombuffer(bytes(found[c].data), np.uint8).reshape(found[c].height, found[c].width, 3)
                for c in wanted}

    for message in read_messages(paths, topics=[topics.TRANSITIONS, topics.REWARD_VETO]):
        msg = types.decode(message)
        if message.topic == topics.REWARD_VETO:
            # the last episode that ended in a success before the veto, if it ended recently
            if ended and message.timestamp_ns - ended[-1][0] <= veto_window * 1e9:
                vetoed.add(ended[-1][1])
            continue
        key = (message.topic, msg.actor_id, msg.session, msg.episode)
        steps = episodes.setdefault(key, [])
        if len(msg.images) and (frames := named(msg.images)) is not None:
            steps.append((frames, False, False))
        if msg.terminated and len(msg.next_images) and (frames := named(msg.next_images)) is not None:
            success = float(msg.reward) >= SUCCESS_REWARD_MIN
            steps.append((frames, success, True))
            if success:
                ended.append((message.timestamp_ns, key))

    frames_out: dict[str, list] = {}
    labels, which = [], []
    for number, (key, steps) in enumerate(episodes.items()):
        success = bool(steps) and steps[-1][2] and steps[-1][1] and key not in vetoed
        for index, (frames, label, final) in enumerate(steps):
            if success and not final and index >= len(steps) - 1 - guard_steps:
                continue  # just before the success button: may already show the success
            for c, frame in frames.items():
                frames_out.setdefault(c, []).append(frame)
            labels.append(label and key not in vetoed)
            which.append(number)
    if not labels:
        raise ValueError(f"no transitions with camera frames in {list(paths)} (record with observation:=pixels)")
    return LabelledFrames({c: np.stack(v) for c, v in frames_out.items()}, np.array(labels, bool), np.array(which),
                          len(vetoed))


def split_episodes(data: LabelledFrames, held_out: float, seed: int = 0) -> tuple[LabelledFrames, LabelledFrames]:
    """Train / held-out by whole episodes (frames of one episode look alike)."""
    episodes = np.unique(data.episodes)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(episodes, max(1, int(round(held_out * len(episodes)))), replace=False).tolist())
    mask = np.array([e in held for e in data.episodes])
    return data.subset(~mask), data.subset(mask)


def train(data: LabelledFrames, held_out: float = 0.25, seed: int = 0, epochs: int = 200,
          weights: str | None = None, encoder: str = DEFAULT_ENCODER) -> tuple[RewardClassifier, dict]:
    """Fit on some episodes, score on the others; returns the model and its scores.
    ``encoder``: the policy's backbone spec (default), or ``so101`` for its ConvEncoders
    (``weights``: another file of them)."""
    reason = classifier_encoder_error(encoder)
    if reason:
        raise ValueError(f"encoder {encoder!r}: {reason}")
    training, held = split_episodes(data, held_out, seed) if held_out > 0 else (data, None)
    torch.manual_seed(seed)  # the head's initial weights too: same data and seed, same classifier
    cameras = tuple(sorted(data.frames))
    if encoder == "so101":
        model = from_policy_encoders(cameras, weights)
    else:
        model = from_backbone(cameras, encoder, int(data.frames[cameras[0]].shape[1]))
    report = {"train": model.fit(training, epochs=epochs, seed=seed)}
    if held is not None and len(held):
        report["held_out"] = scores(model.probability(held.frames), held.labels, model.threshold)
    model.info["scores"] = report
    return model, report


class VetoLearner:
    """HIL-SERL's hard negatives, learnt as they happen: the operator vetoes a success the
    classifier claimed (FAILURE right after it, on the real arm; the scripted operator in
    simulation). The vetoed frame and the ``frames_per_veto - 1`` frames judged just before it
    were not successes either: their features join the training features as failures, each
    weighing ``weight`` ordinary ones, and the head is retrained from where it stands until it
    calls all of them failures (``epochs`` passes a round, at most ``rounds`` rounds).

    Features only: the encoders stay frozen, so a retrain is a small MLP on cached vectors
    (a fraction of a second). :meth:`remember` keeps the features of the recent judgements,
    keyed by a stamp; :meth:`veto` takes the stamp of the vetoed one."""

    def __init__(self, model: RewardClassifier, frames_per_veto: int = 5, weight: float = 5.0, epochs: int = 10,
                 rounds: int = 5, memory: int = 200, seed: int = 0):
        if model.training_set is None:
            raise ValueError("this classifier file has no training features (written before vetoes could "
                             "retrain it): train it again with make train-reward-classifier")
        if frames_per_veto < 1 or weight <= 0 or epochs < 1 or rounds < 1:
            raise ValueError("frames_per_veto, epochs and rounds must be at least 1, weight positive")
        self.model = model
        self.frames_per_veto, self.weight, self.epochs, self.rounds, self.seed = (frames_per_veto, weight, epochs,
                                                                                  rounds, seed)
        self.recent: deque[tuple[float, torch.Tensor]] = deque(maxlen=memory)
        self.vetoes = self.hard_negatives = 0

    def remember(self, stamp: float, features: torch.Tensor) -> None:
        self.recent.append((float(stamp), features.reshape(-1).detach().clone()))

    def veto(self, stamp: float, threshold: float | None = None,
             persist: Callable[[RewardClassifier], object] | None = None) -> dict:
        """The judgement at ``stamp`` was not a success: learn it. Returns what was done.

        ``persist`` (e.g. saving the file) is called with the retrained model before the counts
        :attr:`vetoes` and :attr:`hard_negatives` change, so whoever announces those counts
        announces a model that is already kept. If it raises, the counts stay."""
        threshold = self.model.threshold if threshold is None else threshold
        before = [f for s, f in list(self.recent) if s <= stamp + 1e-6][-self.frames_per_veto:]
        if not before:
            return {"added": 0, "hard_negatives": self.hard_negatives, "reason": "no remembered frame at that stamp"}
        start = time.monotonic()
        hard = torch.stack(before)
        x, y, w = self.model.training_set
        self.model.training_set = (torch.cat([x, hard]), torch.cat([y, torch.zeros(len(hard))]),
                                   torch.cat([w, torch.full((len(hard),), self.weight)]))
        p_before = float(self.model.head_probability(hard).max())
        head = copy.deepcopy(self.model.head)  # the model keeps judging with the old head meanwhile
        for round_ in range(self.rounds):
            self.model.fit_features(self.epochs, seed=self.seed + self.vetoes * self.rounds + round_, head=head)
            with torch.no_grad():
                p_after = float(torch.sigmoid(head(hard)).max())
            if p_after < threshold:
                break
        self.model.head = head
        self.model.info["hard_negatives"] = self.model.info.get("hard_negatives", 0) + len(hard)
        self.model.info["vetoes"] = self.model.info.get("vetoes", 0) + 1
        if persist is not None:
            persist(self.model)
        self.vetoes += 1
        self.hard_negatives += len(hard)
        return {"added": len(hard), "hard_negatives": self.hard_negatives, "p_before": p_before,
                "p_after": p_after, "seconds": time.monotonic() - start}


class ClassifierReward:
    """Wraps a pixel env (hilserl_ros.sim.env.make_env) so that reward and termination come from
    the classifier, as on the real arm: HIL-SERL's sparse ``success_reward`` when P(success) >=
    the threshold, else 0, and the episode ends there. ``info["success"]`` stays the simulator's
    (it still judges how well the policy does); ``info["classifier_p"]`` is the probability.

    ``vetoes``: the scripted operator watches, and vetoes a success the simulator does not see
    (the real arm's FAILURE button right after the classifier ended an episode), and the
    classifier learns the vetoed frames as hard negatives (:class:`VetoLearner`). As on the
    real arm, the veto comes after the step: its transition keeps the classifier's reward.
    ``veto_share``: the share of those it notices (a person misses some), drawn with ``seed``."""

    def __init__(self, env, model: RewardClassifier, success_reward: float = 1.0, threshold: float | None = None,
                 vetoes: VetoLearner | None = None, log=None, veto_share: float = 1.0, seed: int = 0):
        self.env = env
        self.model = model
        self.success_reward = success_reward
        self.threshold = model.threshold if threshold is None else threshold
        self.vetoes = vetoes
        self.log = log
        self.veto_share = veto_share
        self.notices = np.random.default_rng(seed + 7919)
        self.judged = 0
        self.false_successes = self.missed_successes = 0
        self.veto_steps: list[int] = []  # the step (count of judgements) of each veto

    def __getattr__(self, name):  # action_space, will_intervene, unwrapped, close, ...
        return getattr(self.env, name)

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, _, _, _, info = self.env.step(action)
        probability, features = self.model.judge({c: obs[c][None] for c in self.model.cameras})
        p = float(probability[0])
        self.judged += 1
        if self.vetoes is not None:
            self.vetoes.remember(self.judged, features[0])
        success = p >= self.threshold
        self.false_successes += int(success and not info["success"])
        self.missed_successes += int(info["success"] and not success)
        if success and not info["success"] and self.vetoes is not None and self.notices.random() < self.veto_share:
            done = self.vetoes.veto(self.judged, self.threshold)
            self.veto_steps.append(self.judged)
            info["veto"] = done
            if self.log is not None:
                self.log(f"operator veto of the classifier's success (p={p:.2f}): {done['added']} frames are hard "
                         f"negatives ({done['hard_negatives']} in all); p on them now {done['p_after']:.2f}, "
                         f"retrained in {done['seconds']:.2f} s")
        inner = self.env.unwrapped
        truncated = not success and inner.steps >= inner.config.max_episode_steps
        info["classifier_p"] = p
        return obs, (self.success_reward if success else 0.0), success, truncated, info

    def stats(self) -> dict:
        return {"false_successes": self.false_successes, "missed_successes": self.missed_successes,
                "vetoes": self.vetoes.vetoes if self.vetoes else 0,
                "hard_negatives": self.vetoes.hard_negatives if self.vetoes else 0, "veto_steps": self.veto_steps}


def _encoder_arg(value: str) -> str:
    reason = classifier_encoder_error(value)
    if reason:
        raise argparse.ArgumentTypeError(reason)
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train the reward classifier from bags or from simulation.")
    parser.add_argument("bags", nargs="*", help="rosbag2 directories (or folders of them) with pixel transitions")
    parser.add_argument("--sim-episodes", type=int, default=0, help="episodes of simulated frames instead of bags")
    parser.add_argument("--task", default="pick_cube")
    parser.add_argument("--guard-steps", type=int, default=5, help="bags: leave out the frames of this many steps "
                        "before a success (the operator presses SUCCESS a moment after the fact)")
    parser.add_argument("--held-out", type=float, default=0.25, help="share of episodes kept for precision/recall")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, type=_encoder_arg,
                        help=f"camera encoder: the policy's backbone (efficientnet-lite0:<cut> | resnet10:<path>; "
                        f"default {DEFAULT_ENCODER}) or so101 (ConvEncoders trained on the simulated cell's labels)")
    parser.add_argument("--weights", default=None, help="--encoder so101: another file of its encoders")
    parser.add_argument("--cell", type=int, default=None, help="--sim-episodes: render the visual cell of this seed "
                        "(hilserl_ros.sim.cells) instead of the shipped one")
    parser.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)), help="torch threads")
    parser.add_argument("--out", default=DEFAULT_PATH)
    opts = parser.parse_args(argv)
    torch.set_num_threads(max(1, opts.threads))
    if opts.cell is not None and not opts.sim_episodes:
        parser.error("--cell is for --sim-episodes (bags have the frames their cameras saw)")
    start = time.monotonic()
    if opts.sim_episodes:
        data = collect_sim(opts.task, opts.sim_episodes, opts.seed, cell=opts.cell)
        source = (f"simulation: {opts.sim_episodes} episodes of {opts.task}, seed {opts.seed}"
                  + ("" if opts.cell is None else f", cell {opts.cell}"))
    elif opts.bags:
        data = collect_bags(opts.bags, guard_steps=opts.guard_steps)
        source = "bags: " + ", ".join(opts.bags)
        if data.vetoed_episodes:
            print(f"[reward classifier] {data.vetoed_episodes} episode(s) the classifier ended were vetoed by the "
                  f"operator: their final frames are failures")
    else:
        parser.error("give bags, or --sim-episodes N")
    print(f"[reward classifier] {len(data)} frames, {int(data.labels.sum())} success, "
          f"{len(np.unique(data.episodes))} episodes ({source})")
    collected = time.monotonic()
    model, report = train(data, opts.held_out, opts.seed, opts.epochs, weights=opts.weights, encoder=opts.encoder)
    trained = time.monotonic()
    model.save(opts.out, {"source": source})
    for part, s in report.items():
        print(f"[reward classifier] {part}: precision {s['precision']:.3f} recall {s['recall']:.3f} "
              f"accuracy {s['accuracy']:.3f} ({s['frames']} frames, {s['success_frames']} success)")
    print(f"[reward classifier] encoder {opts.encoder}: {model.head[0].in_features} features; frames in "
          f"{collected - start:.1f} s, trained in {trained - collected:.1f} s")
    print(f"[reward classifier] written {opts.out} ({os.path.getsize(opts.out) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
