"""Built-in gamepad reader (/gamepad): the Linux joystick device -> sensor_msgs/Joy on /joy.

Stands in for joy_node where the joy package is not installed (set gamepad:=false when
joy_node runs). Publishes on every change and at ``autorepeat_rate`` otherwise; when the device
disappears it stops publishing (so the intervention node's deadman ends any takeover), warns
once, and reopens it every ``reconnect_period``.
"""
from __future__ import annotations

import time

from rclpy.node import Node
from sensor_msgs.msg import Joy

from hilserl_ros import topics
from hilserl_ros.joystick import JoystickDevice
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node

PARAMS = [
    ParamSpec("device", "/dev/input/js0", "Linux joystick device", read_only=True),
    ParamSpec("poll_rate", 100.0, "device polls per second", min=10.0, max=1000.0, unit="Hz"),
    ParamSpec("autorepeat_rate", 20.0, "re-publish an unchanged state at this rate", min=0.0, max=100.0, unit="Hz"),
    ParamSpec("reconnect_period", 1.0, "seconds between attempts to reopen the device", min=0.1, max=30.0, unit="s"),
]


class GamepadNode(Node):
    def __init__(self, **node_options):
        super().__init__("gamepad", **node_options)
        self.params = declare(self, PARAMS)
        self.device = JoystickDevice(self.params["device"])
        self.connected = False
        self.outage_logged = False
        self.last_attempt = 0.0
        self.last_publish = 0.0
        self.pub = self.create_publisher(Joy, topics.JOY, qos.SENSOR)
        self.create_timer(1.0 / self.params["poll_rate"], self._poll)

    def _poll(self) -> None:
        now = time.monotonic()
        if not self.connected:
            if now - self.last_attempt < self.params["reconnect_period"]:
                return
            self.last_attempt = now
            try:
                self.device.open()
            except OSError as err:
                if not self.outage_logged:
                    self.get_logger().warning(f"no gamepad at {self.device.path} ({err.strerror}); retrying")
                    self.outage_logged = True
                return
            self.connected, self.outage_logged = True, False
            self.get_logger().info(f"gamepad connected: {self.device.path}")
        try:
            changed = self.device.poll()
        except OSError as err:
            self.device.close()
            self.connected = False
            self.get_logger().warning(f"gamepad lost ({err}); interventions end until it is back")
            return
        repeat = self.params["autorepeat_rate"]
        if changed or (repeat > 0 and now - self.last_publish >= 1.0 / repeat):
            msg = Joy(axes=[float(a) for a in self.device.axes], buttons=list(self.device.buttons))
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = "gamepad"
            self.pub.publish(msg)
            self.last_publish = now

    def close(self) -> None:
        self.device.close()


def main():
    return run_node(GamepadNode)


if __name__ == "__main__":
    raise SystemExit(main())
