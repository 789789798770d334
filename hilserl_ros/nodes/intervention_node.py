"""Joystick intervention node (/joy_intervention): sensor_msgs/Joy -> hilserl_ros/Intervention
and episode events.

Deadman semantics: the human is in control only while the deadman button is held AND /joy is
alive; if no /joy message arrives for ``joy_timeout`` seconds (pad unplugged, driver dead) the
intervention ends at once. Intervention messages go out at ``rate`` Hz whatever /joy does
(joy_node only publishes on change). Buttons raise EpisodeEvent on their rising edge.
"""
from __future__ import annotations

import time

from rclpy.node import Node
from sensor_msgs.msg import Joy

from hilserl_ros import topics
from hilserl_ros.joystick import JoyMapping, map_joy, pressed
from hilserl_ros.msg import EpisodeEvent, Intervention
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node
from hilserl_ros.ros.validation import DropCounter, non_finite

EVENTS = {"success": EpisodeEvent.SUCCESS, "failure": EpisodeEvent.FAILURE, "rerecord": EpisodeEvent.RERECORD,
          "start": EpisodeEvent.START}
_AXES = [ParamSpec(f"axis_{a}", d, f"joy axis driving EE {a}", min=0, max=31) for a, d in (("x", 1), ("y", 0), ("z", 4))]
_SIGNS = [ParamSpec(f"sign_{a}", 1.0, f"sign of the EE {a} axis", min=-1.0, max=1.0) for a in "xyz"]
PARAMS = _AXES + _SIGNS + [
    ParamSpec("deadzone", 0.1, "stick deadzone", min=0.0, max=0.9),
    ParamSpec("scale", 1.0, "stick to normalised action scale", min=0.0, max=1.0),
    ParamSpec("deadman_button", 5, "hold to intervene (RB)", min=0, max=31),
    ParamSpec("close_button", 4, "gripper close (LB)", min=0, max=31),
    ParamSpec("open_axis", 2, "trigger axis that opens the gripper (LT)", min=0, max=31),
    ParamSpec("success_button", 0, "episode success (A)", min=0, max=31),
    ParamSpec("failure_button", 1, "episode failure (B)", min=0, max=31),
    ParamSpec("rerecord_button", 2, "re-record the episode (X)", min=0, max=31),
    ParamSpec("start_button", 3, "start the next episode (Y)", min=0, max=31),
    ParamSpec("rate", 10.0, "intervention messages per second", min=1.0, max=100.0, unit="Hz"),
    ParamSpec("joy_timeout", 0.5, "no /joy for this long ends any intervention", min=0.05, max=5.0, unit="s"),
]


class InterventionNode(Node):
    def __init__(self, **node_options):
        super().__init__("joy_intervention", **node_options)
        self.params = declare(self, PARAMS)
        self.mapping = self._mapping()
        for spec in PARAMS:
            self.params.on_change(spec.name, lambda _: setattr(self, "mapping", self._mapping()))
        self.last_joy: Joy | None = None
        self.last_time = 0.0
        self.was_active = False
        self.drops = DropCounter(self.get_logger(), "joy message")
        self.pub = self.create_publisher(Intervention, topics.INTERVENTION, qos.EVENTS)
        self.event_pub = self.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
        self.create_subscription(Joy, topics.JOY, self._on_joy, qos.SENSOR)
        self.timer = self.create_timer(1.0 / self.params["rate"], self._publish)
        self.params.bind_rate("rate", self.timer)

    def _mapping(self) -> JoyMapping:
        p = self.params
        return JoyMapping(axis_x=p["axis_x"], axis_y=p["axis_y"], axis_z=p["axis_z"], sign_x=p["sign_x"],
                          sign_y=p["sign_y"], sign_z=p["sign_z"], deadzone=p["deadzone"], scale=p["scale"],
                          deadman_button=p["deadman_button"], close_button=p["close_button"],
                          open_axis=p["open_axis"], success_button=p["success_button"],
                          failure_button=p["failure_button"], rerecord_button=p["rerecord_button"],
                          start_button=p["start_button"])

    def _on_joy(self, msg: Joy) -> None:
        reason = non_finite("axes", msg.axes)
        if reason:
            self.drops.drop(reason)
            return
        previous = self.last_joy.buttons if self.last_joy is not None else []
        for name, button in self.mapping.event_buttons.items():
            if pressed(previous, msg.buttons, button):
                event = EpisodeEvent(event=EVENTS[name], source="joy")
                event.header.stamp = self.get_clock().now().to_msg()
                self.event_pub.publish(event)
                self.get_logger().info(f"operator: {name}")
        self.last_joy, self.last_time = msg, time.monotonic()
        self._publish()

    def _publish(self) -> None:
        alive = self.last_joy is not None and time.monotonic() - self.last_time <= self.params["joy_timeout"]
        active, action = (map_joy(self.last_joy.axes, self.last_joy.buttons, self.mapping)
                          if alive else (False, None))
        if self.was_active and not alive:
            self.get_logger().warning("joystick silent: intervention ended (deadman)")
        self.was_active = active
        out = Intervention(active=active, source="joy", action=[] if action is None else action.tolist())
        out.header.stamp = self.get_clock().now().to_msg()
        self.pub.publish(out)


def main():
    return run_node(InterventionNode)


if __name__ == "__main__":
    raise SystemExit(main())
