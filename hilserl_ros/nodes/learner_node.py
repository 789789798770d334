"""SAC learner node (/learner).

Receives transitions (reliable) from any number of actors, validates each one (sizes, finite
values, action in [-1, 1]) and drops bad ones with one log line per kind of fault, keeps an RL
buffer and a demonstration buffer (human interventions go to both, HIL-SERL style), and trains
in its own thread once ``training_starts`` transitions are in. Publishes the policy weights
(safetensors, latched) every ``weight_push_updates`` updates or ``weight_push_period`` seconds,
and LearnerStats every ``stats_period`` updates.

Live parameters (``ros2 param set /learner target_entropy -2.0``): target_entropy, temperature
(resets alpha), actor_lr, critic_lr, temperature_lr, discount, tau, utd_ratio, batch_size,
weight push periods: each applies at the next update; refused values come back with a reason.

No transition stored twice, none lost: transitions are tracked per actor session by sequence
number (a re-sent one already held is counted as a duplicate and dropped) and acknowledged
on /transitions/ack: ``received_seq`` (in memory) a few times a second, ``stored_seq`` (in the
last checkpoint) after each checkpoint. Actors keep what is not yet stored and re-send it
after a learner restart. Checkpoints are written by the training thread from a consistent
snapshot (buffers and sequence numbers taken together), so what a checkpoint says it holds is
exactly what it holds.

Observations: the learner reads the same description as the actor (``task`` and
``observation`` in config/observation/<task>.yaml) and refuses transitions built with another
(their ``observation_spec`` fingerprint), with the reason. With cameras, each frame is stored
once per buffer (hilserl_ros.learning.pairing), the buffers' memory is bounded by
``image_buffer_gb`` (the capacity is cut to fit, and the log says so), and with a frozen
encoder (``encoder``: a pretrained backbone by default) each frame's feature map is computed
once, on arrival, and kept instead of the frame: training runs the spatial heads on the kept
maps and never reads the pixels again. ``device`` puts the networks on a GPU.

Watchdog (the field report; hilserl_ros.learning.watchdog): alpha below ``alpha_floor`` and the
policy's action without its noise, mean |tanh(mu)|, below ``action_floor`` for ``watchdog_window``
consecutive statistics -> one warning naming alpha, the entropy against its target, and the knob
that moves alpha there (target_entropy only where the entropy is at its target, else a lower
temperature); the condition stays flagged in LearnerStats.alpha_collapse while it lasts.
"""
from __future__ import annotations

import array
import collections
import os
import queue
import threading
import time

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node

from hilserl_ros import topics
from hilserl_ros.learning import checkpoint
from hilserl_ros.learning.buffers import ReplayBuffer, sample_mixed
from hilserl_ros.learning.link import SequenceTracker, sequence_error
from hilserl_ros.learning.pairing import FramePairer, Step
from hilserl_ros.learning.config import (
    DEFAULT_ENCODER, KNOB_RANGES, SACConfig, camera_encoder_config, device_error, encoder_error)
from hilserl_ros.learning.sac import SACAgent, sha256
from hilserl_ros.learning.watchdog import CollapseWatchdog
from hilserl_ros.msg import EpisodeStats, LearnerStats, PolicyWeights, Transition, TransitionAck
from hilserl_ros.observation import ACTION_DIM, load_observation
from hilserl_ros.vision.ros_image import msg_to_rgb8
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare, observation_params
from hilserl_ros.ros.runner import run_node, shutting_down, start_worker
from hilserl_ros.ros.validation import DropCounter, non_finite, saturating, worth_telling
from hilserl_ros.srv import SaveCheckpoint


def _knob(name, default, description, knob=None, **kw):
    low, high = KNOB_RANGES[knob or name]
    return ParamSpec(name, default, description, min=low, max=high, **kw)


PARAMS = [
    # the knobs that decide whether it learns (live)
    _knob("target_entropy", -ACTION_DIM / 2.0, "SAC entropy target; HIL-SERL default -action_dim/2", unit="nats"),
    _knob("temperature", 1e-2, "setting it resets alpha to this value (temperature_init at start)"),
    _knob("actor_lr", 3e-4, "actor learning rate", "learning_rate"),
    _knob("critic_lr", 3e-4, "critic learning rate", "learning_rate"),
    _knob("temperature_lr", 3e-4, "temperature learning rate", "learning_rate"),
    _knob("discount", 0.97, "discount factor"),
    _knob("tau", 0.005, "target network update rate"),
    _knob("utd_ratio", 2, "critic updates per actor update"),
    _knob("batch_size", 256, "batch size"),
    ParamSpec("training_starts", 300, "transitions before the first update", min=1, max=1_000_000),
    ParamSpec("updates_per_transition", 1.0, "cap on updates per received transition (0 = train flat out; "
              "a cap keeps a 2-core machine free for the simulation)", min=0.0, max=100.0),
    ParamSpec("weight_push_updates", 50, "publish weights every N updates", min=1, max=100000),
    ParamSpec("weight_push_period", 2.0, "... or every this many seconds, whichever first", min=0.1, max=600.0,
              unit="s"),
    ParamSpec("stats_period", 10, "publish LearnerStats every K updates", min=1, max=10000),
    # watchdog
    ParamSpec("alpha_floor", 0.02, "watchdog: alpha below this ...", min=0.0, max=10.0),
    ParamSpec("action_floor", 0.1, "... and mean |action| below this ...", min=0.0, max=1.0),
    ParamSpec("watchdog_window", 20, "... for this many consecutive statistics messages", min=1, max=10000),
    # fixed at start
    *observation_params("which observation of that file (state | pixels): the actor's"),
    ParamSpec("encoder", DEFAULT_ENCODER, "camera encoder: a pretrained backbone "
              "(efficientnet-lite0:<stage1..7|head>, packaged ImageNet weights; resnet10:<path to model.safetensors>) "
              "with a spatial head per camera trained by the critic; so101: the encoder trained on the simulated "
              "cell's labels; scratch: a small conv net trained by the critic", read_only=True,
              validator=encoder_error),
    ParamSpec("spatial_features", 8, "backbone encoders: learned spatial kernels per channel of the map "
              "(HIL-SERL's SpatialLearnedEmbeddings)", min=1, max=64, read_only=True),
    ParamSpec("spatial_keypoints", 0, "backbone encoders: spatial-softmax keypoints beside the embeddings (0: none)",
              min=0, max=256, read_only=True),
    ParamSpec("head_dropout", 0.1, "backbone encoders: dropout of the embeddings before their projection",
              min=0.0, max=0.9, read_only=True),
    ParamSpec("pretrained_encoder", "", "encoder so101 only: its weights (safetensors); empty = the shipped file "
              "(hilserl_ros/vision/weights)", read_only=True),
    ParamSpec("freeze_encoder", True, "keep the backbone (or so101 encoder) fixed and cache each frame's feature "
              "map (HIL-SERL); false fine-tunes it end to end with the critic and DrQ shifts (for a GPU)",
              read_only=True),
    ParamSpec("device", "cpu", "where the learner's networks train: cpu, cuda or cuda:<index> (the actor acts "
              "on the CPU with the weights it is sent)", read_only=True, validator=device_error),
    ParamSpec("image_buffer_gb", 12.0, "memory bound of both buffers with cameras; capacities are cut to fit. "
              "A frozen encoder keeps each frame's feature map, not the frame (efficientnet-lite0:stage7, 4x4x320, float16: "
              "10 KiB per camera: 200k + 100k transitions of two cameras take 7.7 GB); a trained one keeps the "
              "uint8 frames (48 KiB per camera: 36.9 GB for the same)", min=0.1, max=1024.0, read_only=True,
              unit="GB"),
    ParamSpec("action_dim", ACTION_DIM, "action size (EE xyz + gripper)", min=1, max=64, read_only=True),
    ParamSpec("hidden_dims", [256, 256], "MLP widths", read_only=True),
    ParamSpec("num_critics", 2, "critic ensemble size", min=1, max=10, read_only=True),
    ParamSpec("grasp_critic", False, "discrete grasp critic decides the gripper (close/stay/open); the actor "
              "outputs x, y, z only", read_only=True),
    ParamSpec("use_backup_entropy", False, "add the entropy bonus to the critic's targets (LeRobot's default true; "
              "HIL-SERL false: with a sparse reward it can pay more to stay random than to finish, measured in "
              "bench/results/entropy_collapse.json)", read_only=True),
    ParamSpec("grasp_penalty", -0.02, "reward the grasp critic gets for each close or open command", min=-1.0,
              max=0.0),
    ParamSpec("rl_capacity", 200_000, "RL buffer capacity (transitions, FIFO)", min=100, max=10_000_000,
              read_only=True),
    ParamSpec("demo_capacity", 100_000, "demonstration buffer capacity", min=100, max=10_000_000, read_only=True),
    ParamSpec("checkpoint_dir", "runs/checkpoints", "where checkpoints are written", read_only=True),
    ParamSpec("ack_rate", 2.0, "acknowledgements of received transitions per second", min=0.1, max=50.0,
              unit="Hz"),
    ParamSpec("checkpoint_period", 60.0, "seconds between checkpoints (0 = only on request)", min=0.0,
              max=86400.0, unit="s"),
    ParamSpec("demo_bags", "", "comma-separated rosbag2 directories (or folders of them) whose /transitions "
              "are preloaded into the demonstration buffer at start", read_only=True),
    ParamSpec("demo_interventions_only", False, "preload only the steps the operator drove (a recorded "
              "demonstration's idle steps are part of it, so all by default)", read_only=True),
    ParamSpec("resume", True, "load the newest intact checkpoint at start", read_only=True),
    ParamSpec("seed", 0, "random seed", read_only=True),
    ParamSpec("torch_threads", 1, "CPU threads for the updates", min=1, max=64, read_only=True),
]
CHECKPOINT_NAME = "learner.pt"


class LearnerNode(Node):
    def __init__(self, **node_options):
        super().__init__("learner", **node_options)
        import torch

        self.params = declare(self, PARAMS)
        torch.set_num_threads(self.params["torch_threads"])
        p = self.params
        for name, check in (("device", device_error), ("encoder", encoder_error)):
            reason = check(p[name])
            if reason:  # read-only: a bad value can only come from the start, and must stop it
                raise ValueError(f"parameter {name}: {reason}")
        self.observation = load_observation(p["task"], p["observation"], p["observation_file"] or None)
        self.config = SACConfig(
            obs_dim=self.observation.obs_dim, action_dim=p["action_dim"], hidden_dims=tuple(p["hidden_dims"]),
            num_critics=p["num_critics"], grasp_critic=p["grasp_critic"], discount=p["discount"], tau=p["tau"],
            actor_lr=p["actor_lr"], critic_lr=p["critic_lr"], temperature_lr=p["temperature_lr"],
            temperature_init=p["temperature"], target_entropy=p["target_entropy"], utd_ratio=p["utd_ratio"],
            batch_size=p["batch_size"], grasp_penalty=p["grasp_penalty"], seed=p["seed"],
            use_backup_entropy=p["use_backup_entropy"],
            **self._image_config())
        self.agent = SACAgent(self.config, p["device"])
        self.rl, self.demo = self._make_buffers()
        self.pairer = FramePairer()
        self.drops = DropCounter(self.get_logger(), "transition")
        self.arrived = 0  # every transition message: = received + duplicates + dropped (self.drops.total)
        self.received = 0
        self.duplicates = 0
        self.late_steps = 0  # transitions flagged command_late: accepted, not trained on
        self.links: dict[tuple[str, int], SequenceTracker] = {}  # (actor_id, session) -> what we hold
        self.stored: dict[tuple[str, int], int] = {}  # ... -> contiguous seq in the last checkpoint
        self.start_ns = time.time_ns()
        self._ingest_lock = threading.Lock()  # buffers and sequence numbers change together
        self._save_requests: queue.Queue = queue.Queue()
        self.episodes = 0
        self._wire_knobs()

        self.weights_pub = self.create_publisher(PolicyWeights, topics.POLICY_WEIGHTS, qos.LATCHED)
        self.stats_pub = self.create_publisher(LearnerStats, topics.LEARNER_STATS, qos.EVENTS)
        self.create_subscription(Transition, topics.TRANSITIONS, self._on_transition, qos.TRANSITIONS)
        self.create_subscription(EpisodeStats, topics.EPISODE_STATS, self._on_episode, qos.EVENTS)
        self.create_service(SaveCheckpoint, topics.SAVE_CHECKPOINT, self._on_save)
        self.ack_pub = self.create_publisher(TransitionAck, topics.TRANSITION_ACKS, qos.EVENTS)
        self.ack_timer = self.create_timer(1.0 / self.params["ack_rate"], self._publish_acks,
                                           clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.params.bind_rate("ack_rate", self.ack_timer)

        self.stats: dict[str, float] = {}
        self.watchdog = CollapseWatchdog(self.params["alpha_floor"], self.params["action_floor"],
                                         self.params["watchdog_window"])
        self.alpha_collapse = False
        self._last_warning = ""
        self._rate_window: collections.deque = collections.deque(maxlen=50)
        self._last_push = 0.0
        self._last_checkpoint = time.monotonic()
        self.demo_bags_loaded: list[str] = []
        self._resume()
        self._preload_demonstrations()
        self._publish_weights()
        self._stop = threading.Event()
        self._last_stats = time.monotonic()
        self._stats_step = self.agent.update_step
        # until training publishes its own, LearnerStats say what the learner holds once a second
        self.create_timer(1.0, self._publish_waiting_stats, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._trainer = start_worker(self, self._train_loop, "trainer")  # its death is the node's

    # ------------------------------------------------------------------ parameters
    def _wire_knobs(self) -> None:
        a = self.agent
        self.params.on_change("target_entropy", a.set_target_entropy)
        self.params.on_change("temperature", a.set_temperature)
        for which in ("actor", "critic", "temperature"):
            self.params.on_change(f"{which}_lr", lambda v, w=which: a.set_learning_rate(w, v))
        self.params.on_change("discount", a.set_discount)
        self.params.on_change("tau", a.set_tau)
        self.params.on_change("utd_ratio", a.set_utd_ratio)
        self.params.on_change("batch_size", a.set_batch_size)
        self.params.on_change("grasp_penalty", lambda v: setattr(a.config, "grasp_penalty", float(v)))

    def _image_config(self) -> dict:
        p = self.params
        fields = camera_encoder_config(self.observation, p["encoder"], p["pretrained_encoder"], p["freeze_encoder"])
        if fields.get("backbone"):
            fields.update(spatial_features=p["spatial_features"], spatial_keypoints=p["spatial_keypoints"],
                          head_dropout=p["head_dropout"])
        return fields

    def _make_buffers(self) -> tuple[ReplayBuffer, ReplayBuffer]:
        p, spec = self.params, self.observation
        shapes = spec.image_shapes or None
        rl_capacity, demo_capacity = p["rl_capacity"], p["demo_capacity"]
        extra = {}
        if shapes:
            # frozen encoder: training reads each frame's cached features only, so only they are kept
            if self.config.freeze_encoder:
                extra = dict(featurize=self.agent.encoder.camera_features, feature_dim=self.agent.encoder.cache_dim,
                             feature_dtype=self.agent.encoder.cache_dtype, keep_frames=False)
            sizes = dict(image_shapes=shapes, feature_dim=extra.get("feature_dim", 0),
                         keep_frames=extra.get("keep_frames", True), feature_dtype=extra.get("feature_dtype", "f4"))

            def need(rl: int, demo: int) -> float:
                return sum(ReplayBuffer.bytes_needed(n, spec.obs_dim, p["action_dim"], **sizes) for n in (rl, demo))

            wanted, budget = need(rl_capacity, demo_capacity), p["image_buffer_gb"] * 1e9
            if wanted > budget:  # both capacities cut in proportion, RL : demo as configured
                scale = budget / wanted
                cut_rl, cut_demo = max(100, int(rl_capacity * scale)), max(100, int(demo_capacity * scale))
                self.get_logger().warning(
                    f"buffers of {rl_capacity} + {demo_capacity} transitions with cameras {list(spec.image_keys)} "
                    f"({'frames' if sizes['keep_frames'] else 'encoder features'}) would take {wanted / 1e9:.1f} GB, "
                    f"over image_buffer_gb={p['image_buffer_gb']:g}: capacities cut to {cut_rl} + {cut_demo}")
                rl_capacity, demo_capacity = cut_rl, cut_demo
        rl = ReplayBuffer(rl_capacity, spec.obs_dim, p["action_dim"], shapes, seed=p["seed"], **extra)
        demo = ReplayBuffer(demo_capacity, spec.obs_dim, p["action_dim"], shapes, seed=p["seed"] + 1, **extra)
        if shapes:
            self.get_logger().info(
                f"observation {spec.fingerprint}: cameras {list(spec.image_keys)}, buffers {rl_capacity} + "
                f"{demo_capacity} transitions, {(rl.nbytes + demo.nbytes) / 1e9:.2f} GB reserved"
                + (" (frozen encoder: each frame's features kept, computed once on arrival; the frames "
                   "themselves are not kept)" if extra else " (uint8 frames, each stored once)"))
        return rl, demo

    # ------------------------------------------------------------------ inputs
    def _on_transition(self, msg: Transition) -> None:
        self.arrived += 1
        reason = self._invalid(msg)
        if reason:
            self.drops.drop(reason)
            return
        try:
            step = self._step_of(msg)
        except ValueError as err:
            self.drops.drop(f"camera frame: {err}")
            return
        with self._ingest_lock:
            key = (msg.actor_id, msg.session)
            tracker = self.links.get(key)
            reason = sequence_error(msg.seq, msg.session, tracker, len(self.links))
            if reason:
                self.drops.drop(reason)
                return
            if tracker is None:
                tracker = self.links[key] = SequenceTracker()
            if not tracker.accept(msg.seq):
                self.duplicates += 1  # re-sent after a restart or a stall: we have it already
                return
            # HIL-SERL: interventions are demonstrations too. A step whose action missed its
            # simulated period goes into no buffer (its frames still complete the step before)
            self._store(key, step, self._buffers_for(msg, (self.rl, self.demo) if msg.is_intervention else (self.rl,)))
            self.received += 1

    def _step_of(self, msg: Transition) -> Step:
        images = {c.name: msg_to_rgb8(m) for c, m in zip(self.observation.cameras, msg.images)}
        next_images = ({c.name: msg_to_rgb8(m) for c, m in zip(self.observation.cameras, msg.next_images)}
                       if msg.next_images else None)
        return Step(msg.seq, msg.episode, np.asarray(msg.observation, np.float32), np.asarray(msg.action, np.float32),
                    float(msg.reward), np.asarray(msg.next_observation, np.float32), bool(msg.terminated),
                    bool(msg.is_intervention), images, next_images)

    def _buffers_for(self, msg: Transition, buffers: tuple) -> tuple:
        if not getattr(msg, "command_late", False):  # (a bag recorded before the flag has none)
            return buffers
        self.late_steps += 1
        if worth_telling(self.late_steps):
            self.get_logger().warning(f"{self.late_steps} step(s) flagged command_late so far (the simulation ran "
                                      f"their period without their action): kept out of the buffers")
        return ()

    def _store(self, key, step: Step, buffers: tuple) -> None:
        if not self.observation.cameras:
            for buffer in buffers:
                buffer.add(step.obs, step.action, step.reward, step.next_obs, step.terminated, step.is_intervention)
            return
        self.pairer.add(key, step, buffers)

    def _held_state(self, key, tracker: SequenceTracker) -> dict:
        """The tracker's state as a checkpoint may claim it: without the seqs not yet held."""
        unheld = self.pairer.unheld(key)
        if not unheld:
            return tracker.state()
        held = self._held(key, tracker)
        above = (set(range(held + 1, tracker.contiguous + 1)) | tracker.above) - unheld
        return {"contiguous": held, "above": sorted(above)}

    def _held(self, key, tracker: SequenceTracker) -> int:
        """Every seq up to this is in a buffer: a transition waiting for its successor's frames
        is accepted but not held, so it is neither acknowledged nor checkpointed as held."""
        unheld = self.pairer.unheld(key)
        return min(tracker.contiguous, min(unheld) - 1) if unheld else tracker.contiguous

    def _publish_acks(self) -> None:
        if not self.context.ok():
            return  # the context is gone (a node spun by someone else): nobody to tell
        with self._ingest_lock:
            marks = [(key, self._held(key, tracker)) for key, tracker in self.links.items()]
        stamp = self.get_clock().now().to_msg()
        for (actor_id, session), received in marks:
            ack = TransitionAck(actor_id=actor_id, session=session, received_seq=received,
                                stored_seq=self.stored.get((actor_id, session), 0), learner_start=self.start_ns)
            ack.header.stamp = stamp
            self.ack_pub.publish(ack)

    def _invalid(self, msg: Transition) -> str | None:
        spec, action_dim = self.observation, self.params["action_dim"]
        if msg.observation_spec != spec.fingerprint:
            return (f"observation {msg.observation_spec or '(none given)'} is not the learner's {spec.fingerprint}: "
                    f"actor and learner must use the same task and observation (config/observation)")
        if len(msg.actor_id) > 256:
            return f"actor_id of {len(msg.actor_id)} characters (at most 256)"
        obs_dim = spec.obs_dim
        if len(msg.observation) != obs_dim or len(msg.next_observation) != obs_dim:
            return f"observation has {len(msg.observation)}/{len(msg.next_observation)} values, expected {obs_dim}"
        if len(msg.action) != action_dim:
            return f"action has {len(msg.action)} values, expected {action_dim}"
        cameras = len(spec.cameras)
        if len(msg.images) != cameras or len(msg.next_images) not in ((0, cameras) if cameras else (0,)):
            return (f"{len(msg.images)}/{len(msg.next_images)} camera frames, expected {cameras} "
                    f"({list(spec.image_keys)}; next frames only on an episode's last step)")
        if cameras and (msg.terminated or msg.truncated) and not msg.next_images:
            return "an episode's last transition must carry the frames of s_{t+1} (next_images)"
        for camera, frame in zip(list(spec.cameras) * 2, list(msg.images) + list(msg.next_images)):
            if (frame.height, frame.width) != (camera.size, camera.size):
                return f"camera {camera.name}: frame {frame.width}x{frame.height}, expected {camera.size}x{camera.size}"
        for name, values in (("observation", msg.observation), ("next_observation", msg.next_observation),
                             ("action", msg.action), ("reward", [msg.reward])):
            reason = non_finite(name, values)
            if reason:
                return reason
        if np.max(np.abs(msg.action)) > 1.0 + 1e-6:
            return "action outside [-1, 1] (actions are normalised before action_scale)"
        return None

    def _on_episode(self, msg: EpisodeStats) -> None:
        self.episodes += 1
        self.get_logger().info(
            f"[LEARNER] Episode {msg.episode} | step={msg.total_steps} | reward={msg.reward:.2f} | "
            f"intervention={100.0 * msg.intervention_rate:.1f}% | success={'yes' if msg.success else 'no'} | "
            f"alpha={self.agent.alpha:.3f} | buffers rl={len(self.rl)} demo={len(self.demo)}")

    # ------------------------------------------------------------------ training
    def _train_loop(self) -> None:
        while not self._stop.is_set():
            self._serve_save_requests()
            cap = self.params["updates_per_transition"]
            ready = len(self.rl) >= self.params["training_starts"]
            allowed = cap == 0 or self.agent.update_step < cap * max(0, self.received - self.params["training_starts"] + 1)
            if not (ready and allowed):
                self._stop.wait(0.01)
                continue
            start = time.monotonic()
            stats = self.agent.update(lambda n: sample_mixed(self.rl, self.demo, n))
            self._rate_window.append(time.monotonic() - start)
            self.stats = stats
            step = self.agent.update_step
            now = time.monotonic()
            try:
                if step % self.params["stats_period"] == 0:
                    self._publish_stats(stats)
                if (step % self.params["weight_push_updates"] == 0
                        or now - self._last_push >= self.params["weight_push_period"]):
                    self._publish_weights()
            except RCLError:
                if self.context.ok():
                    raise
                return  # shutting down (Ctrl-C reached the context first): close() checkpoints
            period = self.params["checkpoint_period"]
            if period > 0 and now - self._last_checkpoint >= period:
                self.save_checkpoint()

    def _publish_weights(self) -> None:
        data, meta = self.agent.policy.to_bytes(self.agent.update_step)
        msg = PolicyWeights(version=self.agent.update_step, format="safetensors", metadata_json=meta,
                            sha256=sha256(data))
        msg.data = array.array("B", data)  # an array is taken as is; bytes are checked one by one
        msg.header.stamp = self.get_clock().now().to_msg()
        self.weights_pub.publish(msg)
        self._last_push = time.monotonic()

    def _publish_stats(self, stats: dict) -> None:
        """LearnerStats after an update (``stats`` of that update) or, before the first and while
        training waits for data, without one (``stats`` empty: losses NaN, rate 0)."""
        if stats:
            self._watchdog(stats)
        rate = len(self._rate_window) / sum(self._rate_window) if self._rate_window and stats else 0.0
        msg = LearnerStats(
            update_step=saturating(self.agent.update_step), transitions_received=saturating(self.received),
            transitions_dropped=saturating(self.drops.total), sequence_gaps=saturating(self._gaps()),
            transitions_duplicate=saturating(self.duplicates), utd_ratio=saturating(self.agent.config.utd_ratio, 32),
            discount=float(self.agent.config.discount), updates_per_second=float(rate),
            rl_buffer_size=saturating(len(self.rl)), demo_buffer_size=saturating(len(self.demo)),
            alpha_collapse=self.alpha_collapse, warning=self._warning_text(stats))
        if not stats:
            target = self.agent.config.target_entropy
            stats = {"alpha": self.agent.alpha, "target_entropy": float("nan") if target is None else target}
        else:
            self._stats_step = self.agent.update_step
        for key in ("alpha", "entropy", "target_entropy", "critic_loss", "actor_loss", "temperature_loss",
                    "grasp_critic_loss", "q_mean", "critic_grad_norm", "actor_grad_norm", "action_abs_mean",
                    "action_abs_std", "policy_mean_abs"):
            setattr(msg, key, float(stats.get(key, float("nan"))))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.stats_pub.publish(msg)
        self._last_stats = time.monotonic()

    def _publish_waiting_stats(self) -> None:
        # only while no update happens (before the first, or waiting for data): never between
        # the training thread's own, which carry the losses
        idle = self.agent.update_step == self._stats_step and time.monotonic() - self._last_stats >= 1.0
        if idle and self.context.ok():
            self._publish_stats({})

    def _warning_text(self, stats: dict) -> str:
        """The watchdog's warning while a collapse is flagged (without an update's statistics,
        the last one's)."""
        if not self.alpha_collapse:
            self._last_warning = ""
        elif stats:
            self._last_warning = self._collapse_text(stats)
        return self._last_warning

    def _collapse_text(self, stats: dict) -> str:
        return self.watchdog.warning(stats, self.params["action_dim"], float(self.agent.config.discount))

    def _watchdog(self, stats: dict) -> None:
        watchdog = self.watchdog  # its floors and window are live parameters
        watchdog.alpha_floor, watchdog.action_floor = self.params["alpha_floor"], self.params["action_floor"]
        watchdog.window = self.params["watchdog_window"]
        event = watchdog.observe(stats, update=self.agent.update_step)
        self.alpha_collapse = watchdog.collapse
        if event == "fired":
            self.get_logger().warning(self._collapse_text(stats))
        elif event == "cleared":
            self.get_logger().info(f"alpha collapse over: alpha={stats['alpha']:.4f}, the policy's mean action "
                                   f"|tanh(mu)|={stats['policy_mean_abs']:.3f}")

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, directory: str | None = None) -> str:
        return os.path.join(directory or self.params["checkpoint_dir"], CHECKPOINT_NAME)

    def _gaps(self) -> int:
        with self._ingest_lock:
            return sum(t.missing for t in self.links.values())

    def save_checkpoint(self, directory: str | None = None) -> str:
        """Write a checkpoint; only from the training thread (or once it has stopped), which owns
        the networks. Buffers and sequence numbers are snapshot together under the ingest lock."""
        with self._ingest_lock:
            buffers = {"rl": self.rl.state_dict(), "demo": self.demo.state_dict()}
            links = [{"actor_id": a, "session": s, **self._held_state((a, s), t)} for (a, s), t in self.links.items()]
            extra = {"received": self.received, "duplicates": self.duplicates, "links": links,
                     "episodes": self.episodes, "demo_bags_loaded": list(self.demo_bags_loaded)}
        state = {"agent": self.agent.state_dict(), "buffers": buffers, "extra": extra}
        path = checkpoint.save_atomic(state, self.checkpoint_path(directory))
        if directory is None or os.path.abspath(directory) == os.path.abspath(self.params["checkpoint_dir"]):
            # what resume will load: the actors may now forget these
            self.stored = {(link["actor_id"], link["session"]): link["contiguous"] for link in links}
            self._publish_acks()
        self._last_checkpoint = time.monotonic()
        return path

    def _serve_save_requests(self) -> None:
        while True:
            try:
                directory, done = self._save_requests.get_nowait()
            except queue.Empty:
                return
            try:
                done["path"] = self.save_checkpoint(directory)
            except OSError as err:
                done["error"] = err
            done["event"].set()

    def _resume(self) -> None:
        if not self.params["resume"]:
            return
        path = checkpoint.newest_intact(self.params["checkpoint_dir"])
        if path is None:
            return
        try:
            extra = checkpoint.restore_training_state(path, self.agent, {"rl": self.rl, "demo": self.demo})
        except ValueError as err:
            # made for another task, observation or buffer (refused before anything is loaded):
            # a learner that crashed on it would be respawned into the same crash for ever
            aside = f"{path}.incompatible-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(path, aside)
            self.get_logger().warning(
                f"not resumed: {path} does not fit this learner ({err}); it is kept as {aside} and "
                f"training starts afresh. Give each task its own checkpoint_dir to keep both.")
            return
        self.received = int(extra.get("received", len(self.rl)))
        self.duplicates = int(extra.get("duplicates", 0))
        for link in extra.get("links", []):
            key = (str(link["actor_id"]), int(link["session"]))
            self.links[key] = SequenceTracker.from_state(link)
            self.stored[key] = self.links[key].contiguous
        self.episodes = int(extra.get("episodes", 0))
        self.demo_bags_loaded = [str(p) for p in extra.get("demo_bags_loaded", [])]
        self.get_logger().info(f"resumed from {path}: update {self.agent.update_step}, {len(self.rl)} RL and "
                               f"{len(self.demo)} demo transitions, alpha {self.agent.alpha:.4f}")

    def _preload_demonstrations(self) -> None:
        """Transitions from recorded bags into the demo buffer, each bag once (a resumed
        checkpoint already holds the bags it had loaded)."""
        from hilserl_ros.recording.bag import bag_dirs, read_messages
        from hilserl_ros.recording.types import shared_types

        wanted = [p.strip() for p in self.params["demo_bags"].split(",") if p.strip()]
        if not wanted:
            return
        types = shared_types()
        for bag in bag_dirs(wanted):  # a wrong path stops the learner at start, with the path
            key = os.path.abspath(bag)
            if key in self.demo_bags_loaded:
                self.get_logger().info(f"demonstrations of {bag} already in the buffer (checkpoint)")
                continue
            added = refused = 0
            for message in read_messages([bag], topics=[topics.TRANSITIONS]):
                msg = types.decode(message)
                if self.params["demo_interventions_only"] and not msg.is_intervention:
                    continue
                reason = self._invalid(msg)
                if not reason:
                    try:
                        step = self._step_of(msg)
                    except ValueError as err:
                        reason = f"camera frame: {err}"
                if reason:
                    self.drops.drop(f"demonstration from {bag}: {reason}")
                    refused += 1
                    continue
                self._store((key, msg.actor_id, msg.session), step, self._buffers_for(msg, (self.demo,)))
                added += 1
            self.demo_bags_loaded.append(key)
            self.get_logger().info(f"preloaded {added} demonstration transitions from {bag}"
                                   + (f" ({refused} refused)" if refused else "") + f"; demo buffer {len(self.demo)}")

    def _on_save(self, request: SaveCheckpoint.Request, response: SaveCheckpoint.Response):
        # the training thread writes it (it owns the networks); this thread waits for it, in
        # slices, so a shutdown or a dead training thread ends the wait (and never blocks the
        # executor: Ctrl-C must reach the node)
        done = {"event": threading.Event()}
        self._save_requests.put((request.path or None, done))
        deadline = time.monotonic() + 120.0
        while not done["event"].wait(timeout=0.2):
            if not self._trainer.is_alive():
                done["error"] = "the training thread is not running (see the log)"
                break
            if shutting_down(self) or time.monotonic() > deadline:
                done["error"] = ("the learner is shutting down" if shutting_down(self)
                                 else "the training thread did not answer within 120 s")
                break
        if "error" in done:
            why = done["error"]
            response.success, response.message = False, f"could not write checkpoint: {why}"
            return response
        response.success, response.written_path = True, done["path"]
        response.message = f"update {self.agent.update_step}, {len(self.rl)} transitions"
        return response

    def close(self) -> None:
        self._stop.set()
        self._trainer.join(timeout=30)
        if self.received:
            path = self.save_checkpoint()
            self.get_logger().info(f"final checkpoint: {path}")


def main():
    return run_node(LearnerNode)


if __name__ == "__main__":
    raise SystemExit(main())
