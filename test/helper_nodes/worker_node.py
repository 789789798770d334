"""Test node: a worker thread started with start_worker that raises after ``fail_after`` s
(< 0: never), and optionally a timer callback that never returns (``block_executor``), so
signals handled through the executor cannot stop it."""
import threading
import time

from rclpy.node import Node

from hilserl_ros.ros.runner import run_node, start_worker


class WorkerNode(Node):
    def __init__(self):
        super().__init__("worker")
        self.fail_after = self.declare_parameter("fail_after", -1.0).value
        block = self.declare_parameter("block_executor", False).value
        self.closed = threading.Event()
        self.worker = start_worker(self, self._work, "boom_worker")
        if block:
            self._block_timer = self.create_timer(0.2, self._block)
        self.get_logger().info("worker node up")

    def _work(self):
        started = time.monotonic()
        while self.fail_after < 0 or time.monotonic() - started < self.fail_after:
            time.sleep(0.05)
        raise OverflowError("int too big to convert (injected)")

    def _block(self):
        self.get_logger().info("blocking the executor for good")
        while True:
            time.sleep(1.0)

    def close(self):
        print("worker node: close() ran", flush=True)


def main():
    return run_node(WorkerNode)


if __name__ == "__main__":
    raise SystemExit(main())
