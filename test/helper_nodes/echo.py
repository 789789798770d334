"""Test node: republishes every message of `msg_type` from `in_topic` on `out_topic`."""
import importlib

from rclpy.node import Node

from hilserl_ros.ros import qos
from hilserl_ros.ros.runner import run_node


def message_class(name: str):
    package, kind, cls = name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), cls)


class Echo(Node):
    def __init__(self):
        super().__init__("echo")
        msg_type = message_class(self.declare_parameter("msg_type", "std_msgs/msg/String").value)
        self.pub = self.create_publisher(msg_type, self.declare_parameter("out_topic", "out").value, qos.EVENTS)
        self.create_subscription(msg_type, self.declare_parameter("in_topic", "in").value, self.pub.publish, qos.EVENTS)
        self.get_logger().info("echo ready")


def main():
    return run_node(Echo)


if __name__ == "__main__":
    raise SystemExit(main())
