"""Scripted operator node (/scripted_human), simulation only: publishes /intervention like
the joystick node would, from the operator of hilserl_ros.human watching /sim/task_state
(reach: ScriptedHuman steering at the target; pick_cube: ScriptedPicker, which also watches the
gripper's opening on /joint_states and presses close and open).

The task state comes faster than a person decides (the actor needs a fresh reward each step):
the operator looks at it ``rate`` times a simulated second (by the messages' stamps, so at
any time_scale) and republishes its decision in between."""
from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import JointState

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES
from hilserl_ros.human import make_operator
from hilserl_ros.msg import Intervention, TaskState
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node

PARAMS = [
    ParamSpec("enabled", True, "intervene at all (false = pure RL)"),
    ParamSpec("mode", "correct", "correct: take over when the policy drifts; demonstrate: drive every step "
              "(recording demonstrations)", validator=lambda v: None if v in ("correct", "demonstrate")
              else "must be correct or demonstrate"),
    ParamSpec("patience", 8, "steps without progress before taking over", min=1, max=1000),
    ParamSpec("progress", 0.005, "distance the policy must gain over `patience` steps", min=0.0, max=0.5,
              unit="m"),
    ParamSpec("takeover_steps", 12, "most steps of steering once engaged", min=1, max=1000),
    ParamSpec("release_distance", 0.03, "hands back once the arm is this close to the goal (0 = after "
              "takeover_steps only)", min=0.0, max=0.5, unit="m"),
    ParamSpec("gain", 50.0, "command per metre of error (saturates at 1/gain m)", min=0.1, max=1000.0, unit="1/m"),
    ParamSpec("success_radius", 0.02, "never intervenes this close to the goal", min=0.0, max=0.5, unit="m"),
    ParamSpec("jitter", 0.1, "hand noise (std, normalised units)", min=0.0, max=1.0),
    ParamSpec("rate", 10.0, "decisions per simulated second (the control rate: patience counts these)",
              min=1.0, max=100.0, unit="Hz"),
    ParamSpec("seed", 0, "random seed", read_only=True),
    ParamSpec("task", "reach", "which operator: reach (steer at the target) or pick_cube (approach, open, "
              "descend, close, lift)", read_only=True,
              validator=lambda v: None if v in ("reach", "pick_cube") else "must be reach or pick_cube"),
    # pick_cube only (config/tasks/pick_cube.yaml)
    ParamSpec("careful_speed", 0.5, "pick: stick magnitude next to the cube", min=0.05, max=1.0),
    ParamSpec("hover_height", 0.05, "pick: height above the cube's centre before descending", min=0.0, max=0.2,
              unit="m"),
    ParamSpec("grasp_height", 0.01, "pick: height above the cube's centre where the jaws close", min=-0.02,
              max=0.1, unit="m"),
    ParamSpec("align_tolerance", 0.006, "pick: horizontal error accepted before descending", min=0.001, max=0.05,
              unit="m"),
    ParamSpec("close_steps", [3, 6], "pick: steps the close button is held (uniform in [min, max])",
              validator=lambda v: None if len(v) == 2 and 1 <= v[0] <= v[1] else "needs [min, max] with 1 <= min <= max"),
    ParamSpec("lift_height", 0.08, "pick: height above the cube's resting place it is lifted to", min=0.0,
              max=0.3, unit="m"),
]
LIVE = ("patience", "progress", "takeover_steps", "release_distance", "gain", "success_radius", "jitter", "mode",
        "careful_speed", "hover_height", "grasp_height", "align_tolerance", "close_steps", "lift_height")


class ScriptedHumanNode(Node):
    def __init__(self, **node_options):
        super().__init__("scripted_human", **node_options)
        self.params = declare(self, PARAMS)
        self.human = self._operator()
        for name in LIVE:
            self.params.on_change(name, lambda _: setattr(self.human, "config", self._operator().config))
        self.gripper: float | None = None  # rad, from /joint_states (the pick operator sees the jaws)
        self.episode = None
        self.last_decision: float | None = None  # stamp (s) of the last decision
        self.last_action = None
        self.pub = self.create_publisher(Intervention, topics.INTERVENTION, qos.EVENTS)
        self.create_subscription(TaskState, topics.TASK_STATE, self._on_task, qos.EVENTS)
        if self.params["task"] == "pick_cube":
            self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.SENSOR)

    def _operator(self):
        p = self.params
        settings = {name: p[name] for name in LIVE if name != "mode"}
        return make_operator(p["task"], settings, seed=p["seed"], demonstrate=p["mode"] == "demonstrate")

    def _on_joints(self, msg: JointState) -> None:
        name = JOINT_NAMES[-1]
        if name in msg.name and len(msg.position) == len(msg.name):
            self.gripper = float(msg.position[list(msg.name).index(name)])

    def _on_task(self, msg: TaskState) -> None:
        stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
        if msg.episode != self.episode:
            self.episode = msg.episode
            self.human.reset()
            self.last_decision = None
        # a decision per 1/rate of simulated time; 1 ms slack for the sim's stepping granularity
        due = self.last_decision is None or stamp - self.last_decision >= 1.0 / self.params["rate"] - 1e-3
        if due:
            self.last_decision = stamp
            self.last_action = None
            if self.params["enabled"]:
                self.last_action = self.human.step([msg.ee_position.x, msg.ee_position.y, msg.ee_position.z],
                                                   [msg.goal.x, msg.goal.y, msg.goal.z], self.gripper)
        action = self.last_action
        out = Intervention(active=action is not None, source="scripted",
                           action=[] if action is None else [float(a) for a in action])
        out.header.stamp = msg.header.stamp
        self.pub.publish(out)


def main():
    return run_node(ScriptedHumanNode)


if __name__ == "__main__":
    raise SystemExit(main())
