"""The one way a hilserl_ros node process starts and stops.

``run_node(MyNode)`` initialises rclpy with the process arguments (so ``--ros-args -r
__node:=... --params-file ...`` work as under ``ros2 run``/``ros2 launch``) and spins. SIGINT
and SIGTERM stop the spinning, not the ROS context: the node's ``close()`` then releases what
it holds (torque off, final checkpoint, files closed) while it can still log to /rosout, and
only then is the context shut down. (rclpy's own handlers shut the context down at once, so
every line a node logged while closing failed with "publisher's context is invalid".) The
executor waits in slices of ``SPIN_SLICE`` so that the Python-level handler runs promptly.
A Ctrl-C in a terminal reaches a launched node twice (its process group, then ros2 launch
forwarding it): the second is noted and ignored, so it cannot interrupt ``close()``
half-way; a third (launch's SIGTERM 5 s later, or a person pressing Ctrl-C again) exits at
once, since nothing else ends a ``close()`` or a callback that hangs. Exit code 0 on a
requested shutdown, 1 when the node raised or one of its worker threads did.

Nothing dies alone:
- a node's own threads are started with :func:`start_worker`: one that raises takes the node
  down with its reason (exit 1), so the launcher (ours or launch_ros, ``respawn``) restarts it
  instead of leaving a live process that no longer works;
- a node whose parent (the launcher) is gone shuts down, and leaves by ``os._exit`` if its
  shutdown has not finished ``ORPHAN_GRACE`` seconds later, whatever it was blocked in.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import get_default_context

# s an orphaned node has to close (checkpoint, torque off) before it is cut (tests shorten it)
ORPHAN_GRACE = float(os.environ.get("HILSERL_ORPHAN_GRACE", "20"))
PARENT_POLL = 0.5  # s
SPIN_SLICE = 0.1  # s the executor waits before the main thread looks at its stop flag again

_failures: list[str] = []  # why this process's node was taken down by one of its threads
_stop = threading.Event()  # set once: the node of run_node() stops spinning and closes
_run_context = None  # the context run_node() spins, while it does


_signals: list[str] = []  # signals received; the handler only appends (it runs on the main
# thread, between any two bytecodes, also inside _stop.set(): taking the Event's lock there
# could deadlock)
HARD_EXIT_SIGNAL = 3  # the third signal leaves at once: nothing else can end a blocked close()


def request_stop() -> None:
    """Stop run_node()'s spinning: close() runs next, with the ROS context still valid."""
    _stop.set()


def stopping() -> bool:
    return bool(_signals) or _stop.is_set()


def _on_signal(signum: int, _frame) -> None:
    name = signal.Signals(signum).name
    _signals.append(name)
    if len(_signals) >= HARD_EXIT_SIGNAL:
        os.write(2, f"[runner] {name}: signal {len(_signals)}, exiting now without finishing close()\n".encode())
        os._exit(1)
    if len(_signals) > 1:
        # the second Ctrl-C of a terminal (the group's, then ros2 launch's) while close()
        # works: closing goes on (os.write: print here could re-enter one under way)
        os.write(2, f"[runner] {name} while shutting down: still closing (a third signal exits at once)\n".encode())


def fail_node(node: "rclpy.node.Node", reason: str) -> None:
    """Take ``node``'s process down with ``reason`` (exit code 1): its executor stops, the
    node's close() runs, and the launcher sees a death it can respawn."""
    _failures.append(reason)
    try:
        node.get_logger().fatal(f"{reason}: the node shuts down (exit 1) so that its launcher can restart it")
    except Exception:  # the logger may be gone already at shutdown
        print(f"[FATAL] {reason}", file=sys.stderr, flush=True)
    stop_node(node)


def _run_here(node: "rclpy.node.Node") -> bool:
    return _run_context is not None and node.context is _run_context


def shutting_down(node: "rclpy.node.Node") -> bool:
    """True once ``node`` has been asked to stop (a signal, a dead worker, its launcher gone)."""
    return stopping() if _run_here(node) else not node.context.ok()


def stop_node(node: "rclpy.node.Node") -> None:
    """End ``node``'s spinning: under run_node() its close() follows with the context valid; a
    node spun by someone else (a test's executor) has its context shut down, which ends the spin."""
    if _run_here(node):
        request_stop()
    else:
        node.context.try_shutdown()


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


def _watch_parent(parent: int) -> None:
    """Shut down when the launcher that started us is gone; cut the process if that hangs."""
    stop = threading.Event()
    while not stop.wait(PARENT_POLL):
        if os.getppid() != parent:  # also while shutting down: a close() that hangs must not outlive it
            break
    print(f"[runner] parent process {parent} is gone: shutting down (at most {ORPHAN_GRACE:.0f} s)",
          file=sys.stderr, flush=True)
    request_stop()
    stop.wait(ORPHAN_GRACE)
    print(f"[runner] still running {ORPHAN_GRACE:.0f} s after the launcher died: exiting now",
          file=sys.stderr, flush=True)
    os._exit(1)


def _install_signal_handlers() -> bool:
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _on_signal)
        return True
    except ValueError:  # not the main thread (a node run inside another program): rclpy's own
        return False


def run_node(factory: Callable[[], "rclpy.node.Node"], args: list[str] | None = None, threads: int = 1) -> int:
    global _run_context
    own_signals = _install_signal_handlers()
    rclpy.init(args=sys.argv if args is None else args,
               signal_handler_options=SignalHandlerOptions.NO if own_signals else SignalHandlerOptions.ALL)
    context = get_default_context()
    _run_context = context
    parent = os.getppid()
    if parent > 1:  # under init (pid 1) there is no launcher to outlive
        threading.Thread(target=_watch_parent, args=(parent,), name="parent_watch", daemon=True).start()
    node = executor = None
    code = 0
    try:
        node = factory()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        while not stopping() and context.ok():
            executor.spin_once(timeout_sec=SPIN_SLICE)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # a crash: report it, release the node, exit non-zero
        if node is not None and not context.ok() and not _failures:
            pass  # the context was shut down while the executor rebuilt its wait set: a requested shutdown
        else:
            traceback.print_exc()
            code = 1
    finally:
        if not _signals:  # stopped without a signal (a dead worker, the launcher gone): the
            _signals.append("stop")  # first signal now finds it closing already
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    traceback.print_exc()
                    code = code or 1
        if executor is not None:
            # its guard conditions go now, not in a __del__ after the context is gone
            executor.shutdown(timeout_sec=5.0)
        if node is not None:
            node.destroy_node()
        _run_context = None
        rclpy.try_shutdown()
    if _failures:
        print(f"[runner] exit 1: {_failures[0]}", file=sys.stderr, flush=True)
        code = 1
    if own_signals:
        # A node process: everything was released in close() and the context is down. Leave
        # without the interpreter's finalisation, which joins library threads and tears DDS
        # down again: under load a learner and an actor hung there past launch's 5 s after
        # their last line (Python's handlers already reset), and launch killed them (-15).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
