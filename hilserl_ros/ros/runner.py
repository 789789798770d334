"""The one way a hilserl_ros node process starts and stops.

``run_node(MyNode)`` initialises rclpy with the process arguments (so ``--ros-args -r
__node:=... --params-file ...`` work as under ``ros2 run``/``ros2 launch``) and spins. rclpy's
own SIGINT/SIGTERM handling wakes the executor and shuts the context down (a Python-level
handler would not run while the executor waits inside rcl); the node then releases what it
holds (torque off, files closed) in its ``close()``. Exit code 0 on a requested shutdown,
1 when the node raised.
"""
from __future__ import annotations

import sys
import traceback
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor


def run_node(factory: Callable[[], "rclpy.node.Node"], args: list[str] | None = None, threads: int = 1) -> int:
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    code = 0
    try:
        node = factory()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # a crash: report it, release the node, exit non-zero
        if node is not None and not rclpy.ok():
            pass  # Ctrl-C landed while the executor rebuilt its wait set: a requested shutdown
        else:
            traceback.print_exc()
            code = 1
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    traceback.print_exc()
                    code = code or 1
            node.destroy_node()
        rclpy.try_shutdown()
    return code
