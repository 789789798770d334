"""Built-in gamepad reader (/gamepad): the Linux joystick device -> sensor_msgs/Joy on /joy.

Stands in for joy_node where the joy package is not installed (set gamepad:=false when
joy_node runs). Publishes on every change and at ``autorepeat_rate`` otherwise.

When the device disappears (unplugged, out of radio range, battery: a read fails with ENODEV
or the device ends), the node at once publishes a neutral Joy, every axis and button 0 (the
deadman released), so an intervention ends on that message rather than after the
intervention node's ``joy_timeout`` of silence. /joy is best effort: the neutral state goes
out ``NEUTRAL_REPEATS`` times on consecutive polls, then the node is silent until the pad is
back (the silence itself still ends any takeover downstream). It warns once per outage,
reopens the device every ``reconnect_period``, and forgets the lost pad's state: a reopened
pad starts neutral until its own events (the Linux driver replays every axis and button on
open) say otherwise, so a deadman held when the pad vanished is never replayed.
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

NEUTRAL_REPEATS = 3  # neutral Joy messages after a loss, one per poll: one lost packet does not matter

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
        self.neutral_left = 0  # neutral Joy messages still to send after a loss
        self.pub = self.create_publisher(Joy, topics.JOY, qos.SENSOR)
        self.create_timer(1.0 / self.params["poll_rate"], self._poll)

    def _poll(self) -> None:
        now = time.monotonic()
        if not self.connected:
            if self.neutral_left > 0:
                self._publish_state(now)
                self.neutral_left -= 1
            if now - self.last_attempt < self.params["reconnect_period"]:
                return
            self.last_attempt = now
            try:
                self.device.open()
            except OSError as err:
                if not self.outage_logged:
                    self.get_logger().warning(f"no gamepad at {self.device.path} ({err.strerror}); retrying every "
                                              f"{self.params['reconnect_period']:g} s")
                    self.outage_logged = True
                return
            self.connected, self.outage_logged = True, False
            self.get_logger().info(f"gamepad connected: {self.device.path}")
        try:
            changed = self.device.poll()
        except OSError as err:
            self._lost(err, now)
            return
        repeat = self.params["autorepeat_rate"]
        if changed or (repeat > 0 and now - self.last_publish >= 1.0 / repeat):
            self._publish_state(now)

    def _lost(self, err: OSError, now: float) -> None:
        """The device went away: neutral state out at once, one warning, then reopen attempts."""
        try:
            self.device.close()
        except OSError:
            pass  # the device node is gone already
        self.device.reset()
        self.connected = False
        self._publish_state(now)
        self.neutral_left = NEUTRAL_REPEATS - 1
        self.last_attempt = now
        self.get_logger().warning(f"gamepad lost ({err.strerror or err}): published a neutral state (deadman "
                                  f"released), any intervention ends; reopening {self.device.path} every "
                                  f"{self.params['reconnect_period']:g} s")
        self.outage_logged = True  # the reopen attempts of this outage stay quiet

    def _publish_state(self, now: float) -> None:
        msg = Joy(axes=[float(a) for a in self.device.axes], buttons=list(self.device.buttons))
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "gamepad"
        try:
            self.pub.publish(msg)
        except Exception:
            if self.context.ok():
                raise
            return  # shutting down: the context went away under this callback
        self.last_publish = now

    def close(self) -> None:
        self.device.close()


def main():
    return run_node(GamepadNode)


if __name__ == "__main__":
    raise SystemExit(main())
