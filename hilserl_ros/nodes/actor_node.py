"""SAC actor node (/actor).

At ``control_rate`` (10 Hz; simulated time when use_sim_time is set) it builds the observation
(joints, EE position, goal), picks an action (the human's while an Intervention is active,
else the policy's), publishes the EE command, and sends the transition of the previous step
to the learner (reliable, numbered ``seq`` from 1). Episodes end on task success, on the
operator's success/failure buttons, or after ``max_episode_steps``; the next one starts after
the simulation's reset service answered. On the real arm (``use_sim`` false) the task node
(/task) is the task source behind the same topic: it reads the buttons and the reward
classifier, so the actor takes success and failure from its TaskState only; after an episode
the actor calls /task/reset (the arm goes home, the next episode starts on START) and acts
again once the next episode's task state comes.

No transition is lost when the learner dies or restarts: each is also written to a spool on
disk (``spool_dir``/<actor_id>) and kept until the learner acknowledges it as checkpointed
(/transitions/ack); when the learner's acknowledged sequence stops advancing while it is
alive (it came back from a restart, or a message went missing), the actor re-sends from
there, ``resend_batch`` per tick, without ever pausing control: while the learner is away it
keeps acting with its last weights. A restarted actor re-sends what its previous session left.

Observation: the description ``observation`` of config/observation/<task>.yaml, read by the
learner too (each transition carries its fingerprint). With cameras, the actor subscribes
each camera's topic (sensor_msgs/Image, or CompressedImage on a .../compressed topic), crops
and resizes the newest frame as configured (uint8), and steps only with a frame of every
camera from the same control step: under lockstep, stamped at or after the boundary; else no
older than the camera's ``max_age`` next to the joint state (a stale frame is counted and the
step waits: no acting blind). Frames cross the wire once (see Transition.msg), and what the
policy sees is republished on /actor/view/<camera> for Foxglove and RViz.

New weights (safetensors, sha256-checked) are applied the moment they arrive, between two
control steps, not only at episode end. Until the first weights arrive the arm holds still (and no
step is taken unless ``act_without_weights``: recording demonstrations without a learner).
Log line per episode: ``[ACTOR] Episode 1 done | step=150 | reward=0.85``.

In simulation with ``lockstep`` the steps follow the simulation instead of a timer: simulated
time stops at each period boundary (sim_node), and the actor steps once per boundary task
state, as soon as the joint state and EE pose read at that instant (stamped at or after it)
and the scripted operator's decision on it are in. Observation, reward and the action's
effect are then those of one period, as in the ROS-free env.
"""
from __future__ import annotations

import collections
import os
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from hilserl_ros import topics
from hilserl_ros.learning.link import TransitionSpool
from hilserl_ros.learning.sac import Policy, sha256
from hilserl_ros.msg import (
    EndEffectorCommand,
    EpisodeEvent,
    EpisodeStats,
    Intervention,
    PolicyWeights,
    TaskState,
    Transition,
    TransitionAck,
)
from hilserl_ros.observation import ACTION_DIM, load_observation
from hilserl_ros.vision.ros_image import to_image_msg
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare, observation_params
from hilserl_ros.ros.messages import joint_positions, seconds as _seconds, subscribe_camera
from hilserl_ros.ros.runner import run_node
from hilserl_ros.ros.validation import DropCounter, worth_telling

RESET_REPLY_GRACE = 2.0  # s without a reset reply before the next episode's task state may stand in for it
RESET_WAIT_WARNING = 10.0  # s of neither before the wait is logged

PARAMS = [
    ParamSpec("control_rate", 10.0, "policy steps per second", min=1.0, max=100.0, unit="Hz"),
    ParamSpec("max_episode_steps", 100, "steps before an episode is cut (truncated)", min=1, max=100000),
    ParamSpec("use_sim", True, "episodes reset through the simulation's reset service", read_only=True),
    ParamSpec("actor_id", "actor", "name carried by this actor's transitions", read_only=True),
    ParamSpec("deterministic", False, "act with the policy mean (evaluation) instead of sampling"),
    ParamSpec("intervention_timeout", 0.5, "an intervention message older than this is ignored", min=0.05,
              max=5.0, unit="s"),
    ParamSpec("seed", 0, "seed of the action sampling", read_only=True),
    ParamSpec("spool_dir", "runs/spool", "transitions wait here until the learner has them in a checkpoint",
              read_only=True),
    ParamSpec("spool_max_mb", 2048, "disk bound of the spool (past it the oldest are dropped, and said so)",
              min=1, max=1_000_000, read_only=True, unit="MiB"),
    ParamSpec("resend_after", 1.0, "re-send once the learner's acknowledgement has not advanced this long",
              min=0.1, max=60.0, unit="s"),
    ParamSpec("resend_batch", 200, "transitions re-sent per tick (5 ticks a second)", min=1, max=10000),
    ParamSpec("lockstep", False, "step on the simulation's period boundaries (the sim's lockstep), not a timer",
              read_only=True),
    ParamSpec("operator_wait", 0.5, "lockstep: how long (wall) a step waits for the operator's decision on its "
              "state; an operator that decides less often than control_rate costs this on each step it skips",
              min=0.0, max=5.0, unit="s"),
    *observation_params("which observation of that file: state (simulation only) | pixels"),
    ParamSpec("act_without_weights", False, "step before any weights arrived, holding still unless the operator "
              "drives (recording demonstrations without a learner)", read_only=True),
    ParamSpec("wait_for_operator", False, "the first step waits for an operator publishing on /intervention "
              "(recording demonstrations: steps before the operator is up would be the arm holding still, "
              "recorded as demonstrations)", read_only=True),
]


class ActorNode(Node):
    def __init__(self, **node_options):
        super().__init__("actor", **node_options)
        import torch

        torch.set_num_threads(1)
        self.params = declare(self, PARAMS)
        self.spec = load_observation(self.params["task"], self.params["observation"],
                                     self.params["observation_file"] or None)
        self.spec.check_world(self.params["use_sim"])
        self.frames: dict[str, tuple[np.ndarray, float]] = {}  # camera -> (policy's view, stamp s)
        self.stale_frames = 0
        self.late_periods = 0  # lockstep periods that ran without their command: sent flagged
        self.generator = torch.Generator().manual_seed(self.params["seed"])
        self.policy: Policy | None = None
        self.policy_version = -1
        self.joints: np.ndarray | None = None
        self.ee: np.ndarray | None = None
        self.joints_stamp = self.ee_stamp = self.intervention_stamp = -1.0  # header stamps (s)
        self.lockstep = self.params["lockstep"] and self.params["use_sim"]
        self.last_tick: float | None = None  # stamp of the boundary task state last acted on
        self.tick_seen = 0.0  # wall time the newest boundary arrived
        self.newest_task_stamp = None  # of any episode: what a lockstep command answers
        self.task: TaskState | None = None
        self.intervention: tuple[float, Intervention] | None = None
        self.pending_event: int | None = None
        self.min_task_episode = 0
        self.drops = DropCounter(self.get_logger(), "input")
        self.seq = 0
        self.session = time.time_ns()  # this process's run: seq restarts at 1 in each
        self.spool = TransitionSpool(os.path.join(self.params["spool_dir"], self.params["actor_id"]),
                                     max_bytes=self.params["spool_max_mb"] << 20)
        self.lost_reported = 0
        self.acks: dict[int, tuple[int, float]] = {}  # session -> (received_seq, wall time it last advanced)
        self.last_ack_time = -1e9
        self.learner_start = None
        self.resent = 0
        self.total_steps = 0
        self.episode = 1
        self._new_episode()
        self.resetting = False
        self.reset_call = None  # (future, monotonic time sent, warned) of the reset in flight

        self.cmd_pub = self.create_publisher(EndEffectorCommand, topics.EE_COMMAND, qos.EVENTS)
        self.transition_pub = self.create_publisher(Transition, topics.TRANSITIONS, qos.TRANSITIONS)
        self.episode_pub = self.create_publisher(EpisodeStats, topics.EPISODE_STATS, qos.EVENTS)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        self.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, qos.EVENTS)
        self.create_subscription(TaskState, topics.TASK_STATE, self._on_task, qos.EVENTS)
        self.create_subscription(Intervention, topics.INTERVENTION, self._on_intervention, qos.EVENTS)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        self.create_subscription(PolicyWeights, topics.POLICY_WEIGHTS, self._on_weights, qos.LATCHED)
        self.create_subscription(TransitionAck, topics.TRANSITION_ACKS, self._on_ack, qos.EVENTS)
        self.view_pubs = {}
        for camera in self.spec.cameras:
            subscribe_camera(self, self.spec, camera, self._on_frame, self.drops, qos.SENSOR)
            self.view_pubs[camera.name] = self.create_publisher(Image, f"/actor/view/{camera.name}", qos.SENSOR)  # topics.POLICY_VIEW_*
        # resending runs on the wall clock: it must go on while simulated time stands still
        self.resend_timer = self.create_timer(0.2, self._resend, clock=Clock(clock_type=ClockType.STEADY_TIME))
        # a lockstep simulation waits for a command after a reset: nothing else calls _step then
        self.create_timer(0.5, lambda: self.resetting and self._check_reset(),
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        # what acting costs here (cameras encoded + policy), and what each weights push weighs
        self.act_seconds: collections.deque = collections.deque(maxlen=500)
        self.weights_bytes = 0
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.EVENTS)
        self.create_timer(5.0, self._diagnose, clock=Clock(clock_type=ClockType.STEADY_TIME))
        left = self.spool.sessions()
        if left:
            self.get_logger().info(f"spool {self.spool.directory}: {len(self.spool)} transitions of earlier "
                                   f"sessions not yet in a learner checkpoint; they will be re-sent")
        self.reset_client = self.create_client(Trigger, topics.SIM_RESET if self.params["use_sim"] else topics.TASK_RESET)
        if not self.lockstep:
            self.timer = self.create_timer(1.0 / self.params["control_rate"], self._step)
            self.params.bind_rate("control_rate", self.timer)
        self._waiting_logged = False

    def _new_episode(self) -> None:
        self.step_index = 0
        self.episode_reward = 0.0
        self.intervention_steps = 0
        self.episode_started = time.monotonic()
        self.prev: tuple[np.ndarray, np.ndarray, bool, dict | None] | None = None
        self.settle = 2  # ticks to let fresh sensor data arrive after a reset

    # ------------------------------------------------------------------ inputs
    def _on_joints(self, msg: JointState) -> None:
        try:
            self.joints = joint_positions(msg)
        except ValueError as err:
            self.drops.drop(str(err))
            return
        self.joints_stamp = _seconds(msg.header.stamp)
        self._maybe_step()

    def _on_frame(self, camera, view: np.ndarray, stamp: float) -> None:
        self.frames[camera.name] = (view, stamp)
        self._maybe_step()

    def _frames_for(self, stamp: float, lockstep: bool) -> dict[str, np.ndarray] | None:
        """Every camera's frame of the step whose joint state is stamped ``stamp``, or None."""
        out = {}
        for camera in self.spec.cameras:
            frame = self.frames.get(camera.name)
            if frame is None:
                return None
            fresh = frame[1] >= stamp - 1e-6 if lockstep else abs(stamp - frame[1]) <= camera.max_age
            if not fresh:
                return None
            out[camera.name] = frame[0]
        return out

    def _on_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self.ee = np.array([p.x, p.y, p.z])
        self.ee_stamp = _seconds(msg.header.stamp)
        self._maybe_step()

    def _on_task(self, msg: TaskState) -> None:
        if self.newest_task_stamp is None or _seconds(msg.header.stamp) > _seconds(self.newest_task_stamp):
            self.newest_task_stamp = msg.header.stamp  # the boundary the simulation holds at
        if msg.episode < self.min_task_episode:
            return  # a state from before the last reset, overtaken by the reset reply
        self.task = msg
        self.tick_seen = time.monotonic()
        self._maybe_step()

    def _maybe_step(self) -> None:
        """Lockstep: one step per boundary task state, once what was measured at it is in."""
        if not self.lockstep or self.task is None:
            return
        tick = _seconds(self.task.header.stamp)
        if tick == self.last_tick or min(self.joints_stamp, self.ee_stamp) < tick - 1e-6:
            return
        if self.spec.cameras and self._frames_for(tick, lockstep=True) is None:
            return  # the cameras' frames of this boundary are still being rendered
        # the scripted operator decides on the same task state; wait briefly for its word
        if (self.intervention_stamp < tick - 1e-6 and time.monotonic() - self.tick_seen < self.params["operator_wait"]
                and self.count_publishers(topics.INTERVENTION) > 0):
            return
        self.last_tick = tick
        self._step()

    def _on_intervention(self, msg: Intervention) -> None:
        if msg.active and (len(msg.action) != ACTION_DIM or not np.all(np.isfinite(msg.action))):
            self.drops.drop(f"intervention action must be {ACTION_DIM} finite values")
            return
        self.intervention = (time.monotonic(), msg)
        self.intervention_stamp = _seconds(msg.header.stamp)
        self._maybe_step()

    def _on_event(self, msg: EpisodeEvent) -> None:
        if not self.params["use_sim"]:
            return  # the task node judges the buttons: its task state carries their reward
        self.pending_event = msg.event

    def _on_weights(self, msg: PolicyWeights) -> None:
        data = bytes(msg.data)
        if msg.format != "safetensors" or sha256(data) != msg.sha256:
            self.drops.drop(f"policy weights v{msg.version}: wrong format or sha256 mismatch")
            return
        try:
            if self.policy is None:
                self.policy = Policy.from_bytes(data)
                self.get_logger().info(f"policy weights v{msg.version} loaded")
            else:
                self.policy.load_bytes(data)
        except ValueError as err:
            self.drops.drop(f"policy weights v{msg.version}: {err}")
            return
        self.policy_version = msg.version
        self.weights_bytes = len(data)

    def _diagnose(self) -> None:
        """/diagnostics: the policy's cost per step on this machine (cameras encoded by the
        backbone, the heads and the actor network) and the size of the last weights push."""
        status = DiagnosticStatus(name="actor: policy", hardware_id=self.get_name())
        times = np.asarray(self.act_seconds) * 1e3
        if times.size:
            status.level, status.message = DiagnosticStatus.OK, f"acting takes {np.median(times):.1f} ms (median)"
        else:
            status.level, status.message = DiagnosticStatus.OK, "the policy has not acted yet"
        status.values = [
            KeyValue(key="act_ms_median", value=f"{np.median(times):.3f}" if times.size else ""),
            KeyValue(key="act_ms_p95", value=f"{np.percentile(times, 95):.3f}" if times.size else ""),
            KeyValue(key="steps_timed", value=str(int(times.size))),
            KeyValue(key="cameras", value=",".join(self.spec.image_keys)),
            KeyValue(key="policy_version", value=str(self.policy_version)),
            KeyValue(key="weights_bytes", value=str(self.weights_bytes))]
        out = DiagnosticArray(status=[status])
        out.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(out)

    # ------------------------------------------------------------------ control
    def _human_action(self) -> np.ndarray | None:
        if self.intervention is None:
            return None
        received, msg = self.intervention
        if not msg.active or time.monotonic() - received > self.params["intervention_timeout"]:
            return None
        return np.clip(np.asarray(msg.action, np.float32), -1.0, 1.0)

    def _step(self) -> None:
        if self.resetting:
            self._check_reset()
            if self.resetting:
                return
        no_policy = self.policy is None and not self.params["act_without_weights"]
        # the first step waits for someone to take the transitions (learner or recorder):
        # training data nobody hears is never produced
        no_sink = self.total_steps == 0 and self.transition_pub.get_subscription_count() == 0
        no_operator = (self.total_steps == 0 and self.params["wait_for_operator"]
                       and self.count_publishers(topics.INTERVENTION) == 0)
        if no_policy or no_sink or no_operator or self.joints is None or self.ee is None or self.task is None:
            if not self._waiting_logged:
                missing = [n for n, v in (("weights", None if no_policy else True), ("joint states", self.joints),
                                          ("EE pose", self.ee), ("task state", self.task),
                                          ("a subscriber of the transitions", None if no_sink else True),
                                          ("the operator on /intervention", None if no_operator else True))
                           if v is None]
                self.get_logger().info(f"waiting for {', '.join(missing)} before acting")
                self._waiting_logged = True
            return
        if self.settle > 0:
            self.settle -= 1
            if self.lockstep:
                self.stop_arm()  # a command ends the simulation's wait for one
            return
        frames = None
        if self.spec.cameras:
            # lockstep: the boundary's frames (stamped at or after it); else next to the joint state
            frames = self._frames_for(self.last_tick if self.lockstep else self.joints_stamp, lockstep=self.lockstep)
            if frames is None and self.task.failure:
                # the task source stopped the episode (a camera or the reward classifier is gone):
                # end it now; its last step has no next frames, so it is not sent
                self.get_logger().error(f"episode {self.episode} stopped by the task source: {self.task.reason}; "
                                        f"its last step is not sent (no frames of the next state)")
                self._end_episode(False, f"failure ({self.task.reason})")
                return
            if frames is None:  # no acting blind: this step waits for every camera
                self.stale_frames += 1
                if worth_telling(self.stale_frames):
                    ages = {c.name: (round(self.joints_stamp - self.frames[c.name][1], 3) if c.name in self.frames
                                     else None) for c in self.spec.cameras}
                    self.get_logger().warning(f"step skipped {self.stale_frames} time(s) so far: no fresh frame of "
                                              f"every camera (age next to the joint state, s: {ages})")
                return
            for name, view in frames.items():
                self.view_pubs[name].publish(to_image_msg(view, "rgb8", frame_id=f"{name}_policy_view",
                                                          stamp=self.task.header.stamp))
        obs = self.spec.build_state(self.joints, self.ee, [self.task.goal.x, self.task.goal.y, self.task.goal.z])
        if self.prev is not None:
            prev_obs, prev_action, prev_human, prev_frames = self.prev
            reward = float(self.task.reward)
            success = bool(self.task.success)
            event, self.pending_event = self.pending_event, None
            if event == EpisodeEvent.SUCCESS:
                success = True
            failure = event == EpisodeEvent.FAILURE or bool(self.task.failure)
            terminated = success or failure
            truncated = not terminated and self.step_index >= self.params["max_episode_steps"]
            # lockstep: the joint state and EE pose must be read while the simulation held this
            # boundary (stamped at it); one stamped later was read after the hold ran out (a
            # loaded machine), so this step's s_{t+1} is not the boundary's state either
            read_late = self.lockstep and max(self.joints_stamp, self.ee_stamp) > self.last_tick + 1e-6
            late = bool(self.task.command_late) or read_late
            if late:
                # the simulation ran this period without (only) this action: what it shows is not
                # the action's effect. Sent flagged (its frames pair the step before, seq stays
                # unbroken); the learner trains on no such step
                self.late_periods += 1
                if worth_telling(self.late_periods):
                    self.get_logger().warning(
                        f"{self.late_periods} step(s) so far whose period ran without their command (the "
                        f"simulation's lockstep_timeout passed first: a loaded machine): sent flagged "
                        f"command_late, not trained on")
            self._send(prev_obs, prev_action, reward, obs, terminated, truncated, prev_human, prev_frames,
                       frames if (terminated or truncated) else None, late)
            self.episode_reward += reward
            if terminated or truncated:
                reason = "success" if success else ("failure" if terminated else "timeout")
                if self.task.reason and terminated:
                    reason += f" ({self.task.reason})"
                self._end_episode(success, reason)
                return
        human = self._human_action()
        if human is not None:
            action, is_human = human, True
            self.intervention_steps += 1
        elif self.policy is None:  # demonstration recording: nobody drives, the arm holds
            action, is_human = np.zeros(ACTION_DIM, np.float32), False
        else:
            started = time.perf_counter()
            action = self.policy.act(obs, frames, deterministic=self.params["deterministic"], generator=self.generator)
            self.act_seconds.append(time.perf_counter() - started)
            is_human = False
        cmd = EndEffectorCommand(dx=float(action[0]), dy=float(action[1]), dz=float(action[2]),
                                 gripper=float(action[3]) if len(action) > 3 else 0.0, is_intervention=is_human)
        cmd.header.stamp = self._command_stamp()
        cmd.header.frame_id = topics.BASE_FRAME
        self.cmd_pub.publish(cmd)
        self.prev = (obs, np.asarray(action, np.float32), is_human, frames)
        self.step_index += 1
        self.total_steps += 1

    def _send(self, obs, action, reward, next_obs, terminated, truncated, is_human, frames=None,
              next_frames=None, late: bool = False) -> None:
        """One transition; camera frames of s_t, and of s_{t+1} only at an episode's end (the
        next transition brings them otherwise: each frame crosses the wire once)."""
        self.seq += 1
        msg = Transition(actor_id=self.params["actor_id"], seq=self.seq, episode=self.episode,
                         step=self.step_index - 1, observation=obs.tolist(), next_observation=next_obs.tolist(),
                         action=[float(a) for a in action], reward=reward, terminated=terminated,
                         truncated=truncated, is_intervention=is_human, observation_spec=self.spec.fingerprint,
                         command_late=late)
        if frames:
            msg.images = [to_image_msg(frames[c.name], "rgb8", frame_id=c.name) for c in self.spec.cameras]
        if next_frames:
            msg.next_images = [to_image_msg(next_frames[c.name], "rgb8", frame_id=c.name) for c in self.spec.cameras]
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.session = self.session
        data = serialize_message(msg)
        self.spool.add(self.session, self.seq, data)  # on disk before it leaves: survives both ends dying
        self.transition_pub.publish(data)
        if self.spool.lost > self.lost_reported:
            self.get_logger().error(f"spool over {self.params['spool_max_mb']} MiB with the learner away: "
                                    f"{self.spool.lost - self.lost_reported} oldest transitions dropped")
            self.lost_reported = self.spool.lost

    # ------------------------------------------------------------------ the link to the learner
    def _on_ack(self, msg: TransitionAck) -> None:
        if msg.actor_id != self.params["actor_id"]:
            return
        now = time.monotonic()
        self.last_ack_time = now
        if self.learner_start is not None and msg.learner_start != self.learner_start:
            self.get_logger().info("the learner restarted; re-sending what its checkpoint lacks")
        self.learner_start = msg.learner_start
        previous = self.acks.get(msg.session)
        advanced = previous is None or msg.received_seq > previous[0]
        self.acks[msg.session] = (msg.received_seq, now if advanced else previous[1])
        self.spool.acknowledge(msg.session, msg.stored_seq)

    def _resend(self) -> None:
        now = time.monotonic()
        if now - self.last_ack_time > 3.0:
            return  # no learner alive: re-sending would reach nobody
        for session, highest in self.spool.sessions().items():
            received, since = self.acks.setdefault(session, (0, now))
            if received >= highest or now - since < self.params["resend_after"]:
                continue
            batch = self.spool.after(session, received, self.params["resend_batch"])
            for _, data in batch:
                self.transition_pub.publish(data)
            self.resent += len(batch)
            self.acks[session] = (received, now)  # give the learner resend_after to acknowledge these

    def _end_episode(self, success: bool, reason: str) -> None:
        steps = self.step_index
        rate = self.intervention_steps / steps if steps else 0.0
        stats = EpisodeStats(actor_id=self.params["actor_id"], episode=self.episode, steps=steps,
                             total_steps=self.total_steps, reward=float(self.episode_reward), success=success,
                             intervention_steps=self.intervention_steps, intervention_rate=float(rate),
                             duration_s=float(time.monotonic() - self.episode_started), end_reason=reason,
                             policy_version=max(self.policy_version, 0))
        stats.header.stamp = self.get_clock().now().to_msg()
        self.episode_pub.publish(stats)
        self.get_logger().info(f"[ACTOR] Episode {self.episode} done | step={self.total_steps} | "
                               f"reward={self.episode_reward:.2f} | {reason} | intervention={100 * rate:.0f}% | "
                               f"policy v{self.policy_version}")
        self.episode += 1
        self._new_episode()
        self._reset_world()

    def _reset_world(self) -> None:
        self.resetting = True
        self.stop_arm()
        if not self.reset_client.service_is_ready():
            self.get_logger().warning(f"reset service {self.reset_client.srv_name} not available; continuing "
                                      f"without reset")
            self.resetting = False
            return
        # only task states of the next simulated episode count from here on (the sim may
        # publish the new one before its reply reaches us, or an old one after)
        self.min_task_episode = (self.task.episode + 1) if self.task is not None else 0
        self.task = None
        future = self.reset_client.call_async(Trigger.Request())
        self.reset_call = (future, time.monotonic(), False)
        future.add_done_callback(self._after_reset)

    def _check_reset(self) -> None:
        """A reset whose reply never comes (DDS dropped it while discovery was unfinished on the
        server's side): the next episode's task state is proof enough that the world was reset."""
        if self.reset_call is None:
            return
        future, sent, warned = self.reset_call
        waited = time.monotonic() - sent
        if future.done() or waited < RESET_REPLY_GRACE:
            return
        name = self.reset_client.srv_name
        if self.task is not None:  # of the episode after the reset (_on_task drops older ones)
            self.reset_client.remove_pending_request(future)
            self.reset_call = None
            self.get_logger().warning(f"no reply from {name} in {waited:.1f} s, but episode {self.task.episode}'s "
                                      f"task state came: the reply was lost; going on")
            self._reset_done()
        elif not warned and waited > RESET_WAIT_WARNING:
            self.reset_call = (future, sent, True)
            self.get_logger().warning(f"waiting {waited:.0f} s for {name} to reply or the next episode to start; "
                                      f"nothing acts until one does")

    def _after_reset(self, future) -> None:
        if self.reset_call is None or self.reset_call[0] is not future:
            return  # given up on above
        self.reset_call = None
        reply = future.result()
        if reply is not None and not reply.success:
            self.get_logger().error(f"reset refused: {reply.message}")
        self._reset_done()

    def _reset_done(self) -> None:
        self.resetting = False
        if self.lockstep:
            self.stop_arm()  # the simulation may be waiting for a command at a boundary

    def _command_stamp(self):
        """Lockstep: the boundary acted on (the simulation pairs the command with it); else now."""
        if self.lockstep and self.newest_task_stamp is not None:
            return self.newest_task_stamp
        return self.get_clock().now().to_msg()

    def stop_arm(self) -> None:
        cmd = EndEffectorCommand()
        cmd.header.stamp = self._command_stamp()
        cmd.header.frame_id = topics.BASE_FRAME
        self.cmd_pub.publish(cmd)

    def close(self) -> None:
        left = len(self.spool)
        if left:
            self.get_logger().info(f"{left} transitions not yet in a learner checkpoint stay in "
                                   f"{self.spool.directory}; the next actor run re-sends them")


def main():
    return run_node(ActorNode)


if __name__ == "__main__":
    raise SystemExit(main())
