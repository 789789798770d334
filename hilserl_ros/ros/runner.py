"""The one way a hilserl_ros node process starts and stops.

``run_node(MyNode)`` initialises rclpy with the process arguments (so ``--ros-args -r
__node:=... --params-file ...`` work as under ``ros2 run``/``ros2 launch``) and spins. rclpy's
own SIGINT/SIGTERM handling wakes the executor and shuts the context down (a Python-level
handler would not run while the executor waits inside rcl); the node then releases what it
holds (torque off, files closed) in its ``close()``. Exit code 0 on a requested shutdown,
1 when the node raised or one of its worker threads did.

Nothing dies alone:
- a node's own threads are started with :func:`start_worker`: one that raises takes the node
  down with its reason (exit 1), so the launcher (ours or launch_ros, ``respawn``) restarts it
  instead of leaving a live process that no longer works;
- a node whose parent (the launcher) is gone shuts down, and leaves by ``os._exit`` if its
  shutdown has not finished ``ORPHAN_GRACE`` seconds later, whatever it was blocked in.
"""
from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import Callable

import rclpy
from rclpy.utilities import get_default_context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

# s an orphaned node has to close (checkpoint, torque off) before it is cut (tests shorten it)
ORPHAN_GRACE = float(os.environ.get("HILSERL_ORPHAN_GRACE", "20"))
PARENT_POLL = 0.5  # s

_failures: list[str] = []  # why this process's node was taken down by one of its threads


def fail_node(node: "rclpy.node.Node", reason: str) -> None:
    """Take ``node``'s process down with ``reason`` (exit code 1): its executor stops, the
    node's close() runs, and the launcher sees a death it can respawn."""
    _failures.append(reason)
    try:
        node.get_logger().fatal(f"{reason}: the node shuts down (exit 1) so that its launcher can restart it")
    except Exception:  # the logger may be gone already at shutdown
        print(f"[FATAL] {reason}", file=sys.stderr, flush=True)
    node.context.try_shutdown()  # wakes the executor: spin() returns


def start_worker(node: "rclpy.node.Node", target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread for a node's own loop (training, physics, capture) that cannot die alone."""

    def run() -> None:
        try:
            target()
        except BaseException as err:  # noqa: BLE001 - any death of a worker is the node's death
            if not node.context.ok() and isinstance(err, ExternalShutdownException):
                return
            traceback.print_exc()
            fail_node(node, f"thread '{name}' died: {type(err).__name__}: {err}")

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def _watch_parent(context, parent: int) -> None:
    """Shut down when the launcher that started us is gone; cut the process if that hangs."""
    stop = threading.Event()
    while not stop.wait(PARENT_POLL):
        if os.getppid() != parent:  # also while shutting down: a close() that hangs must not outlive it
            break
    print(f"[runner] parent process {parent} is gone: shutting down (at most {ORPHAN_GRACE:.0f} s)",
          file=sys.stderr, flush=True)
    context.try_shutdown()
    stop.wait(ORPHAN_GRACE)
    print(f"[runner] still running {ORPHAN_GRACE:.0f} s after the launcher died: exiting now",
          file=sys.stderr, flush=True)
    os._exit(1)


def run_node(factory: Callable[[], "rclpy.node.Node"], args: list[str] | None = None, threads: int = 1) -> int:
    rclpy.init(args=sys.argv if args is None else args)
    parent = os.getppid()
    if parent > 1:  # under init (pid 1) there is no launcher to outlive
        threading.Thread(target=_watch_parent, args=(get_default_context(), parent),
                         name="parent_watch", daemon=True).start()
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
        if node is not None and not rclpy.ok() and not _failures:
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
    if _failures:
        print(f"[runner] exit 1: {_failures[0]}", file=sys.stderr, flush=True)
        code = 1
    return code
