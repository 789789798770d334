"""SAC for HIL-SERL: critic ensemble, automatic temperature, optional discrete grasp critic,
critic-to-actor update ratio (UTD), and live knobs that take effect at the next update.

One call of :meth:`SACAgent.update` is one *update*: ``utd_ratio`` critic steps (each on its
own batch), then one actor step and one temperature step on the last batch. Statistics of
the update are returned as a plain dict (see :data:`STAT_KEYS`).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import threading
from typing import Callable

import numpy as np
import safetensors.torch
import torch
from safetensors.torch import load as safetensors_load

from hilserl_ros.learning.buffers import Batch
from hilserl_ros.learning.config import SACConfig, validate
from hilserl_ros.learning.networks import (
    CriticEnsemble,
    GraspCritic,
    ObservationEncoder,
    TanhGaussianActor,
    random_shift,
)

STAT_KEYS = (
    "alpha", "entropy", "target_entropy", "critic_loss", "actor_loss", "temperature_loss", "grasp_critic_loss",
    "q_mean", "action_abs_mean", "action_abs_std", "policy_mean_abs", "critic_grad_norm", "actor_grad_norm",
)
WEIGHTS_FORMAT = "safetensors"


class Policy(torch.nn.Module):
    """What an actor needs to act: encoder, Gaussian actor and (optionally) the grasp critic."""

    def __init__(self, config: SACConfig, device: str = "cpu"):
        super().__init__()
        self.config = config
        self.encoder = ObservationEncoder(config, device)
        self.actor = TanhGaussianActor(self.encoder.out_dim, config.continuous_dim, config)
        self.grasp = GraspCritic(self.encoder.out_dim, config) if config.grasp_critic else None
        if config.image_keys and not config.backbone:
            if config.pretrained_encoder:
                load_encoder_weights(self.encoder, local_weights(config.pretrained_encoder))
            if config.freeze_encoder:  # what was frozen is not trained, not sent: each side loads it
                self.encoder.cameras.requires_grad_(False)
        self.to(device)

    @property
    def device(self) -> torch.device:
        return self.actor.mean.weight.device

    def frozen_keys(self) -> set[str]:
        """Names of the weights training never changes (a frozen ConvEncoder's): each process
        loads them from their file, so weights pushes leave them out."""
        return {name for name, p in self.named_parameters() if not p.requires_grad}

    @torch.no_grad()
    def act(self, obs: np.ndarray, images: dict[str, np.ndarray] | None = None, deterministic: bool = False,
            generator: torch.Generator | None = None) -> np.ndarray:
        """One normalised action in [-1, 1] for one observation (images uint8 [H, W, 3])."""
        device = self.device
        state = torch.as_tensor(np.asarray(obs, np.float32)).reshape(1, -1).to(device)
        frames = cached = None
        if self.config.image_keys and self.config.freeze_encoder:
            # what the buffers keep of these frames: computed once for acting and storing
            cached = {k: torch.tensor(v).unsqueeze(0).to(device)
                      for k, v in self.encoder.camera_features(images).items()}
        elif self.config.image_keys:
            frames = {k: torch.as_tensor(images[k]).permute(2, 0, 1).unsqueeze(0).to(device)
                      for k in self.config.image_keys}
        training = self.training
        self.eval()  # acting: no dropout in the image heads
        try:
            features = self.encoder(state, frames, features=cached)
            action, _ = self.actor(features, deterministic=deterministic, generator=generator)
            if self.grasp is not None:
                gripper = GraspCritic.to_command(self.grasp(features).argmax(-1))
                action = torch.cat([action, gripper.unsqueeze(-1)], dim=-1)
        finally:
            self.train(training)
        return action.squeeze(0).cpu().numpy()

    # -- weights over the wire: safetensors bytes, never pickle ------------------------------
    def to_bytes(self, version: int = 0) -> tuple[bytes, str]:
        """(safetensors bytes, metadata JSON) of the weights training changes (a frozen
        backbone or encoder is not among them: the receiver builds it from the same source)."""
        frozen = self.frozen_keys()
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items() if k not in frozen}
        meta = json.dumps({"config": self.config.to_dict(), "version": int(version)})
        return safetensors.torch.save(tensors, metadata={"hilserl": meta}), meta

    @staticmethod
    def from_bytes(data: bytes) -> "Policy":
        """Build a policy from bytes made by :meth:`to_bytes` (config travels in the metadata)."""
        meta = json.loads(read_safetensors_metadata(data)["hilserl"])
        policy = Policy(SACConfig.from_dict(meta["config"]))
        policy.load_bytes(data)
        return policy

    def load_bytes(self, data: bytes) -> None:
        tensors = safetensors_load(data)  # safetensors: a JSON header and raw tensors, no pickle
        missing = set(self.state_dict()) - set(tensors) - self.frozen_keys()
        unexpected = set(tensors) - set(self.state_dict())
        if missing or unexpected:
            raise ValueError(f"weights do not fit this policy: missing {sorted(missing)[:5]}, "
                             f"unexpected {sorted(unexpected)[:5]}")
        for key, value in self.state_dict().items():
            if key in tensors and tensors[key].shape != value.shape:
                raise ValueError(f"weights do not fit this policy: {key} is {list(tensors[key].shape)}, "
                                 f"expected {list(value.shape)}")
        self.load_state_dict(tensors, strict=False)


def read_safetensors_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors byte string (its JSON header), without loading tensors."""
    if len(data) < 8:
        raise ValueError("not a safetensors payload: shorter than its header length")
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise ValueError("not a safetensors payload: bad header length")
    header = json.loads(data[8:8 + n])
    return header.get("__metadata__", {})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SACAgent:
    def __init__(self, config: SACConfig, device: str = "cpu"):
        """``device``: where the networks live and train ("cpu", "cuda", "cuda:1"); batches are
        moved there, weights leave it as CPU tensors."""
        self.config = config
        self.device = torch.device(device)
        torch.manual_seed(config.seed)
        self.policy = Policy(config, str(self.device))
        self.encoder, self.actor, self.grasp = self.policy.encoder, self.policy.actor, self.policy.grasp
        feat = self.encoder.out_dim
        self.critic = CriticEnsemble(feat, config.continuous_dim, config).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.encoder_target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.grasp_target = copy.deepcopy(self.grasp).requires_grad_(False) if self.grasp is not None else None
        self.log_alpha = torch.tensor(math.log(config.temperature_init), requires_grad=True, device=self.device)

        # the critic trains what of the encoder is not frozen (a backbone's heads; all of a
        # ConvEncoder trained from scratch; nothing of a frozen ConvEncoder)
        encoder_params = [p for p in self.encoder.parameters() if p.requires_grad]
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_opt = torch.optim.Adam(list(self.critic.parameters()) + encoder_params, lr=config.critic_lr)
        self.temperature_opt = torch.optim.Adam([self.log_alpha], lr=config.temperature_lr)
        self.grasp_opt = torch.optim.Adam(self.grasp.parameters(), lr=config.critic_lr) if self.grasp else None

        self._online = list(self.critic.parameters()) + list(self.encoder.parameters())
        self._target = list(self.critic_target.parameters()) + list(self.encoder_target.parameters())
        if self.grasp is not None:
            self._online += list(self.grasp.parameters())
            self._target += list(self.grasp_target.parameters())
        self.update_step = 0  # actor updates
        self.critic_step = 0
        self.act_generator = torch.Generator(self.device).manual_seed(config.seed + 1)
        self.aug_generator = torch.Generator(self.device).manual_seed(config.seed + 2)
        self.train_generator = torch.Generator(self.device).manual_seed(config.seed + 3)  # policy noise, target subsets
        self._knob_lock = threading.Lock()

    # ------------------------------------------------------------------ acting
    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def act(self, obs, images=None, deterministic: bool = False) -> np.ndarray:
        return self.policy.act(obs, images, deterministic, generator=self.act_generator)

    # ------------------------------------------------------------------ learning
    def update(self, sample: Callable[[int], Batch]) -> dict[str, float]:
        """One update: ``utd_ratio`` critic steps on fresh batches, then actor + temperature.
        ``sample(batch_size)`` returns a Batch (e.g. from :func:`sample_mixed`)."""
        with self._knob_lock:  # knobs read once per update, so one update sees one setting
            utd, batch_size = self.config.utd_ratio, self.config.batch_size
        stats: dict[str, float] = {}
        features = None
        for _ in range(utd):
            batch = sample(batch_size)
            if self.device.type != "cpu":
                batch = batch.to(self.device)
            features, critic_stats = self._critic_step(batch)
            stats.update(critic_stats)
        stats.update(self._actor_step(features.detach()))
        self.update_step += 1
        return stats

    def _encode(self, encoder, state, images, augment: bool, features=None) -> torch.Tensor:
        if encoder.is_identity:
            return state
        if not self.config.image_keys:
            return encoder(state)
        if features is not None:  # frozen encoder: its features were computed once per frame
            return encoder(state, features=features)
        if augment and self.config.image_pad > 0:
            images = {k: random_shift(v, self.config.image_pad, self.aug_generator) for k, v in images.items()}
        return encoder(state, images)

    def _critic_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        alpha = self.log_alpha.detach().exp()
        cont_action = batch.action[:, :cfg.continuous_dim]
        with torch.no_grad():
            next_feat = self._encode(self.encoder_target, batch.next_obs, batch.next_images, augment=True,
                                     features=batch.next_features)
            next_action, next_logp = self.actor(next_feat, generator=self.train_generator)
            q_next = self.critic_target(next_feat, next_action)
            if cfg.num_target_critics is not None and cfg.num_target_critics < cfg.num_critics:
                subset = torch.randperm(cfg.num_critics, generator=self.train_generator)[:cfg.num_target_critics]
                q_next = q_next[subset]
            q_next = q_next.min(dim=0).values
            if cfg.use_backup_entropy:
                q_next = q_next - alpha * next_logp
            not_done = 1.0 - batch.terminated
            target = batch.reward + cfg.discount * not_done * q_next
        features = self._encode(self.encoder, batch.obs, batch.images, augment=True, features=batch.features)
        q = self.critic(features, cont_action)
        critic_loss = 0.5 * ((q - target.unsqueeze(0)) ** 2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        grad_norm = self._clip(self.critic_opt)
        self.critic_opt.step()
        loss_value, q_mean = torch.stack([critic_loss.detach(), q.detach().mean()]).tolist()
        stats = {"critic_loss": loss_value, "q_mean": q_mean, "critic_grad_norm": grad_norm}

        if self.grasp is not None:
            stats["grasp_critic_loss"] = self._grasp_step(batch, features.detach(), next_feat, not_done)
        else:
            stats["grasp_critic_loss"] = float("nan")
        with torch.no_grad():
            torch._foreach_lerp_(self._target, self._online, cfg.tau)
        self.critic_step += 1
        return features, stats

    def _grasp_step(self, batch: Batch, features, next_feat, not_done) -> float:
        cfg = self.config
        chosen = GraspCritic.discretise(batch.action[:, -1])
        with torch.no_grad():
            best_next = self.grasp(next_feat).argmax(-1, keepdim=True)  # double DQN
            q_next = self.grasp_target(next_feat).gather(-1, best_next).squeeze(-1)
            reward = batch.reward + cfg.grasp_penalty * (chosen != GraspCritic.STAY).float()
            target = reward + cfg.discount * not_done * q_next
        q = self.grasp(features).gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
        loss = 0.5 * ((q - target) ** 2).mean()
        self.grasp_opt.zero_grad(set_to_none=True)
        loss.backward()
        self._clip(self.grasp_opt)
        self.grasp_opt.step()
        return float(loss.detach())

    def _actor_step(self, features: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        alpha = self.log_alpha.detach().exp()
        action, logp = self.actor(features, generator=self.train_generator)
        self.critic.requires_grad_(False)  # gradients flow through Q to the action only
        try:
            q = self.critic(features, action).mean(dim=0)
        finally:
            self.critic.requires_grad_(True)
        actor_loss = (alpha * logp - q).mean()
        with self._knob_lock:
            target_entropy = float(cfg.target_entropy)
        logp_const = logp.detach()
        temperature_loss = -(self.log_alpha * (logp_const + target_entropy)).mean()
        # one backward for both losses: they share no parameters (alpha and logp are detached
        # where they cross), so the gradients are those of two separate backward passes
        self.actor_opt.zero_grad(set_to_none=True)
        self.temperature_opt.zero_grad(set_to_none=True)
        (actor_loss + temperature_loss).backward()
        actor_grad = self._clip(self.actor_opt)
        self.actor_opt.step()
        self.temperature_opt.step()
        magnitude = action.detach().abs()
        with torch.no_grad():  # the action without its sampling noise: what collapses (hilserl_ros.learning.watchdog)
            centre = torch.tanh(self.actor.distribution(features.detach())[0]).abs().mean()
        values = torch.stack([actor_loss.detach(), temperature_loss.detach(), self.log_alpha.detach().exp(),
                              -logp_const.mean(), magnitude.mean(), magnitude.std(), centre]).tolist()
        return {
            "actor_loss": values[0],
            "temperature_loss": values[1],
            "alpha": values[2],
            "entropy": values[3],
            "target_entropy": target_entropy,
            "action_abs_mean": values[4],
            "action_abs_std": values[5],
            "policy_mean_abs": values[6],
            "actor_grad_norm": actor_grad,
        }

    def _clip(self, optimizer: torch.optim.Optimizer) -> float:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        max_norm = self.config.grad_clip_norm if self.config.grad_clip_norm > 0 else float("inf")
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    # ------------------------------------------------------------------ live knobs
    def set_target_entropy(self, value: float) -> None:
        with self._knob_lock:
            self.config.target_entropy = float(validate("target_entropy", value))

    def set_temperature(self, value: float) -> None:
        """Reset alpha to ``value`` (and the temperature optimiser's moments)."""
        value = validate("temperature", value)
        with self._knob_lock, torch.no_grad():
            self.log_alpha.fill_(math.log(value))
            self.temperature_opt.state.clear()

    def set_learning_rate(self, which: str, value: float) -> None:
        optimizers = {"actor": [self.actor_opt], "critic": [self.critic_opt] + ([self.grasp_opt] if self.grasp_opt else []),
                      "temperature": [self.temperature_opt]}
        if which not in optimizers:
            raise ValueError(f"learning rate must be one of {sorted(optimizers)}, got {which!r}")
        value = validate("learning_rate", value, f"{which}_lr")
        with self._knob_lock:
            for opt in optimizers[which]:
                for group in opt.param_groups:
                    group["lr"] = value
            setattr(self.config, f"{which}_lr", value)

    def set_discount(self, value: float) -> None:
        with self._knob_lock:
            self.config.discount = float(validate("discount", value))

    def set_tau(self, value: float) -> None:
        with self._knob_lock:
            self.config.tau = float(validate("tau", value))

    def set_utd_ratio(self, value: int) -> None:
        with self._knob_lock:
            self.config.utd_ratio = int(validate("utd_ratio", value))

    def set_batch_size(self, value: int) -> None:
        with self._knob_lock:
            self.config.batch_size = int(validate("batch_size", value))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = {
            "config": self.config.to_dict(),
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "encoder_target": self.encoder_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "temperature_opt": self.temperature_opt.state_dict(),
            "update_step": self.update_step,
            "critic_step": self.critic_step,
            "act_generator": self.act_generator.get_state(),
            "aug_generator": self.aug_generator.get_state(),
            "train_generator": self.train_generator.get_state(),
        }
        if self.grasp is not None:
            state["grasp_target"] = self.grasp_target.state_dict()
            state["grasp_opt"] = self.grasp_opt.state_dict()
        return state

    def check_state_dict(self, state: dict) -> None:
        """ValueError, changing nothing, when ``state`` was made for another network shape."""
        saved = SACConfig.from_dict(state["config"])
        for name in ("obs_dim", "action_dim", "image_keys", "hidden_dims", "num_critics", "grasp_critic", "layer_norm",
                     "backbone", "freeze_encoder", "spatial_features", "spatial_keypoints", "latent_dim"):
            if getattr(saved, name) != getattr(self.config, name):
                raise ValueError(f"checkpoint was made with {name}={getattr(saved, name)}, "
                                 f"this agent has {getattr(self.config, name)}")

    def load_state_dict(self, state: dict) -> None:
        self.check_state_dict(state)
        saved = SACConfig.from_dict(state["config"])
        self.config = saved
        self.policy.config = saved
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.encoder_target.load_state_dict(state["encoder_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.temperature_opt.load_state_dict(state["temperature_opt"])
        if self.grasp is not None:
            self.grasp_target.load_state_dict(state["grasp_target"])
            self.grasp_opt.load_state_dict(state["grasp_opt"])
        self.update_step, self.critic_step = int(state["update_step"]), int(state["critic_step"])
        self.act_generator.set_state(state["act_generator"])
        self.aug_generator.set_state(state["aug_generator"])
        self.train_generator.set_state(state["train_generator"])


def local_weights(path: str) -> str:
    """``path``, or this install's copy of the shipped encoder when ``path`` names the shipped
    file of another install (an actor on another machine gets the learner's path)."""
    from hilserl_ros.vision.pretrain import WEIGHTS

    if not os.path.isfile(path) and os.path.basename(path) == os.path.basename(WEIGHTS):
        return WEIGHTS
    return path


def load_encoder_weights(encoder: ObservationEncoder, path: str) -> None:
    """Load pretrained conv weights from a local safetensors file into each camera's encoder:
    keys ``<camera>.encoder.<name>`` (per camera, as hilserl_ros.vision.pretrain writes them)
    or plain ConvEncoder keys (one encoder for every camera)."""
    tensors = safetensors.torch.load_file(path)
    for key, camera in encoder.cameras.items():
        prefix = f"{key}.encoder."
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not own and any("." in k and k.split(".", 1)[1].startswith("encoder.") for k in tensors):
            raise ValueError(f"{path} has no encoder for camera {key!r} (it has "
                             f"{sorted({k.split('.', 1)[0] for k in tensors})})")
        missing, unexpected = camera.load_state_dict(own or tensors, strict=False)
        if unexpected or missing:
            raise ValueError(f"{path} does not hold ConvEncoder weights (camera {key}): "
                             f"unexpected {unexpected[:5]}, missing {missing[:5]}")
