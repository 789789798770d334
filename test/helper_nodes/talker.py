"""Test node: publishes '<text> <n>' on /chatter at `rate` Hz; parameters from the launcher."""
from rclpy.node import Node
from std_msgs.msg import String

from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node


class Talker(Node):
    def __init__(self):
        super().__init__("talker")
        self.params = declare(self, [
            ParamSpec("text", "hello", "what to say"),
            ParamSpec("rate", 10.0, "publish rate", min=0.1, max=100.0, unit="Hz"),
            ParamSpec("greeting", "none", "set from a parameter file"),
        ])
        self.pub = self.create_publisher(String, "chatter", qos.EVENTS)
        self.count = 0
        self.timer = self.create_timer(1.0 / self.params["rate"], self.tick)

    def tick(self):
        self.count += 1
        self.pub.publish(String(data=f"{self.params['text']}|{self.params['greeting']}|{self.count}"))


def main():
    return run_node(Talker)


if __name__ == "__main__":
    raise SystemExit(main())
