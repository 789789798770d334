"""SAC configuration, with every default next to the reference values it was chosen from.

| knob | default here | original HIL-SERL (serl_launcher) | LeRobot SAC |
| --- | --- | --- | --- |
| target_entropy (unset) | -action_dim/2 | -action_dim/2 | -action_dim/2 (+1 dim for discrete gripper) |
| temperature_init | 1e-2 | 1e-2 in task launchers (class default 1.0) | 1.0 (examples 1e-2) |
| discount | 0.97 | 0.97 (0.95-0.985 per task) | 0.99 (examples 0.97) |
| use_backup_entropy | False | False | True |
| num_critics / target subsample | 2 / all | 2 (min over ensemble) | 2 |
| hidden_dims, LayerNorm | (256, 256), yes | 256x256 LayerNorm MLP | 256x256 MLP |
| tau | 0.005 | 0.005 | 0.005 |
| actor/critic/temperature lr | 3e-4 | 3e-4 | 3e-4 |
| batch_size / utd_ratio | 256 / 2 | 256 / critic-to-actor 2 | 256 / 2 (examples) |
| grasp critic | off (3 actions, penalty -0.02) | DQN, 3 actions, -0.02 | discrete critic, 3 actions |
| images | 128x128, random shift pad 4 | 128x128, ResNet-10 frozen, crop pad 4 | small conv net |

action_dim counts every action dimension a transition carries (EE x, y, z and gripper = 4),
so the field report's -2.0 is the default for the SO-101. With the grasp critic on, the last
dimension is the gripper and is chosen by the discrete critic; the actor outputs the rest.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass
class SACConfig:
    obs_dim: int
    action_dim: int
    image_keys: tuple[str, ...] = ()  # camera names; empty = state observations only
    image_size: int = 128  # square side of each camera image (pixels)
    hidden_dims: tuple[int, ...] = (256, 256)
    layer_norm: bool = True  # LayerNorm in critic (and actor) MLPs, as HIL-SERL
    num_critics: int = 2
    num_target_critics: int | None = None  # random subset used for the target min; None = all
    discount: float = 0.97
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    temperature_init: float = 1e-2
    target_entropy: float | None = None  # None -> -action_dim / 2
    use_backup_entropy: bool = False
    utd_ratio: int = 2  # critic updates per actor update
    batch_size: int = 256
    grad_clip_norm: float = 10.0  # 0 disables clipping
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    grasp_critic: bool = False
    grasp_penalty: float = -0.02  # reward added when the gripper changes (close or open)
    latent_dim: int = 256  # width of the image features per camera
    state_latent_dim: int = 0  # >0: encode the state with Linear+LayerNorm+Tanh to this width (LeRobot); 0: raw
    image_pad: int = 4  # random-shift augmentation padding (pixels); 0 disables
    pretrained_encoder: str | None = None  # local safetensors file with conv encoder weights (no backbone)
    # pretrained backbone + a spatial head per camera (hilserl_ros.vision.backbones.from_spec):
    # "efficientnet-lite0:<cut>" or "resnet10:<path>"; "" = one ConvEncoder per camera
    backbone: str = ""
    spatial_features: int = 8  # learned spatial kernels per channel of the backbone's map (HIL-SERL: 8)
    head_dropout: float = 0.1  # dropout of the spatial embedding before its projection (HIL-SERL: 0.1)
    spatial_keypoints: int = 0  # >0: that many spatial-softmax keypoints beside the embeddings
    freeze_encoder: bool = False
    seed: int = 0

    def __post_init__(self):
        self.image_keys = tuple(self.image_keys)
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.target_entropy is None:
            self.target_entropy = -self.action_dim / 2.0
        check_positive_int("obs_dim", self.obs_dim, allow_zero=bool(self.image_keys))
        check_positive_int("action_dim", self.action_dim)
        if self.grasp_critic and self.action_dim < 2:
            raise ValueError("grasp_critic needs action_dim >= 2 (continuous dims + gripper)")
        check_positive_int("num_critics", self.num_critics)
        if self.num_target_critics is not None and not 1 <= self.num_target_critics <= self.num_critics:
            raise ValueError(f"num_target_critics must be in [1, num_critics={self.num_critics}]")
        validate("discount", self.discount)
        validate("tau", self.tau)
        for name in ("actor_lr", "critic_lr", "temperature_lr"):
            validate("learning_rate", getattr(self, name), name)
        validate("temperature", self.temperature_init, "temperature_init")
        validate("target_entropy", self.target_entropy)
        validate("utd_ratio", self.utd_ratio)
        validate("batch_size", self.batch_size)
        check_positive_int("spatial_features", self.spatial_features)
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout}")

    @property
    def continuous_dim(self) -> int:
        """Dimensions the Gaussian actor outputs."""
        return self.action_dim - 1 if self.grasp_critic else self.action_dim

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "SACConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown SACConfig fields: {sorted(unknown)}")
        return cls(**data)


def check_positive_int(name: str, value, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")


# Valid ranges of the live knobs: (low, high, inclusive-low, inclusive-high). The ROS
# parameter descriptors of the learner are built from the same table.
KNOB_RANGES: dict[str, tuple[float, float]] = {
    "target_entropy": (-100.0, 100.0),
    "temperature": (1e-8, 100.0),
    "learning_rate": (1e-7, 1.0),
    "discount": (0.0, 0.9999),
    "tau": (1e-5, 1.0),
    "utd_ratio": (1, 64),
    "batch_size": (2, 65536),
}


def validate(knob: str, value, name: str | None = None) -> float:
    """Return ``value`` if it is a finite number in the knob's range, else raise ValueError."""
    name = name or knob
    low, high = KNOB_RANGES[knob]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if knob in ("utd_ratio", "batch_size") and int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value:g}")
    return value


ENCODERS_HELP = "efficientnet-lite0:<cut> | resnet10:<path> | so101 | scratch"
# the camera encoder of config/learner.yaml and of the reward classifier: chosen by
# make bench-learning ARGS="--observation pixels --cells 3" (bench/results/learning_cells.json)
DEFAULT_ENCODER = "efficientnet-lite0:stage7"


def camera_encoder_config(spec, encoder: str, pretrained_encoder: str = "", freeze_encoder: bool = True) -> dict:
    """SACConfig fields of an observation with cameras, for the learner's ``encoder`` parameter:
    - a backbone (``efficientnet-lite0:<cut>``, ``resnet10:<path>``): pretrained ImageNet
      features, a spatial head per camera trained by the critic; frozen (maps cached) unless
      ``freeze_encoder`` is false (end-to-end fine-tuning, for a GPU);
    - ``so101``: the ConvEncoder trained on the simulated cell's labels (``pretrained_encoder``:
      another file of its kind), frozen, its features cached;
    - ``scratch``: a ConvEncoder trained by the critic from random weights (frames kept)."""
    if not spec.cameras:
        return {}
    base = {"image_keys": spec.image_keys, "image_size": spec.cameras[0].size}
    if encoder == "so101":
        from hilserl_ros.vision.pretrain import WEIGHTS
        return {**base, "pretrained_encoder": pretrained_encoder or WEIGHTS, "freeze_encoder": freeze_encoder}
    if encoder == "scratch":
        return {**base, "pretrained_encoder": None, "freeze_encoder": False}
    from hilserl_ros.vision.backbones import spec_error
    reason = spec_error(encoder)
    if reason:
        raise ValueError(f"encoder {encoder!r}: {reason} (or so101, scratch)")
    return {**base, "backbone": encoder, "freeze_encoder": freeze_encoder}


def encoder_error(value) -> str | None:
    """Why ``value`` names no camera encoder (see camera_encoder_config), or None."""
    if value in ("so101", "scratch"):
        return None
    from hilserl_ros.vision.backbones import spec_error
    reason = spec_error(str(value))
    return f"{reason} (or so101, scratch)" if reason else None


def device_error(value) -> str | None:
    """Why the learner cannot train on ``value`` here ("cpu", "cuda", "cuda:<index>"), or None."""
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        return f"{value!r} is not a device: cpu, cuda or cuda:<index>"
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        return f"device type {device.type!r} is not supported: cpu, cuda or cuda:<index>"
    if not torch.cuda.is_available():
        return f"{value}: CUDA is not available here (torch {torch.__version__}, no GPU or no CUDA build)"
    if device.index is not None and device.index >= torch.cuda.device_count():
        return f"{value}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None
