"""SAC updates per second: hilserl_ros's learner core against Stable-Baselines3's SAC.

    make bench-learner        (python bench/learner.py [--quick])

Counting: one *gradient step* = one critic step + one actor step (what SB3's
``train(gradient_steps=1)`` does). Equal work is compared at UTD 1 with the same MLPs
(2 critics, 256x256, no LayerNorm on either side), batch 256, observation 20, action 4, the
same torch thread count, both sampling from a replay buffer prefilled with the same number
of transitions. The HIL-SERL configuration (UTD 2 = two critic steps per actor step, LayerNorm
critics) is reported separately as an absolute rate. (b) one 128x128 camera + state: both
sides use the same conv encoder (SB3 through a features extractor, where its CnnPolicy puts its
NatureCNN), shared by actor and critic, trained. (c) the same camera with the encoder frozen:
here each frame's features are cached on arrival, SB3 runs the frozen encoder on every batch
(it has no cache): not equal work, but what each does with a frozen encoder. (d) the learner's
own pixel configuration (two cameras, UTD 2) as an absolute rate, and the encoder time caching
moves to a frame's arrival. (e) the default encoder: a frozen pretrained backbone, its maps
cached per frame, a spatial head trained by the critic; SB3 trains the same head on the same
maps given as its observations (equal work), and the learner's pick_cube configuration with it.
"""
from __future__ import annotations

import argparse
import os
import sys

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import interleaved, matmul_gflops, versions, write  # noqa: E402

from hilserl_ros.learning.buffers import ReplayBuffer  # noqa: E402
from hilserl_ros.learning.config import SACConfig  # noqa: E402
from hilserl_ros.learning.networks import ConvEncoder  # noqa: E402
from hilserl_ros.learning.sac import SACAgent  # noqa: E402

OBS, ACT, BATCH, HIDDEN, IMG = 20, 4, 256, (256, 256), 128


def flops_per_gradient_step(obs: int, act: int, hidden=HIDDEN, critics: int = 2, utd: int = 1, batch: int = BATCH) -> float:
    """Matmul FLOPs of one update, counted from the layer sizes (2*in*out per sample per layer
    forward; a backward pass costs twice its forward, an input-only backward once)."""
    def mlp(i, widths, o):
        dims = [i, *widths, o]
        return sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))

    actor = mlp(obs, hidden, 2 * act)
    critic = critics * mlp(obs + act, hidden, 1)
    critic_step = actor + critic + 3 * critic  # next action, target Q, Q forward + backward
    actor_step = 3 * actor + 2 * critic  # actor fwd+bwd, Q forward + input-gradient backward
    return batch * (utd * critic_step + actor_step)


# ----------------------------------------------------------------------------- ours
def ours(config: SACConfig, transitions: int, images: bool = False):
    """With a frozen encoder, the buffer caches each frame's features as the learner does."""
    torch.manual_seed(0)
    agent = SACAgent(config)
    shapes = {k: (IMG, IMG, 3) for k in config.image_keys} if images else {}
    cached = dict(featurize=agent.encoder.camera_features, feature_dim=agent.encoder.cache_dim,
                  feature_dtype=agent.encoder.cache_dtype, keep_frames=not config.backbone) \
        if images and config.freeze_encoder else {}
    buf = ReplayBuffer(transitions, config.obs_dim, config.action_dim, shapes, seed=0, **cached)
    rng = np.random.default_rng(0)
    for _ in range(transitions):
        frames = {k: rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8) for k in shapes} if images else None
        buf.add(rng.normal(size=config.obs_dim), rng.uniform(-1, 1, config.action_dim), float(rng.normal()),
                rng.normal(size=config.obs_dim), False, images=frames, next_images=frames)

    def run(steps):
        for _ in range(steps):
            agent.update(buf.sample)
    return run


# ----------------------------------------------------------------------------- SB3
def null_env(space) -> gym.Env:
    """An env of this observation space and the SO-101's action space, for SB3 to be built on
    (its replay buffer is filled directly; the env is never stepped in the measurement)."""
    class Null(gym.Env):
        observation_space = space
        action_space = gym.spaces.Box(-1, 1, (ACT,), np.float32)

        def reset(self, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    return Null()


def sb3_maps(transitions: int, map_shape: tuple[int, int, int]):
    """SB3's SAC training the same spatial head on stored backbone maps: its observations are
    the maps (what our buffer caches per frame), its features extractor the head. Equal work."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from hilserl_ros.learning.networks import SpatialHead

    class HeadPlusState(BaseFeaturesExtractor):
        def __init__(self, space):
            super().__init__(space, features_dim=256 + OBS)
            self.head = SpatialHead(map_shape[0], map_shape[1], 256)

        def forward(self, obs):
            return torch.cat([obs["state"], self.head(obs["front"])], dim=-1)

    space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32),
                             "front": gym.spaces.Box(-np.inf, np.inf, map_shape, np.float32)})

    model = SAC("MultiInputPolicy", null_env(space), batch_size=BATCH, buffer_size=transitions, learning_starts=0,
                policy_kwargs=dict(net_arch=list(HIDDEN), n_critics=2, features_extractor_class=HeadPlusState,
                                   share_features_extractor=True), device="cpu", seed=0, gradient_steps=1)
    model.set_logger(configure(folder=None, format_strings=[]))
    rng = np.random.default_rng(0)
    for _ in range(transitions):
        maps = rng.normal(size=(1, *map_shape)).astype(np.float32)
        o = {"state": rng.normal(size=(1, OBS)).astype(np.float32), "front": maps}
        o2 = {"state": rng.normal(size=(1, OBS)).astype(np.float32), "front": maps}
        model.replay_buffer.add(o, o2, rng.uniform(-1, 1, (1, ACT)).astype(np.float32),
                                np.array([rng.normal()], np.float32), np.array([False]), [{}])

    def run(steps):
        model.train(gradient_steps=steps, batch_size=BATCH)
    return run


def sb3(transitions: int, images: bool = False, frozen: bool = False):
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class ConvPlusState(BaseFeaturesExtractor):
        """The same ConvEncoder as ours, plus the state passed through."""

        def __init__(self, space):
            super().__init__(space, features_dim=256 + OBS)
            self.conv = ConvEncoder(IMG, 256)
            if frozen:  # the same frozen encoder; SB3 has no feature cache, so it runs it on every batch
                self.conv.requires_grad_(False)

        def forward(self, obs):
            return torch.cat([obs["state"], self.conv(obs["front"])], dim=-1)

    box = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
    if images:
        space = gym.spaces.Dict({"state": box, "front": gym.spaces.Box(0, 255, (3, IMG, IMG), np.uint8)})
    else:
        space = box

    kwargs = dict(net_arch=list(HIDDEN), n_critics=2)
    if images:
        kwargs.update(features_extractor_class=ConvPlusState, share_features_extractor=True)
    model = SAC("MultiInputPolicy" if images else "MlpPolicy", null_env(space), batch_size=BATCH,
                buffer_size=transitions, learning_starts=0, policy_kwargs=kwargs, device="cpu", seed=0, gradient_steps=1)
    model.set_logger(configure(folder=None, format_strings=[]))
    rng = np.random.default_rng(0)
    for _ in range(transitions):
        if images:
            frame = rng.integers(0, 256, (1, 3, IMG, IMG), dtype=np.uint8)
            o = {"state": rng.normal(size=(1, OBS)).astype(np.float32), "front": frame}
            o2 = {"state": rng.normal(size=(1, OBS)).astype(np.float32), "front": frame}
        else:
            o, o2 = rng.normal(size=(1, OBS)).astype(np.float32), rng.normal(size=(1, OBS)).astype(np.float32)
        model.replay_buffer.add(o, o2, rng.uniform(-1, 1, (1, ACT)).astype(np.float32),
                                np.array([rng.normal()], np.float32), np.array([False]), [{}])

    def run(steps):
        model.train(gradient_steps=steps, batch_size=BATCH)
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args(argv)
    torch.set_num_threads(opts.threads)
    steps, repeats = (20, 2) if opts.quick else (100, 5)
    transitions = 5000

    print(f"[bench] state: obs {OBS}, action {ACT}, batch {BATCH}, 2 critics {HIDDEN}, {opts.threads} threads")
    equal_cfg = SACConfig(obs_dim=OBS, action_dim=ACT, hidden_dims=HIDDEN, layer_norm=False, utd_ratio=1,
                          batch_size=BATCH)
    hil_cfg = SACConfig(obs_dim=OBS, action_dim=ACT, hidden_dims=HIDDEN, utd_ratio=2, batch_size=BATCH)
    contenders = {"hilserl_ros": ours(equal_cfg, transitions), "sb3": sb3(transitions),
                  "hilserl_ros_hilserl_config": ours(hil_cfg, transitions)}
    work = {name: steps for name in contenders}
    state = interleaved({k: (lambda f=f: f(steps)) for k, f in contenders.items()}, work, repeats)
    for name, r in state.items():
        print(f"[bench] {name:28s} {r['median']:7.1f} updates/s (min {r['min']:.1f}, max {r['max']:.1f})")

    gflops = matmul_gflops()
    flops_equal = flops_per_gradient_step(OBS, ACT)
    flops_hil = flops_per_gradient_step(OBS, ACT, utd=2)
    bound_equal, bound_hil = gflops * 1e9 / flops_equal, gflops * 1e9 / flops_hil
    print(f"[bench] matmul {gflops:.0f} GFLOP/s -> FLOP bound {bound_equal:.0f} gradient steps/s at UTD 1, "
          f"{bound_hil:.0f} updates/s at UTD 2 ({flops_equal / 1e6:.0f} / {flops_hil / 1e6:.0f} MFLOP each)")

    img_steps, img_repeats = (1, 1) if opts.quick else (3, 3)
    print(f"[bench] image: one {IMG}x{IMG} camera + state {OBS}, same conv encoder, batch {BATCH}, UTD 1")
    img_cfg = SACConfig(obs_dim=OBS, action_dim=ACT, hidden_dims=HIDDEN, layer_norm=False, utd_ratio=1,
                        batch_size=BATCH, image_keys=("front",), image_size=IMG)
    image = interleaved({"hilserl_ros": lambda f=ours(img_cfg, 600, images=True): f(img_steps),
                         "sb3": lambda f=sb3(600, images=True): f(img_steps)},
                        {"hilserl_ros": img_steps, "sb3": img_steps}, img_repeats)
    for name, r in image.items():
        print(f"[bench] image {name:22s} {r['median']:7.2f} updates/s (min {r['min']:.2f}, max {r['max']:.2f})")

    # what the learner runs for pixels: the frozen pretrained encoder, features cached per frame
    frozen_steps, frozen_repeats = (5, 1) if opts.quick else (100, 5)
    print(f"[bench] image, frozen encoder (the learner's pixel configuration): features cached per frame here; "
          f"SB3 runs the same frozen encoder on every batch (it has no cache), batch {BATCH}, UTD 1")
    frozen_cfg = SACConfig(obs_dim=OBS, action_dim=ACT, hidden_dims=HIDDEN, layer_norm=False, utd_ratio=1,
                           batch_size=BATCH, image_keys=("front",), image_size=IMG, freeze_encoder=True)
    frozen = interleaved({"hilserl_ros": lambda f=ours(frozen_cfg, 600, images=True): f(frozen_steps),
                          "sb3": lambda f=sb3(600, images=True, frozen=True): f(max(1, frozen_steps // 20))},
                         {"hilserl_ros": frozen_steps, "sb3": max(1, frozen_steps // 20)}, frozen_repeats)
    for name, r in frozen.items():
        print(f"[bench] image frozen {name:15s} {r['median']:7.2f} updates/s (min {r['min']:.2f}, max {r['max']:.2f})")

    # what /learner runs for pick_cube from pixels: two cameras, 9 state values, LayerNorm critics,
    # UTD 2, frozen encoder with cached features; and what caching moves to a frame's arrival
    pick_cfg = SACConfig(obs_dim=9, action_dim=ACT, hidden_dims=HIDDEN, utd_ratio=2, batch_size=BATCH,
                         image_keys=("front", "wrist"), image_size=IMG, freeze_encoder=True)
    pick = interleaved({"hilserl_ros": lambda f=ours(pick_cfg, 600, images=True): f(frozen_steps)},
                       {"hilserl_ros": frozen_steps}, frozen_repeats)["hilserl_ros"]
    encoder = SACAgent(pick_cfg).encoder
    # 20 different steps' frames in turn: the encoder remembers its last 8 frames (a frame is
    # asked for again by the actor and the next transition), so one frame over and over would
    # time that memory, not the encoder
    rng = np.random.default_rng(1)
    steps = [{k: rng.integers(0, 256, (IMG, IMG, 3), dtype=np.uint8) for k in pick_cfg.image_keys} for _ in range(20)]
    arrival = interleaved({"encode": lambda: [encoder.camera_features(frame) for frame in steps]}, {"encode": 20},
                          frozen_repeats)["encode"]
    print(f"[bench] learner's pixel configuration (pick_cube: 2 cameras + 9 state values, LayerNorm critics, UTD 2, "
          f"cached features): {pick['median']:.1f} updates/s (min {pick['min']:.1f}, max {pick['max']:.1f}); "
          f"encoding a step's two frames on arrival: {1e3 / arrival['median']:.1f} ms")

    # the default encoder (config/learner.yaml): a frozen pretrained backbone whose maps are
    # cached per frame (float16), a spatial head per camera trained by the critic; SB3 trains the
    # same head on the same maps stored as its observations (equal work, one camera, UTD 1)
    from hilserl_ros.learning.config import DEFAULT_ENCODER

    head_cfg = SACConfig(obs_dim=OBS, action_dim=ACT, hidden_dims=HIDDEN, layer_norm=False, utd_ratio=1,
                         batch_size=BATCH, image_keys=("front",), image_size=IMG, freeze_encoder=True,
                         backbone=DEFAULT_ENCODER)
    map_shape = SACAgent(head_cfg).encoder.map_shape
    print(f"[bench] image, {DEFAULT_ENCODER} maps {map_shape} cached per frame, spatial head trained: ours against "
          f"SB3 training the same head on the same maps as observations, batch {BATCH}, UTD 1")
    heads = interleaved({"hilserl_ros": lambda f=ours(head_cfg, 600, images=True): f(frozen_steps),
                         "sb3": lambda f=sb3_maps(600, map_shape): f(frozen_steps)},
                        {"hilserl_ros": frozen_steps, "sb3": frozen_steps}, frozen_repeats)
    for name, r in heads.items():
        print(f"[bench] image head on maps {name:10s} {r['median']:7.2f} updates/s (min {r['min']:.2f}, "
              f"max {r['max']:.2f})")
    default_pick = SACConfig(obs_dim=9, action_dim=ACT, hidden_dims=HIDDEN, utd_ratio=2, batch_size=BATCH,
                             image_keys=("front", "wrist"), image_size=IMG, freeze_encoder=True, backbone=DEFAULT_ENCODER)
    default_rate = interleaved({"hilserl_ros": lambda f=ours(default_pick, 600, images=True): f(frozen_steps)},
                               {"hilserl_ros": frozen_steps}, frozen_repeats)["hilserl_ros"]
    default_encoder = SACAgent(default_pick).encoder
    default_arrival = interleaved({"encode": lambda: [default_encoder.camera_features(frame) for frame in steps]},
                                  {"encode": 20}, frozen_repeats)["encode"]
    print(f"[bench] learner's default pixel configuration (pick_cube, {DEFAULT_ENCODER}, heads on cached maps, "
          f"UTD 2): {default_rate['median']:.1f} updates/s; the backbone on a step's two frames on arrival: "
          f"{1e3 / default_arrival['median']:.1f} ms")

    two = {"front": (IMG, IMG, 3), "wrist": (IMG, IMG, 3)}
    with_frames = ReplayBuffer.bytes_needed(200_000, 9, ACT, two)
    with_features = ReplayBuffer.bytes_needed(200_000, 9, ACT, two, feature_dim=256, keep_frames=False)
    with_maps = ReplayBuffer.bytes_needed(200_000, 9, ACT, two, feature_dim=default_encoder.cache_dim,
                                          feature_dtype=default_encoder.cache_dtype, keep_frames=False)
    print(f"[bench] replay memory, 200k transitions of two {IMG}x{IMG} cameras (each frame once, 1.25 frame slots "
          f"per transition): {with_frames / 1e9:.1f} GB as uint8 frames (an encoder being trained), "
          f"{with_features / 1e9:.2f} GB as so101 encoder features, {with_maps / 1e9:.2f} GB as {DEFAULT_ENCODER} "
          f"maps (float16; what /learner keeps for pixels by default)")
    ratio = state["hilserl_ros"]["median"] / state["sb3"]["median"]
    image_ratio = image["hilserl_ros"]["median"] / image["sb3"]["median"]
    path = write("learner", {
        "counting": "one update = one actor step + utd_ratio critic steps; SB3 gradient step = 1 + 1",
        "versions": versions("torch", "stable-baselines3", "numpy"),
        "state_equal_work": {"config": "obs 20, act 4, batch 256, 2 critics 256x256, no LayerNorm, UTD 1",
                             "hilserl_ros": state["hilserl_ros"], "sb3": state["sb3"], "ratio": ratio},
        "state_hilserl_config": {"config": "obs 20, act 4, batch 256, 2 LayerNorm critics 256x256, UTD 2",
                                 "hilserl_ros": state["hilserl_ros_hilserl_config"]},
        "flop_bound": {"matmul_gflops": gflops, "mflop_per_update_utd1": flops_equal / 1e6,
                       "mflop_per_update_utd2": flops_hil / 1e6, "bound_updates_per_s_utd1": bound_equal,
                       "bound_updates_per_s_utd2": bound_hil,
                       "fraction_of_bound_utd1": state["hilserl_ros"]["median"] / bound_equal},
        "image": {"config": "one 128x128 camera + state 20, shared ConvEncoder, batch 256, UTD 1",
                  "hilserl_ros": image["hilserl_ros"], "sb3": image["sb3"], "ratio": image_ratio},
        "image_frozen_encoder": {"config": "one 128x128 camera + state 20, frozen ConvEncoder, batch 256, UTD 1; "
                                 "hilserl_ros caches features per frame, SB3 recomputes them per batch",
                                 "hilserl_ros": frozen["hilserl_ros"], "sb3": frozen["sb3"],
                                 "ratio": frozen["hilserl_ros"]["median"] / frozen["sb3"]["median"]},
        "image_learner_pixel_config": {"config": "pick_cube pixels: front + wrist 128x128 + state 9, frozen "
                                       "ConvEncoder with features cached per frame, 2 LayerNorm critics 256x256, "
                                       "batch 256, UTD 2", "hilserl_ros": pick,
                                       "encode_ms_per_step_on_arrival": 1e3 / arrival["median"]},
        "image_backbone_head": {"config": f"one 128x128 camera + state 20, {DEFAULT_ENCODER} maps {list(map_shape)} "
                                "cached (float16), spatial head trained, batch 256, UTD 1; SB3 trains the same head "
                                "on the same maps stored as observations (float32)",
                                "hilserl_ros": heads["hilserl_ros"], "sb3": heads["sb3"],
                                "ratio": heads["hilserl_ros"]["median"] / heads["sb3"]["median"]},
        "image_learner_default_pixel_config": {"config": f"pick_cube pixels, {DEFAULT_ENCODER}, heads on cached "
                                               "maps, 2 LayerNorm critics, UTD 2", "hilserl_ros": default_rate,
                                               "encode_ms_per_step_on_arrival": 1e3 / default_arrival["median"]},
        "replay_gb_200k_two_cameras": {"uint8_frames": with_frames / 1e9, "frozen_encoder_features": with_features / 1e9,
                                       "backbone_maps_float16": with_maps / 1e9},
        "quick": opts.quick,
    })
    print(f"[bench] wrote {path}")
    print(f"[bench] image: hilserl_ros / SB3 = {image_ratio:.2f}x (trained encoder, equal work)")
    print(f"[bench] image, frozen encoder: hilserl_ros / SB3 = "
          f"{frozen['hilserl_ros']['median'] / frozen['sb3']['median']:.1f}x (cached features against recomputed)")
    print(f"[bench] image, backbone maps cached, head trained: hilserl_ros / SB3 = "
          f"{heads['hilserl_ros']['median'] / heads['sb3']['median']:.2f}x (equal work)")
    print(f"[bench] state, equal work: hilserl_ros / SB3 = {ratio:.2f}x updates per second (target >= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
