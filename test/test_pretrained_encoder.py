"""The policy's camera encoder on a pretrained backbone: a frozen EfficientNet-Lite0 (ImageNet
weights from its package) whose feature maps the buffers cache, and a spatial head per camera
the critic trains. What is cached must be what the encoder computes; what is frozen is never
sent to actors nor changed by training; what is trained gets gradients."""
import numpy as np
import pytest
import torch

from hilserl_ros.learning.buffers import ReplayBuffer
from hilserl_ros.learning.config import DEFAULT_ENCODER, SACConfig, camera_encoder_config, device_error, encoder_error
from hilserl_ros.learning.sac import Policy, SACAgent
from hilserl_ros.observation import load_observation

CAMERAS = ("front", "wrist")


def config(**overrides) -> SACConfig:
    base = dict(obs_dim=9, action_dim=4, image_keys=CAMERAS, backbone=DEFAULT_ENCODER, freeze_encoder=True,
                hidden_dims=(64, 64), batch_size=16, latent_dim=64)
    return SACConfig(**{**base, **overrides})


def frames(rng, n: int = 1) -> list[dict]:
    # smooth random images (a real picture has structure; pure noise saturates the map)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (len(CAMERAS), 16, 16, 3)).astype(np.uint8)
        out.append({c: np.ascontiguousarray(np.kron(coarse[i], np.ones((8, 8, 1), np.uint8)))
                    for i, c in enumerate(CAMERAS)})
    return out


def filled_buffer(agent: SACAgent, rng, transitions: int = 40) -> tuple[ReplayBuffer, list[dict]]:
    enc = agent.encoder
    buffer = ReplayBuffer(100, 9, 4, {c: (128, 128, 3) for c in CAMERAS}, seed=0, featurize=enc.camera_features,
                          feature_dim=enc.cache_dim, feature_dtype=enc.cache_dtype, keep_frames=False)
    shown = frames(rng, transitions + 1)
    for i in range(transitions):
        buffer.add(rng.normal(size=9), rng.uniform(-1, 1, 4), float(rng.normal()), rng.normal(size=9), False,
                   images=shown[i], next_images=shown[i + 1])
    return buffer, shown


def test_cached_maps_are_what_the_backbone_computes_and_give_the_same_features():
    torch.manual_seed(0)
    agent = SACAgent(config())
    rng = np.random.default_rng(0)
    buffer, shown = filled_buffer(agent, rng, 5)
    enc = agent.encoder.eval()  # no dropout: the two paths must agree exactly up to float16
    # the first transition's frame, cached on arrival, against the backbone run on it now
    stored = {c: torch.from_numpy(buffer.frames.features[c][buffer.frames.slots(buffer.frame[:1])]) for c in CAMERAS}
    images = {c: torch.from_numpy(shown[0][c]).permute(2, 0, 1).unsqueeze(0) for c in CAMERAS}
    recomputed = enc._maps(images)
    for c in CAMERAS:
        assert stored[c].dtype == torch.float16 and stored[c].shape == (1, int(np.prod(enc.map_shape)))
        torch.testing.assert_close(stored[c].float().view(1, *enc.map_shape), recomputed[c], rtol=1e-2, atol=2e-3)
    state = torch.zeros(1, 9)
    with torch.no_grad():
        from_cache = enc(state, features=stored)
        from_pixels = enc(state, images=images)
    torch.testing.assert_close(from_cache, from_pixels, rtol=0, atol=5e-3)


def test_the_critic_trains_the_heads_and_never_the_frozen_backbone():
    torch.manual_seed(0)
    agent = SACAgent(config())
    backbone = agent.encoder._backbone()
    before_backbone = {k: v.clone() for k, v in backbone.state_dict().items()}
    before_heads = {k: v.clone() for k, v in agent.encoder.cameras.state_dict().items()}
    buffer, _ = filled_buffer(agent, np.random.default_rng(1))
    for _ in range(3):
        agent.update(buffer.sample)
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in before_backbone.items())
    changed = [k for k, v in agent.encoder.cameras.state_dict().items() if not torch.equal(v, before_heads[k])]
    assert any(k.endswith("spatial.kernel") for k in changed) and any("project" in k for k in changed), changed
    # the backbone is not a parameter of the agent: not in its optimiser, not in its state
    assert not any(k.startswith("layers.") or ".layers." in k for k in agent.policy.state_dict())


def test_weights_pushes_carry_only_what_training_changes_and_act_alike_on_the_other_side():
    torch.manual_seed(0)
    policy = Policy(config())
    data, _ = policy.to_bytes(7)
    received = Policy.from_bytes(data)
    assert set(received.state_dict()) == set(policy.state_dict())
    # the bytes are the trained weights and a header, and the backbone (more than all of them) is not among them
    trained = sum(v.numel() * v.element_size() for v in policy.state_dict().values())
    backbone_bytes = sum(v.numel() * v.element_size() for v in policy.encoder._backbone().state_dict().values())
    assert trained <= len(data) < trained + 20_000
    assert len(data) < backbone_bytes
    rng = np.random.default_rng(2)
    shown = frames(rng)[0]
    for _ in range(3):
        obs = rng.normal(size=9).astype(np.float32)
        np.testing.assert_allclose(policy.act(obs, shown, deterministic=True),
                                   received.act(obs, shown, deterministic=True), atol=1e-6)


def test_a_frozen_so101_encoder_is_not_pushed_and_the_receiver_loads_it_from_its_file():
    from hilserl_ros.vision.pretrain import WEIGHTS

    torch.manual_seed(0)
    legacy = config(backbone="", pretrained_encoder=WEIGHTS, latent_dim=256, image_size=128)
    policy = Policy(legacy)
    data, _ = policy.to_bytes(1)
    frozen = policy.frozen_keys()
    assert frozen and all(k.startswith("encoder.cameras.") for k in frozen)
    from safetensors.torch import load as load_bytes
    assert not frozen & set(load_bytes(data))
    received = Policy.from_bytes(data)
    for key in frozen:
        assert torch.equal(received.state_dict()[key], policy.state_dict()[key])


def test_end_to_end_fine_tuning_trains_the_backbone_on_frames():
    torch.manual_seed(0)
    agent = SACAgent(config(freeze_encoder=False, batch_size=4, image_keys=("front",)))
    backbone = agent.encoder.trainable_backbone
    assert backbone is not None and any(p.requires_grad for p in backbone.parameters())
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    buffer = ReplayBuffer(20, 9, 4, {"front": (128, 128, 3)}, seed=0)  # frames kept: DrQ shifts each batch
    rng = np.random.default_rng(3)
    shown = [f["front"] for f in frames(rng, 9)]
    for i in range(8):
        buffer.add(rng.normal(size=9), rng.uniform(-1, 1, 4), 1.0, rng.normal(size=9), False,
                   images={"front": shown[i]}, next_images={"front": shown[i + 1]})
    agent.update(buffer.sample)
    assert any(not torch.equal(v, backbone.state_dict()[k]) for k, v in before.items())
    assert any(k.startswith("encoder.trainable_backbone.") for k in agent.policy.state_dict())


def test_encoder_and_device_names_are_checked_with_a_reason():
    assert encoder_error(DEFAULT_ENCODER) is None and encoder_error("so101") is None
    assert "cut" in encoder_error("efficientnet-lite0:stage9")
    assert "no such file" in encoder_error("resnet10:/nonexistent/model.safetensors")
    assert "unknown backbone" in encoder_error("vgg16")
    assert device_error("cpu") is None
    assert "not supported" in device_error("mps") or "not a device" in device_error("mps")
    assert "not a device" in device_error("gpu-please")
    if not torch.cuda.is_available():
        assert "CUDA is not available" in device_error("cuda")
    spec = load_observation("pick_cube", "pixels")
    with pytest.raises(ValueError, match="cut"):
        camera_encoder_config(spec, "efficientnet-lite0:stage0")
    assert camera_encoder_config(spec, DEFAULT_ENCODER)["backbone"] == DEFAULT_ENCODER


def test_the_default_buffers_with_cached_maps_fit_this_machine():
    spec = load_observation("pick_cube", "pixels")  # two cameras
    agent_config = SACConfig(obs_dim=spec.obs_dim, action_dim=4, **camera_encoder_config(spec, DEFAULT_ENCODER))
    enc = Policy(agent_config).encoder
    need = sum(ReplayBuffer.bytes_needed(n, spec.obs_dim, 4, spec.image_shapes, feature_dim=enc.cache_dim,
                                         feature_dtype=enc.cache_dtype, keep_frames=False) for n in (200_000, 100_000))
    assert need < 12e9  # config/learner.yaml's image_buffer_gb: nothing is cut at the default capacities


def test_a_frame_seen_again_is_not_run_through_the_backbone_again(monkeypatch):
    torch.manual_seed(0)
    policy = Policy(config())
    enc = policy.encoder
    shown = frames(np.random.default_rng(1), 3)
    runs = []
    backbone_maps = enc._maps
    monkeypatch.setattr(enc, "_maps", lambda images: runs.append(1) or backbone_maps(images))
    first = enc.camera_features(shown[0])
    action = policy.act(np.zeros(9, np.float32), shown[0], deterministic=True)  # acting on the frame just stored
    assert len(runs) == 1
    again = enc.camera_features({c: shown[0][c].copy() for c in CAMERAS})  # same pixels, another array
    assert len(runs) == 1 and all(np.array_equal(first[c], again[c]) for c in CAMERAS)
    other = enc.camera_features(shown[1])
    assert len(runs) == 2 and not np.array_equal(first["front"], other["front"])
    # one changed pixel is another frame
    touched = {c: shown[0][c].copy() for c in CAMERAS}
    touched["wrist"][64, 64, 0] ^= 1
    enc.camera_features(touched)
    assert len(runs) == 3
    # the action from remembered maps is the one computed from the frames themselves
    with torch.no_grad():
        images = {c: torch.from_numpy(shown[0][c]).permute(2, 0, 1).unsqueeze(0) for c in CAMERAS}
        features = policy.eval().encoder(torch.zeros(1, 9), images)
        direct = policy.actor(features, deterministic=True)[0][0].numpy()
    np.testing.assert_allclose(action, direct, atol=2e-3)
    # the memory is bounded, and a target encoder (a deep copy) keeps its own
    for i in range(enc.MEMO_FRAMES + 5):
        enc.camera_features(frames(np.random.default_rng(100 + i), 1)[0])
    assert len(enc._memo) == enc.MEMO_FRAMES
    import copy
    assert len(copy.deepcopy(enc)._memo) == 0


def test_the_heads_dropout_drops_its_share_and_keeps_the_mean():
    from hilserl_ros.learning.networks import Dropout

    torch.manual_seed(0)
    x = torch.ones(512, 2560, requires_grad=True)
    drop = Dropout(0.1)
    y = drop(x)
    assert abs((y == 0).float().mean().item() - 0.1) < 0.003 and abs(y.mean().item() - 1.0) < 0.01
    y.sum().backward()  # gradients flow only through what was kept, scaled alike
    assert x.grad.unique().tolist() == pytest.approx([0.0, 1 / 0.9], abs=1e-4)  # p to 1/65536
    assert not torch.equal(drop(x), drop(x))  # a fresh mask each call
    assert torch.equal(drop.eval()(x), x)  # acting: no dropout
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)
