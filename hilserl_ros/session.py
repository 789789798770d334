"""A graph running in the background plus a ROS node of our own watching it.

The commands that drive a whole graph (training, demonstration recording) start the nodes
through the project launcher in a thread, open their own rclpy context for a monitoring node,
and stop both in order at the end: the graph gets SIGINT first, so the learner writes its
checkpoint and the recorder closes its bag.
"""
from __future__ import annotations

import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from hilserl_ros.graph import Graph
from hilserl_ros.launcher import Launcher


class GraphSession:
    def __init__(self, graph: Graph, overrides: dict[str, str], out=None, node_name: str = "graph_monitor"):
        self.launcher = Launcher(graph, overrides, out=out)
        self.runner = threading.Thread(target=self.launcher.run, kwargs={"install_signal_handlers": False},
                                       daemon=True)
        self.context = Context()
        rclpy.init(args=[], context=self.context)  # not sys.argv: its name:=value are launch arguments
        self.node = rclpy.create_node(node_name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)

    def start(self) -> "GraphSession":
        self.runner.start()
        self.spinner.start()
        return self

    @property
    def running(self) -> bool:
        return self.runner.is_alive()

    def stop(self, why: str, timeout: float = 60.0) -> None:
        self.launcher.request_stop(why)
        self.runner.join(timeout=timeout)
        self.executor.shutdown()
        self.spinner.join(timeout=5)
        self.node.destroy_node()
        self.context.try_shutdown()
