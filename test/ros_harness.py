"""Test harness: real rclpy nodes on the run's own domain (set in conftest.py)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
from typing import Any, Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from hilserl_ros.launcher import die_with_parent
from hilserl_ros.ros import service

TEST_DIR = os.path.dirname(os.path.abspath(__file__))

# Every node made in a test's context, spun or not, and the ones destroyed. Kilted's rclpy
# tracks a context's nodes and destroys them with it; Jazzy's does not, so a node a test made
# without spinning it (to call its callbacks itself) stayed on the DDS graph, with its
# subscriptions matched, for the rest of the worker's life: RosSession.close() ends them.
_made: "weakref.WeakSet[Node]" = weakref.WeakSet()
_destroyed: "weakref.WeakSet[Node]" = weakref.WeakSet()
_node_init, _node_destroy = Node.__init__, Node.destroy_node


def _tracked_init(self, *args, **kwargs):
    _node_init(self, *args, **kwargs)
    _made.add(self)


def _tracked_destroy(self):
    if self in _destroyed:
        return True
    _destroyed.add(self)
    return _node_destroy(self)


Node.__init__ = _tracked_init
Node.destroy_node = _tracked_destroy


def live_nodes() -> list[str]:
    """Names of the nodes made in this process that were never destroyed."""
    return sorted(n.get_name() for n in list(_made) if n not in _destroyed)
REPO_ROOT = os.path.dirname(TEST_DIR)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition", period: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(period)


class TopicProbe:
    """Collects every message on a topic."""

    def __init__(self, node: Node, msg_type, topic: str, qos: QoSProfile | int = 10):
        self.messages: list = []
        self._lock = threading.Lock()
        self.sub = node.create_subscription(msg_type, topic, self._on_msg, qos)
        self.topic = topic

    def _on_msg(self, msg) -> None:
        with self._lock:
            self.messages.append(msg)

    def wait(self, count: int = 1, timeout: float = 10.0, where: Callable | None = None) -> list:
        def ready():
            with self._lock:
                hits = [m for m in self.messages if where is None or where(m)]
            return hits if len(hits) >= count else None

        return wait_for(ready, timeout, f"{count} message(s) on {self.topic}")


class RosSession:
    """A private rclpy context whose nodes spin on a background executor."""

    def __init__(self, threads: int = 2):
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self.nodes: list[Node] = []

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # context shut down under the executor at the end of a test
            pass

    def node(self, name: str, **kwargs) -> Node:
        node = Node(name, context=self.context, **kwargs)
        return self.add(node)

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def probe(self, node: Node, msg_type, topic: str, qos: QoSProfile | int = 10) -> TopicProbe:
        return TopicProbe(node, msg_type, topic, qos)

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> None:
        wait_for(lambda: publisher.get_subscription_count() >= count, timeout,
                 f"{count} subscriber(s) on {publisher.topic_name}")

    def call(self, client, request, timeout: float = 10.0, resend_every: float = 3.0):
        # the request goes again when a reply is lost in discovery (hilserl_ros.ros.service)
        return service.call(client, request, timeout=timeout, resend_every=resend_every)

    def close(self) -> None:
        for node in self.nodes:
            close = getattr(node, "close", None)
            if callable(close):
                close()
        self.executor.shutdown(timeout_sec=5)
        # the spinning thread must be out of its callbacks before a node it may touch is
        # destroyed (destroying under it crashed the interpreter in rclpy's destroy_node once)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            for node in self.nodes:
                node.destroy_node()
            for node in [n for n in list(_made) if n.context is self.context and n not in _destroyed]:
                close = getattr(node, "close", None)  # its own threads stop before it goes
                try:
                    if callable(close) and node not in self.nodes:
                        close()
                except Exception:  # noqa: BLE001 - a test may have closed it half-way on purpose
                    pass
                node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5)


class ForgetfulServer:
    """A service served by hand on its own context: the first ``drop`` requests are taken and
    never answered, as replies the network lost; later ones get ``answer(request)``.
    ``taken`` lists every request."""

    def __init__(self, srv_type, name: str, drop: int, answer: Callable[[Any], Any]):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("forgetful", context=self.context)
        self.srv_type, self.answer, self.drop = srv_type, answer, drop
        self.srv = self.node.create_service(srv_type, name, lambda req, res: res)
        self.taken: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self.srv.handle:
                taken = self.srv.handle.service_take_request(self.srv_type.Request)
            if taken is None or taken[0] is None:
                time.sleep(0.005)
                continue
            request, header = taken
            self.taken.append(request)
            if len(self.taken) > self.drop:
                self.srv.send_response(self.answer(request), header)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        self.context.try_shutdown()


class NodeProcess:
    """A node running as its own process, with its output kept for assertions."""

    def __init__(self, module: str, ros_args: list[str], name: str | None = None, env: dict | None = None):
        cmd = [sys.executable, "-m", module, "--ros-args"]
        if name:
            cmd += ["-r", f"__node:={name}"]
        cmd += ros_args
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join([TEST_DIR, full_env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=full_env, start_new_session=True,
                                     preexec_fn=die_with_parent(os.getpid()))  # never outlives pytest
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_output(self, text: str, timeout: float = 15.0) -> None:
        wait_for(lambda: text in self.output, timeout, f"{text!r} in the output of pid {self.proc.pid}:\n{self.output}")

    def stop(self, timeout: float = 10.0, escalate: bool = True) -> int | None:
        """SIGINT, then (``escalate``) SIGKILL after ``timeout``; returns the exit code, or
        None if the process outlived the timeout and was not escalated."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                if not escalate:
                    return None
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


@contextlib.contextmanager
def launched_graph(run_dir, *launch_args: str):
    """The training graph started by the project launcher with ``launch_args``, checkpoints
    and spool under ``run_dir``; yields the list its output lines are appended to. On exit:
    Ctrl-C, then waits until every process of the graph is gone."""
    marker = uuid.uuid4().hex
    env = {**os.environ, "HILSERL_TEST_RUN": marker, "PYTHONUNBUFFERED": "1", "MUJOCO_GL": "egl"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hilserl_ros.launcher", *launch_args, f"checkpoint_dir:={run_dir}/checkpoints",
         f"spool_dir:={run_dir}/spool", "--grace", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT, env=env)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(l.rstrip()) for l in iter(proc.stdout.readline, "")],
                     daemon=True).start()
    try:
        yield lines
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        wait_for(lambda: not processes_with_marker(marker), 15, "every node of the graph to exit")


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of live processes whose environment carries HILSERL_TEST_RUN=<marker>."""
    needle = f"HILSERL_TEST_RUN={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


class EmulatorProcess:
    """The emulated STS3215 bus (hilserl_ros.hardware.emulator) in its own process, at
    ``link_path``; its methods are called over a JSON-lines pipe."""

    def __init__(self, link_path: str):
        import json

        self._json = json
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([TEST_DIR, os.environ.get("PYTHONPATH", "")])}
        self.link_path = link_path
        self.proc = subprocess.Popen([sys.executable, "-m", "helper_nodes.emulator_server", link_path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     preexec_fn=die_with_parent(os.getpid()))
        ready = json.loads(self.proc.stdout.readline())
        self.port = ready["ready"]

    def call(self, op: str, *args):
        self.proc.stdin.write(self._json.dumps({"op": op, "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        reply = self._json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"emulator {op}{args}: {reply['error']}")
        return reply["result"]

    def read_register(self, servo_id: int, address: int, size: int = 1) -> int:
        return self.call("read_register", servo_id, address, size)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
