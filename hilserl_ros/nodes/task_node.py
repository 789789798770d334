"""Task node (/task), real arm only: the episodes the simulation runs, without a simulator.

It publishes ``TaskState`` on /sim/task_state (the topic the actor reads in simulation, so the
actor runs the same code on both) at ``control_rate`` while an episode runs:

- success from the operator's SUCCESS button (A) and/or the reward classifier's prediction
  (/reward_classifier/prediction), as ``reward_source`` says (buttons | classifier | both);
  failure from the FAILURE button (B), or when the classifier's prediction is older than
  ``classifier_timeout`` (the classifier or a camera is gone: the episode stops with that
  reason instead of running on unjudged);
- reward as HIL-SERL's: ``success_reward`` on the step that succeeds, ``-step_penalty`` on
  every step (0 by default);
- the operator's veto: FAILURE within ``veto_window`` s of the classifier ending an episode says
  its success was none. The veto goes out on /reward_classifier/veto (``RewardVeto``), and the
  classifier learns the frames as hard negatives. The step's reward has already gone to the
  learner; the veto keeps the classifier from paying for the same picture again.

Service /task/reset (std_srvs/Trigger, the actor calls it after each episode): the arm moves
to ``home`` along a straight joint-space line at most ``reset_speed`` rad/s and ``reset_accel``
rad/s^2 (hilserl_ros.task_judge.HomeMove), as /joint_commands through the driver (its joint
limits and ``max_step`` still hold); once it is within ``reset_tolerance`` of home, the next
episode starts on the START button (Y) or ``start_delay`` seconds later (``start_on``: button |
timer). While nothing runs no TaskState goes out, and the actor does not act.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.msg import EpisodeEvent, RewardVeto, SuccessPrediction, TaskState
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.messages import joint_positions, seconds, to_stamp
from hilserl_ros.ros.runner import run_node
from hilserl_ros.ros.validation import DropCounter
from hilserl_ros.task_judge import REWARD_SOURCES, START_ON, STOPPED, WAITING, EpisodeJudge, JudgeConfig

RESET_FRAME = "task_reset"  # frame_id of the way-home commands (tells them apart from the IK's on /joint_commands)
HOME = [0.0, -1.2, 1.2, 0.75, 0.0, 0.0]  # folded above the table, gripper closed (the simulation's home)


def _home_error(value) -> str | None:
    if len(value) != len(JOINT_NAMES):
        return f"needs {len(JOINT_NAMES)} joint positions ({', '.join(JOINT_NAMES)})"
    return None


PARAMS = [
    ParamSpec("task", "pick_cube", "task name carried in the TaskState", read_only=True),
    ParamSpec("control_rate", 10.0, "task states per second while an episode runs (the actor's control_rate)",
              min=1.0, max=100.0, unit="Hz", read_only=True),
    ParamSpec("reward_source", "buttons", "who says success: buttons | classifier | both", read_only=True,
              validator=lambda v: None if v in REWARD_SOURCES else f"must be one of {REWARD_SOURCES}"),
    ParamSpec("start_on", "button", "the next episode starts on the START button or after start_delay (timer)",
              validator=lambda v: None if v in START_ON else f"must be one of {START_ON}"),
    ParamSpec("start_delay", 2.0, "timer start: seconds after the arm is home", min=0.0, max=600.0, unit="s"),
    ParamSpec("success_reward", 1.0, "reward of the step that succeeds (HIL-SERL: sparse 1)", min=0.0, max=100.0),
    ParamSpec("step_penalty", 0.0, "reward subtracted on every step (0: sparse reward only)", min=0.0, max=10.0),
    ParamSpec("classifier_timeout", 0.5, "an older classifier prediction stops the episode (no judging blind)",
              min=0.05, max=10.0, unit="s"),
    ParamSpec("home", HOME, "home pose between episodes, per joint " + ", ".join(JOINT_NAMES), unit="rad",
              validator=_home_error),
    ParamSpec("reset_speed", 0.5, "fastest joint speed on the way home", min=0.05, max=3.0, unit="rad/s"),
    ParamSpec("reset_accel", 1.0, "largest change of that speed", min=0.05, max=10.0, unit="rad/s^2"),
    ParamSpec("reset_tolerance", 0.05, "home reached when every joint is this close", min=0.005, max=0.5,
              unit="rad"),
    ParamSpec("reset_timeout", 20.0, "the arm must be home within this (else: stopped, with the reason)",
              min=1.0, max=300.0, unit="s"),
    ParamSpec("veto_window", 3.0, "FAILURE within this after the classifier ended an episode vetoes its success "
              "(0: no vetoes)", min=0.0, max=30.0, unit="s"),
]
LIVE = ("start_on", "start_delay", "success_reward", "step_penalty", "classifier_timeout", "reset_tolerance",
        "reset_timeout", "veto_window")


class TaskNode(Node):
    def __init__(self, **node_options):
        super().__init__("task", **node_options)
        self.params = declare(self, PARAMS)
        p = self.params
        config = JudgeConfig(reward_source=p["reward_source"], start_on=p["start_on"], start_delay=p["start_delay"],
                             success_reward=p["success_reward"], step_penalty=p["step_penalty"],
                             classifier_timeout=p["classifier_timeout"], reset_tolerance=p["reset_tolerance"],
                             reset_timeout=p["reset_timeout"], veto_window=p["veto_window"])
        self.judge = EpisodeJudge(config, p["home"], p["reset_speed"], p["reset_accel"], p["control_rate"])
        for name in LIVE:
            self.params.on_change(name, lambda v, n=name: setattr(self.judge.config, n, v))
        self.params.on_change("home", lambda v: setattr(self.judge, "home", np.asarray(v, float)))
        for name, attr in (("reset_speed", "max_speed"), ("reset_accel", "max_accel")):
            self.params.on_change(name, lambda v, a=attr: setattr(self.judge, a, v))
        self.drops = DropCounter(self.get_logger(), "input")
        self.joints: np.ndarray | None = None
        self.ee = np.zeros(3)
        self.said = ""
        self.task_pub = self.create_publisher(TaskState, topics.TASK_STATE, qos.EVENTS)
        self.command_pub = self.create_publisher(JointState, topics.JOINT_COMMANDS, qos.EVENTS)
        self.veto_pub = self.create_publisher(RewardVeto, topics.REWARD_VETO, qos.EVENTS)
        self.classifier_model = ""
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        self.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, qos.EVENTS)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        self.create_subscription(SuccessPrediction, topics.REWARD_PREDICTION, self._on_prediction, qos.EVENTS)
        self.create_service(Trigger, topics.TASK_RESET, self._on_reset)
        self.create_timer(1.0 / p["control_rate"], self._tick)
        self.get_logger().info(f"real-arm task source: success from {p['reward_source']}, start on {p['start_on']}; "
                               f"the arm goes home at the first joint state")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _say(self, text: str, level: str = "info") -> None:
        if text == self.said:  # each state once, not every tick
            return
        self.said = text
        # one call site per severity: rclpy refuses a severity change at a call site
        if level == "error":
            self.get_logger().error(text)
        elif level == "warning":
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    # ------------------------------------------------------------------ inputs
    def _on_joints(self, msg: JointState) -> None:
        try:
            joints = joint_positions(msg)
        except ValueError as err:
            self.drops.drop(str(err))
            return
        first = self.joints is None
        self.joints = joints
        if first:  # the arm starts wherever it is: home first, then the first episode on START
            self.judge.reset(joints, self._now())

    def _on_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self.ee = np.array([p.x, p.y, p.z])

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event in (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE):
            veto = self.judge.button(msg.event == EpisodeEvent.SUCCESS, self._now())
            if veto is not None:
                out = RewardVeto(episode=veto.episode, probability=float(veto.probability), model=self.classifier_model)
                out.header.stamp = to_stamp(veto.stamp)
                out.header.frame_id = topics.BASE_FRAME
                self.veto_pub.publish(out)
                self._say(f"episode {veto.episode}: the operator vetoed the classifier's success (p="
                          f"{veto.probability:.2f}); it learns those frames as failures", "warning")
        elif msg.event == EpisodeEvent.START and self.judge.reset_failed and self.joints is not None:
            # the way home timed out (a slow or loaded arm, a hand in the way): START tries again
            self.judge.reset(self.joints, self._now())
            self._say("START: the arm did not reach home last time; moving home again (press START once it is)")
        elif msg.event == EpisodeEvent.START and self.judge.state == WAITING:
            if self.judge.start(self._now()):
                self._say(f"episode {self.judge.episode} started by the operator")
            else:
                self._say(f"START pressed but {self.judge.why_not_started}", "warning")

    def _on_prediction(self, msg: SuccessPrediction) -> None:
        if not np.isfinite(msg.probability):
            self.drops.drop("non-finite success probability")
            return
        self.judge.classifier(seconds(msg.header.stamp), bool(msg.success), float(msg.probability))
        self.classifier_model = msg.model

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.joints is None:
            response.success, response.message = False, "no joint states yet: cannot plan the way home"
            return response
        self.judge.reset(self.joints, self._now())
        response.success, response.message = True, "moving home"
        return response

    # ------------------------------------------------------------------ the clock
    def _tick(self) -> None:
        now = self._now()
        if self.joints is not None:
            target = self.judge.reset_target(self.joints, now)
            if target is not None:
                self._say("resetting: moving home")
                cmd = JointState(name=list(JOINT_NAMES), position=[float(v) for v in target])
                cmd.header.stamp = self.get_clock().now().to_msg()
                cmd.header.frame_id = RESET_FRAME
                self.command_pub.publish(cmd)
                return
        if self.judge.state == WAITING:
            if self.judge.config.start_on == "button":
                self._say("arm home: press START (Y) to begin the next episode")
            else:
                self._say(f"arm home: next episode in {self.judge.config.start_delay:.1f} s")
        elif self.judge.state == STOPPED and self.judge.why_not_started:
            self._say(f"stopped: {self.judge.why_not_started}", "error")
        was = self.judge.episode
        verdict = self.judge.tick(now)
        if verdict is None:
            if self.judge.state == WAITING and self.judge.why_not_started:
                self._say(f"not starting: {self.judge.why_not_started}", "warning")
            return
        if verdict.episode != was:
            self._say(f"episode {verdict.episode} started")
        msg = TaskState(task=self.params["task"], episode=verdict.episode, reward=float(verdict.reward),
                        success=verdict.success, failure=verdict.failure, reason=verdict.reason)
        msg.header.stamp, msg.header.frame_id = self.get_clock().now().to_msg(), topics.BASE_FRAME
        msg.ee_position.x, msg.ee_position.y, msg.ee_position.z = (float(v) for v in self.ee)
        self.task_pub.publish(msg)
        if verdict.success or verdict.failure:
            level = "error" if verdict.failure and "classifier" in verdict.reason else "info"
            self._say(f"episode {verdict.episode}: {'success' if verdict.success else 'failure'} ({verdict.reason})",
                      level)


def main():
    return run_node(TaskNode)


if __name__ == "__main__":
    raise SystemExit(main())
