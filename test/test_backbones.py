"""Pretrained backbones: the shipped ImageNet weights load whole and frozen, each cut has the
map it promises, and a weights file that does not fit is refused with the reason."""
import numpy as np
import pytest
import torch

from hilserl_ros.vision.backbones import (CUTS, BackboneWeightsError, efficientnet_lite0, lite0_weights_path,
                                          read_weights)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 3, 128, 128), dtype=np.uint8)
    frames[1] = np.flip(frames[0], axis=2)  # the same content, mirrored: a different picture
    return torch.from_numpy(frames)


@pytest.mark.parametrize("cut, shape", [("stage3", (40, 16, 16)), ("stage4", (80, 8, 8)), ("stage5", (112, 8, 8)),
                                        ("stage7", (320, 4, 4)), ("head", (1280, 4, 4))])
def test_each_cut_gives_the_map_it_promises(images, cut, shape):
    backbone = efficientnet_lite0(cut)
    maps = backbone(images)
    assert tuple(maps.shape) == (2, *shape)
    assert backbone.channels == shape[0] and backbone.map_size(128) == shape[1]
    assert torch.isfinite(maps).all() and not torch.equal(maps[0], maps[1])


def test_the_imagenet_weights_load_whole_and_stay_frozen(images):
    backbone = efficientnet_lite0("head")
    state = read_weights(lite0_weights_path())
    assert 4.6e6 < sum(v.numel() for k, v in state.items() if "num_batches" not in k) < 4.8e6
    # the trunk carries the file's tensors, not a fresh initialisation
    assert torch.equal(backbone.layers.stem.weight, state["_conv_stem.weight"])
    assert all(not p.requires_grad for p in backbone.parameters())
    backbone.train()  # a trainer calling train() on everything must not unfreeze batch norm
    assert not backbone.training
    first = backbone(images)
    assert torch.equal(first, backbone(images))  # eval statistics: the same frames, the same maps
    # uint8 frames and their [0, 1] float form are the same input
    assert torch.allclose(first, backbone(images.float() / 255.0), atol=1e-4)


def test_a_cut_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="cut must be one of"):
        efficientnet_lite0("stage9")
    assert CUTS[-1] == "head"


def test_weights_that_do_not_fit_are_refused_with_the_reason(tmp_path):
    state = read_weights(lite0_weights_path())
    renamed = dict(state)
    renamed["stem.weight"] = renamed.pop("_conv_stem.weight")
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(BackboneWeightsError, match=r"1 missing \(e\.g\. _conv_stem\.weight\); 1 unexpected"):
        efficientnet_lite0(weights=str(tmp_path / "renamed.pth"))

    reshaped = dict(state)
    reshaped["_fc.weight"] = torch.zeros(10, 1280)
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(BackboneWeightsError, match=r"_fc\.weight is \(10, 1280\), EfficientNet-Lite0 needs \(1000, 1280\)"):
        efficientnet_lite0(weights=str(tmp_path / "reshaped.pth"))

    good = tmp_path / "good.pth"
    torch.save(state, good)
    (tmp_path / "truncated.pth").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BackboneWeightsError, match="cannot be read as a weights file"):
        efficientnet_lite0(weights=str(tmp_path / "truncated.pth"))

    torch.save({"note": "not tensors"}, tmp_path / "other.pth")
    with pytest.raises(BackboneWeightsError, match="not a dictionary of tensors"):
        efficientnet_lite0(weights=str(tmp_path / "other.pth"))

    with pytest.raises(BackboneWeightsError, match="no such file"):
        efficientnet_lite0(weights=str(tmp_path / "absent.pth"))


def test_the_cost_table_names_every_cut(capsys):
    from hilserl_ros.vision.backbones import main

    assert main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "stage4: 8x8x80 map" in out and "head: 4x4x1280 map" in out
    assert len(out.strip().splitlines()) == len(CUTS)


def _random_resnet10(seed=0):
    from hilserl_ros.vision.backbones import ResNet10

    torch.manual_seed(seed)
    net = ResNet10()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return net


def test_a_resnet10_checkpoint_with_the_ports_key_names_round_trips(tmp_path, images):
    """The HIL-SERL/LeRobot ResNet-10 is not on the package index: a user points at its
    model.safetensors. The test writes one with the same key names (36 tensors, 4.9 M
    parameters), in today's names and in the port's older ones."""
    from safetensors.torch import save_file

    from hilserl_ros.vision.backbones import IMAGENET_NORM, resnet10

    net = _random_resnet10()
    state = net.state_dict()
    assert len(state) == 36 and sum(v.numel() for v in state.values()) == 4_905_792
    assert {"embedder.0.weight", "embedder.1.group_norm.weight", "encoder.stages.0.conv1.conv.weight",
            "encoder.stages.3.shortcut.0.conv.weight", "encoder.stages.3.shortcut.1.group_norm.bias"} <= set(state)
    save_file(state, str(tmp_path / "model.safetensors"))
    backbone = resnet10(str(tmp_path / "model.safetensors"))
    maps = backbone(images)
    assert tuple(maps.shape) == (2, 512, 4, 4) and backbone.map_size(128) == 4
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET_NORM)
    with torch.no_grad():
        assert torch.allclose(maps, net((images.float() / 255.0 - mean) / std), atol=1e-5)
    older = {k.replace(".group_norm", "").replace(".conv.weight", ".weight"): v for k, v in state.items()}
    assert "encoder.stages.1.norm1.weight" in older and "encoder.stages.1.conv1.weight" in older
    save_file(older, str(tmp_path / "older.safetensors"))
    assert torch.allclose(resnet10(str(tmp_path / "older.safetensors"))(images), maps, atol=1e-6)


def test_resnet10_pads_as_jax_does():
    from hilserl_ros.vision.backbones import _same_pad

    # a stride-2 window on an even side: the extra row/column after (JAX/TF "SAME"), not before
    assert _same_pad(64, 3, 2) == (0, 1) and _same_pad(32, 1, 2) == (0, 0) and _same_pad(32, 3, 1) == (1, 1)
    assert _same_pad(63, 3, 2) == (1, 1)


def test_a_file_that_is_not_resnet10_is_refused_with_the_reason(tmp_path):
    from safetensors.torch import save_file

    from hilserl_ros.vision.backbones import resnet10

    state = _random_resnet10().state_dict()
    state["encoder.stages.2.conv2.conv.weight"] = torch.zeros(256, 256, 5, 5)
    save_file(state, str(tmp_path / "wide.safetensors"))
    with pytest.raises(BackboneWeightsError, match=r"encoder\.stages\.2\.conv2\.conv\.weight is \(256, 256, 5, 5\)"):
        resnet10(str(tmp_path / "wide.safetensors"))
    with pytest.raises(BackboneWeightsError, match="not ResNet-10 weights: keys .* missing"):
        resnet10(lite0_weights_path())
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(BackboneWeightsError, match="cannot be read as safetensors"):
        resnet10(str(tmp_path / "cut.safetensors"))
