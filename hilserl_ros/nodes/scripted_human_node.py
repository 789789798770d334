"""Scripted operator node (/scripted_human), simulation only: publishes /intervention like
the joystick node would, from hilserl_ros.human.ScriptedHuman watching /sim/task_state."""
from __future__ import annotations

from rclpy.node import Node

from hilserl_ros import topics
from hilserl_ros.human import HumanConfig, ScriptedHuman
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
    ParamSpec("takeover_steps", 12, "steps of steering once engaged", min=1, max=1000),
    ParamSpec("jitter", 0.1, "hand noise (std, normalised units)", min=0.0, max=1.0),
    ParamSpec("seed", 0, "random seed", read_only=True),
]


class ScriptedHumanNode(Node):
    def __init__(self, **node_options):
        super().__init__("scripted_human", **node_options)
        self.params = declare(self, PARAMS)
        self.human = ScriptedHuman(self._config())
        for name in ("patience", "progress", "takeover_steps", "jitter", "mode"):
            self.params.on_change(name, lambda _: setattr(self.human, "config", self._config()))
        self.episode = None
        self.pub = self.create_publisher(Intervention, topics.INTERVENTION, qos.EVENTS)
        self.create_subscription(TaskState, topics.TASK_STATE, self._on_task, qos.EVENTS)

    def _config(self) -> HumanConfig:
        p = self.params
        return HumanConfig(patience=p["patience"], progress=p["progress"], takeover_steps=p["takeover_steps"],
                           jitter=p["jitter"], seed=p["seed"], demonstrate=p["mode"] == "demonstrate")

    def _on_task(self, msg: TaskState) -> None:
        if msg.episode != self.episode:
            self.episode = msg.episode
            self.human.reset()
        action = None
        if self.params["enabled"]:
            action = self.human.step([msg.ee_position.x, msg.ee_position.y, msg.ee_position.z],
                                     [msg.goal.x, msg.goal.y, msg.goal.z])
        out = Intervention(active=action is not None, source="scripted",
                           action=[] if action is None else [float(a) for a in action])
        out.header.stamp = msg.header.stamp
        self.pub.publish(out)


def main():
    return run_node(ScriptedHumanNode)


if __name__ == "__main__":
    raise SystemExit(main())
