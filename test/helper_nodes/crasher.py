"""Test node: runs for `delay` seconds, then fails with an exception."""
from rclpy.node import Node

from hilserl_ros.ros.runner import run_node


class Crasher(Node):
    def __init__(self):
        super().__init__("crasher")
        self.create_timer(self.declare_parameter("delay", 1.0).value, self.fail)

    def fail(self):
        self.get_logger().error("crasher: about to fail on purpose")
        raise RuntimeError("boom: injected failure")


def main():
    return run_node(Crasher)


if __name__ == "__main__":
    raise SystemExit(main())
