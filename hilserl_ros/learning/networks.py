"""Networks of the agent: observation encoders, the tanh-Gaussian actor, the critic ensemble
(one batched matmul for all critics) and the discrete grasp critic."""
from __future__ import annotations

import copy
import hashlib
import math
import threading
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hilserl_ros.learning.config import SACConfig


def mlp(in_dim: int, hidden: tuple[int, ...], layer_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        in_dim = width
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- encoders
def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ augmentation: replicate-pad by ``pad`` pixels, crop back at a random integer offset
    per image. ``images`` is [B, C, H, W]; the result has the same shape and dtype."""
    if pad <= 0:
        return images
    b, c, h, w = images.shape
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate").to(images.dtype)
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=images.device)
    rows = (offsets[0, :, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


class ConvEncoder(nn.Module):
    """Small conv net for one 128x128 RGB camera: 4 stride-2 convs, then a learned spatial
    embedding (HIL-SERL's SpatialLearnedEmbeddings idea) projected to ``latent_dim``."""

    def __init__(self, image_size: int = 128, latent_dim: int = 256, channels: int = 32, num_features: int = 8):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        )
        side = image_size
        for _ in range(4):
            side = (side + 1) // 2
        # one learned spatial kernel per (channel, feature): sum over H, W
        self.spatial = nn.Parameter(torch.randn(channels, side, side, num_features) * (1.0 / side))
        self.project = nn.Sequential(nn.Linear(channels * num_features, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # channels-last runs the CPU (oneDNN) convolutions about twice as fast
        x = self.convs(images.contiguous(memory_format=torch.channels_last))  # [B, C, h, w]
        x = torch.einsum("bchw,chwf->bcf", x, self.spatial).flatten(1)
        return self.project(x)


class SpatialLearnedEmbeddings(nn.Module):
    """HIL-SERL's spatial embedding of a feature map: ``num_features`` learned kernels per channel,
    each the size of the map, summed over it: [B, C, H, W] -> [B, C * num_features]. Where a
    thing is in the picture becomes a weighted sum the critic learns, on this cell's own data."""

    def __init__(self, channels: int, height: int, width: int, num_features: int = 8):
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height, width, num_features))
        nn.init.kaiming_normal_(self.kernel, mode="fan_in", nonlinearity="linear")

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,chwf->bcf", maps, self.kernel).flatten(1)


class SpatialSoftmax(nn.Module):
    """Keypoints of a feature map (Levine et al. 2016): a 1x1 convolution to ``keypoints``
    channels, a softmax over the map per channel, and its expected image coordinates in
    [-1, 1]: where something is, as two numbers, at finer than the map's resolution."""

    def __init__(self, channels: int, side: int, keypoints: int):
        super().__init__()
        self.project = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        grid = torch.linspace(-1.0, 1.0, side)
        ys, xs = torch.meshgrid(grid, grid, indexing="ij")
        self.register_buffer("coords", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        logits = self.project(maps).flatten(2) / self.log_temperature.exp()  # [B, K, HW]
        return (logits.softmax(-1) @ self.coords).flatten(1)  # [B, 2K]


class Dropout(nn.Module):
    """Inverted dropout that draws its mask from 16-bit slices of 64-bit random integers.

    The same regularisation as ``nn.Dropout`` (``p`` rounded to a multiple of 1/65536), at a
    quarter of its cost on a CPU: torch's per-element Bernoulli draws were a third of the image
    head's forward pass in training (3.1 ms against 0.7 ms for a [256, 2560] batch). Draws from
    torch's default generator, as ``nn.Dropout`` does, so a seeded run is repeatable."""

    def __init__(self, p: float = 0.1):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), not {p}")
        self.p = p
        self.cut = int(round(p * 65536)) - 32768  # int16 draws below this are dropped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        words = (x.numel() + 3) // 4
        draws = torch.randint(-2**63, 2**63 - 1, (words,), dtype=torch.int64, device=x.device)
        keep = draws.view(torch.int16)[:x.numel()].view(x.shape) >= self.cut
        return x * keep / (1.0 - (self.cut + 32768) / 65536)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SpatialHead(nn.Module):
    """A backbone's feature map -> ``latent_dim`` features: spatial embeddings (and, with
    ``keypoints``, spatial-softmax keypoints beside them), dropout, a linear bottleneck,
    LayerNorm and tanh (HIL-SERL/LeRobot's image head). Trained by the critic."""

    def __init__(self, channels: int, side: int, latent_dim: int = 256, num_features: int = 8, dropout: float = 0.1,
                 keypoints: int = 0):
        super().__init__()
        self.spatial = SpatialLearnedEmbeddings(channels, side, side, num_features)
        self.keypoints = SpatialSoftmax(channels, side, keypoints) if keypoints else None
        self.project = nn.Sequential(Dropout(dropout), nn.Linear(channels * num_features + 2 * keypoints, latent_dim),
                                     nn.LayerNorm(latent_dim), nn.Tanh())

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        x = self.spatial(maps)
        if self.keypoints is not None:
            x = torch.cat([x, self.keypoints(maps)], dim=1)
        return self.project(x)


_BACKBONES: dict = {}
_BACKBONES_LOCK = threading.Lock()


def shared_backbone(spec: str, image_size: int, device: str = "cpu"):
    """The frozen backbone named by ``spec`` (hilserl_ros.vision.backbones.from_spec), built once
    per process and device: the actor, the learner's encoders and its target share one copy."""
    key = (spec, int(image_size), str(device))
    with _BACKBONES_LOCK:
        if key not in _BACKBONES:
            from hilserl_ros.vision.backbones import from_spec
            # building draws random initial weights (then overwritten by the pretrained ones):
            # outside the caller's random stream, so a seeded agent is the same whether or not
            # this process built the backbone before
            with torch.random.fork_rng(devices=[]):
                _BACKBONES[key] = from_spec(spec, image_size).to(device)
        return _BACKBONES[key]


class ObservationEncoder(nn.Module):
    """State (raw, or through a small MLP when ``state_latent_dim`` > 0) + one image encoder per
    camera. uint8 images in [0, 255] are scaled to [0, 1] here, so buffers and messages keep
    uint8.

    Two kinds of image encoder:
    - ``config.backbone`` set (e.g. ``efficientnet-lite0:stage4``): a pretrained backbone shared
      by every camera, then one :class:`SpatialHead` per camera. With ``freeze_encoder`` the
      backbone is not a parameter of this module (not trained, not in its state dict, not sent
      to actors: each process builds it from the same package) and its feature maps are what
      the buffers cache (``camera_features``, float16); the heads are trained on them.
      Without, the backbone is a trainable part of the encoder (end-to-end fine-tuning).
    - no backbone: one :class:`ConvEncoder` per camera (the SO-101 encoder of
      hilserl_ros.vision.pretrain, or trained from scratch); frozen, its output is cached.
    """

    MEMO_FRAMES = 8

    def __init__(self, config: SACConfig, device: str = "cpu"):
        super().__init__()
        self.image_keys = config.image_keys
        self.backbone_spec = config.backbone if config.image_keys else ""
        self.device_name, self.image_size = str(device), config.image_size
        self.trainable_backbone = None
        self.map_shape: tuple[int, int, int] | None = None
        if self.backbone_spec:
            backbone = shared_backbone(self.backbone_spec, config.image_size, self.device_name)
            side = backbone.map_size(config.image_size)
            self.map_shape = (backbone.channels, side, side)
            if not config.freeze_encoder:
                self.trainable_backbone = copy.deepcopy(backbone).unfrozen()
            self.cameras = nn.ModuleDict({k: SpatialHead(backbone.channels, side, config.latent_dim,
                                                         config.spatial_features, config.head_dropout,
                                                         config.spatial_keypoints)
                                          for k in config.image_keys})
        else:
            self.cameras = nn.ModuleDict({k: ConvEncoder(config.image_size, config.latent_dim)
                                          for k in config.image_keys})
        self.state = None
        state_dim = config.obs_dim
        if config.state_latent_dim > 0 and config.obs_dim > 0:
            self.state = nn.Sequential(nn.Linear(config.obs_dim, config.state_latent_dim),
                                       nn.LayerNorm(config.state_latent_dim), nn.Tanh())
            state_dim = config.state_latent_dim
        self.out_dim = state_dim + config.latent_dim * len(config.image_keys)
        self.latent_dim = config.latent_dim
        self._memo: OrderedDict = OrderedDict()  # camera_features of the last frames seen
        self._memo_lock = threading.Lock()

    def __deepcopy__(self, memo):
        # a copy (the target encoder) gets its own memo and lock; a lock cannot be copied
        copied = nn.Module.__new__(type(self))
        memo[id(self)] = copied
        for name, value in self.__dict__.items():
            if name not in ("_memo", "_memo_lock"):
                copied.__dict__[name] = copy.deepcopy(value, memo)
        copied._memo, copied._memo_lock = OrderedDict(), threading.Lock()
        return copied

    @property
    def is_identity(self) -> bool:
        return self.state is None and not self.image_keys

    # -- what the buffers cache per frame ----------------------------------------------------
    @property
    def cache_dim(self) -> int:
        """Values cached per frame and camera: the backbone's map, or the ConvEncoder's features."""
        return int(np.prod(self.map_shape)) if self.map_shape else self.latent_dim

    @property
    def cache_dtype(self):
        """float16 for maps (half the memory; the head computes in float32), float32 otherwise."""
        return np.float16 if self.map_shape else np.float32

    def _backbone(self):
        if self.trainable_backbone is not None:
            return self.trainable_backbone
        return shared_backbone(self.backbone_spec, self.image_size, self.device_name)

    def _maps(self, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The backbone's maps of each camera's frames, all cameras in one call."""
        keys = list(self.image_keys)
        frames = torch.cat([images[k] for k in keys])
        maps = self._backbone()(frames)
        return dict(zip(keys, maps.split([images[k].shape[0] for k in keys])))

    def forward(self, state: torch.Tensor, images: dict[str, torch.Tensor] | None = None,
                features: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``features``: per camera, what ``camera_features`` cached for these frames (frozen
        encoder), used instead of running it again."""
        if self.state is not None:
            state = self.state(state)
        if not self.image_keys:
            return state
        parts = [state] if state.shape[-1] else []
        if self.map_shape is not None:
            if features is not None:
                maps = {k: features[k].float().view(-1, *self.map_shape) for k in self.image_keys}
            else:
                maps = self._maps(images)
            parts += [self.cameras[k](maps[k]) for k in self.image_keys]
            return torch.cat(parts, dim=-1)
        for key in self.image_keys:
            if features is not None:
                parts.append(features[key])
                continue
            img = images[key].float().div_(255.0) if images[key].dtype == torch.uint8 else images[key]
            parts.append(self.cameras[key](img))
        return torch.cat(parts, dim=-1)

    @torch.no_grad()
    def camera_features(self, images: dict) -> dict:
        """Per camera, what the buffer caches for one uint8 [H, W, 3] frame (numpy): the frozen
        backbone's map (float16, flattened) or the frozen ConvEncoder's output (float32).

        The last few results are remembered by the frames' bytes: one frame is asked for up to
        three times (the action taken on it, the transition that ends on it, the demonstration
        buffer when the operator acted), and the backbone is most of a step's time on a CPU."""
        digests = {k: hashlib.blake2b(np.ascontiguousarray(images[k]).data, digest_size=16).digest()
                   for k in self.image_keys}
        key = tuple(digests[k] for k in self.image_keys)
        with self._memo_lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return dict(self._memo[key])
        frames = {k: torch.as_tensor(images[k]).permute(2, 0, 1).unsqueeze(0).to(self.device_name)
                  for k in self.image_keys}
        if self.map_shape is not None:
            out = {k: v.reshape(-1).to(torch.float16).cpu().numpy() for k, v in self._maps(frames).items()}
        else:
            out = {k: self.cameras[k](frames[k].float().div_(255.0))[0].cpu().numpy() for k in self.image_keys}
        for value in out.values():
            value.flags.writeable = False  # shared by whoever asks for the same frame again
        with self._memo_lock:
            self._memo[key] = out
            while len(self._memo) > self.MEMO_FRAMES:
                self._memo.popitem(last=False)
        return dict(out)


# --------------------------------------------------------------------------- actor
class TanhGaussianActor(nn.Module):
    def __init__(self, in_dim: int, action_dim: int, config: SACConfig):
        super().__init__()
        self.trunk = mlp(in_dim, config.hidden_dims, config.layer_norm)
        width = config.hidden_dims[-1] if config.hidden_dims else in_dim
        self.mean = nn.Linear(width, action_dim)
        self.log_std = nn.Linear(width, action_dim)
        self.log_std_min, self.log_std_max = config.log_std_min, config.log_std_max

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(features)
        log_std = torch.tanh(self.log_std(h))
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1.0)
        return self.mean(h), log_std

    def forward(self, features: torch.Tensor, deterministic: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Action in [-1, 1] and its log-probability (tanh-corrected)."""
        mean, log_std = self.distribution(features)
        std = log_std.exp()
        if deterministic:
            pre = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            pre = mean + std * noise
        action = torch.tanh(pre)
        # log N(pre; mean, std) - sum log(1 - tanh(pre)^2), the latter in a stable form
        gauss = -0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        correction = 2.0 * (math.log(2.0) - pre - F.softplus(-2.0 * pre))
        return action, (gauss - correction).sum(-1)


# --------------------------------------------------------------------------- critics
class EnsembleLinear(nn.Module):
    """``n`` independent linear layers evaluated as one batched matmul."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [n, B, in] or [B, in]
        if x.dim() == 2:
            return torch.baddbmm(self.bias, x.unsqueeze(0).expand(self.weight.shape[0], -1, -1), self.weight)
        return torch.baddbmm(self.bias, x, self.weight)


class CriticEnsemble(nn.Module):
    """``num_critics`` Q(s, a) networks with separate weights and heads; output [n, B]."""

    def __init__(self, in_dim: int, action_dim: int, config: SACConfig):
        super().__init__()
        n = config.num_critics
        layers: list[nn.Module] = []
        width = in_dim + action_dim
        for hidden in config.hidden_dims:
            layers.append(EnsembleLinear(n, width, hidden))
            if config.layer_norm:
                layers.append(nn.LayerNorm(hidden))  # normalises each critic's features on its own
            layers.append(nn.ReLU())
            width = hidden
        layers.append(EnsembleLinear(n, width, 1))
        self.net = nn.Sequential(*layers)
        self.num_critics = n

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, action], dim=-1)).squeeze(-1)


class GraspCritic(nn.Module):
    """Discrete Q(s, g) for the gripper, g in {close, stay, open} (DQN-style)."""

    CLOSE, STAY, OPEN = 0, 1, 2
    VALUES = (-1.0, 0.0, 1.0)  # normalised gripper command of each discrete action

    def __init__(self, in_dim: int, config: SACConfig):
        super().__init__()
        self.trunk = mlp(in_dim, config.hidden_dims, config.layer_norm)
        self.head = nn.Linear(config.hidden_dims[-1] if config.hidden_dims else in_dim, 3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(features))

    @staticmethod
    def discretise(gripper: torch.Tensor) -> torch.Tensor:
        """Continuous gripper command in [-1, 1] -> discrete action index."""
        index = torch.full_like(gripper, GraspCritic.STAY, dtype=torch.long)
        index[gripper < -0.5] = GraspCritic.CLOSE
        index[gripper > 0.5] = GraspCritic.OPEN
        return index

    @staticmethod
    def to_command(index: torch.Tensor) -> torch.Tensor:
        return torch.tensor(GraspCritic.VALUES, dtype=torch.float32, device=index.device)[index]
