"""Observation encoders: random-shift augmentation, several cameras plus state, pretrained
weights from a local file."""
import numpy as np
import pytest
import safetensors.torch
import torch

from hilserl_ros.learning.config import SACConfig
from hilserl_ros.learning.networks import ConvEncoder, ObservationEncoder, random_shift
from hilserl_ros.learning.sac import SACAgent


def test_random_shift_moves_content_by_at_most_pad_pixels():
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
    img[:, :, 16, 16] = 255  # one bright pixel
    out = random_shift(img, 4, g)
    assert out.shape == img.shape and out.dtype == torch.uint8
    moved = 0
    for b in range(8):
        ys, xs = torch.nonzero(out[b, 0] == 255, as_tuple=True)
        assert len(ys) == 1 and abs(int(ys[0]) - 16) <= 4 and abs(int(xs[0]) - 16) <= 4
        moved += (int(ys[0]), int(xs[0])) != (16, 16)
    assert moved >= 6  # nearly every image shifted
    assert torch.equal(random_shift(img, 0), img)


def test_two_cameras_and_state_make_one_feature_vector():
    cfg = SACConfig(obs_dim=5, action_dim=4, image_keys=("front", "wrist"), image_size=64, latent_dim=32)
    enc = ObservationEncoder(cfg)
    feats = enc(torch.zeros(3, 5), {k: torch.zeros(3, 3, 64, 64, dtype=torch.uint8) for k in cfg.image_keys})
    assert feats.shape == (3, 5 + 2 * 32) and enc.out_dim == 69
    agent = SACAgent(cfg)
    action = agent.act(np.zeros(5), {k: np.zeros((64, 64, 3), np.uint8) for k in cfg.image_keys})
    assert action.shape == (4,) and np.all(np.abs(action) <= 1)


def test_pretrained_encoder_weights_load_from_a_local_file(tmp_path):
    source = ConvEncoder(image_size=64, latent_dim=32)
    with torch.no_grad():
        for p in source.parameters():
            p.uniform_(-0.1, 0.1)
    path = tmp_path / "encoder.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    cfg = SACConfig(obs_dim=2, action_dim=2, image_keys=("front",), image_size=64, latent_dim=32,
                    pretrained_encoder=str(path), freeze_encoder=True)
    agent = SACAgent(cfg)
    for key, value in source.state_dict().items():
        assert torch.equal(agent.encoder.cameras["front"].state_dict()[key], value)
    assert not any(p.requires_grad for p in agent.encoder.parameters())
    wrong = tmp_path / "wrong.safetensors"
    safetensors.torch.save_file({"something.else": torch.zeros(3)}, str(wrong))
    with pytest.raises(ValueError, match="ConvEncoder weights"):
        SACAgent(SACConfig(obs_dim=2, action_dim=2, image_keys=("front",), image_size=64, latent_dim=32,
                           pretrained_encoder=str(wrong)))


def test_image_agent_updates_with_uint8_frames():
    cfg = SACConfig(obs_dim=3, action_dim=2, image_keys=("front",), image_size=32, latent_dim=16,
                    hidden_dims=(32, 32), batch_size=8, utd_ratio=1)
    agent = SACAgent(cfg)
    from hilserl_ros.learning.buffers import ReplayBuffer

    buf = ReplayBuffer(20, 3, 2, {"front": (32, 32, 3)})
    rng = np.random.default_rng(0)
    for _ in range(20):
        f = {"front": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}
        buf.add(rng.normal(size=3), rng.uniform(-1, 1, 2), 1.0, rng.normal(size=3), False, images=f, next_images=f)
    before = [p.clone() for p in agent.encoder.parameters()]
    stats = agent.update(buf.sample)
    assert np.isfinite(stats["critic_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.encoder.parameters()))  # encoder trains


def test_state_encoder_is_optional_and_trains():
    from hilserl_ros.learning.buffers import ReplayBuffer

    raw = SACAgent(SACConfig(obs_dim=6, action_dim=2, hidden_dims=(32, 32)))
    assert raw.encoder.is_identity and raw.encoder.out_dim == 6
    cfg = SACConfig(obs_dim=6, action_dim=2, hidden_dims=(32, 32), state_latent_dim=16, batch_size=16)
    agent = SACAgent(cfg)
    assert agent.encoder.out_dim == 16 and agent.actor.trunk[0].in_features == 16
    buf = ReplayBuffer(64, 6, 2)
    rng = np.random.default_rng(0)
    for _ in range(64):
        buf.add(rng.normal(size=6), rng.uniform(-1, 1, 2), 1.0, rng.normal(size=6), False)
    before = agent.encoder.state[0].weight.clone()
    agent.update(buf.sample)
    assert not torch.equal(before, agent.encoder.state[0].weight)
    assert agent.act(np.zeros(6)).shape == (2,)
