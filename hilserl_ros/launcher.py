"""Start the hilserl_ros graph as processes, where ``ros2 launch`` is not installed.

    python -m hilserl_ros.launcher [use_sim:=true] [task:=reach] [record:=false] ...
    python -m hilserl_ros.launcher --list            # show the graph, start nothing

Reads the same description as ``launch/train.launch.py`` (hilserl_ros.graph): each active node
runs as ``python -m <module> --ros-args -r __node:=<name> --params-file config/<file> -p ...``,
exactly what ``ros2 launch`` would run. Output of each node is prefixed with its name; the
launcher reports when a node's process starts, when the node appears on the ROS graph, and
when it dies (exit code and its last lines). Ctrl-C (SIGINT) or SIGTERM is forwarded to every
node; nodes that do not stop within the grace period are terminated, then killed. Nodes run in
their own process groups and get SIGTERM if the launcher itself dies, so nothing is left behind.
The summary at the end says where the machine's time went: CPU seconds per node (all its runs).
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from hilserl_ros.graph import (
    LAUNCH_ARGUMENTS,
    TRAIN_GRAPH,
    Graph,
    LaunchArg,
    PACKAGE,
    NodeSpec,
    death_command,
    external_executable,
    is_implemented,
    node_arguments,
    node_parameters,
    params_file_path,
    task_params_path,
)

PR_SET_PDEATHSIG = 1
TAIL_LINES = 15
MAX_RESPAWN_DELAY = 30.0
HEALTHY_RUN = 60.0  # a node that ran this long before dying gets its respawn back-off reset


try:  # resolved here, in the parent: the child must not dlopen between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent(parent_pid: int):
    """A ``preexec_fn``: SIGTERM the child when ``parent_pid`` dies (Linux), and SIGINT
    delivered to it. Closes the race where the parent died before prctl took effect by
    checking the parent pid afterwards."""

    def arm() -> None:
        # the launcher stops nodes with SIGINT (as Ctrl-C does); a launcher started as a
        # background job of a script has SIGINT ignored, and an ignore is inherited: undo it
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)

    return arm


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _param_literal(value: object) -> str:
    """A value as `-p name:=<yaml>` expects it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def node_command(spec: NodeSpec, args: dict[str, str], share: str | None = None,
                 arguments: tuple[LaunchArg, ...] = LAUNCH_ARGUMENTS) -> list[str]:
    """The command line that runs one node, the same one ``ros2 launch`` builds."""
    if spec.package == PACKAGE:
        cmd = [sys.executable, "-m", spec.module]
    else:
        cmd = [external_executable(spec) or spec.executable]
    cmd += node_arguments(spec, share) + ["--ros-args", "-r", f"__node:={spec.name}"]
    path = params_file_path(spec, share)
    if path is not None and os.path.isfile(path):
        cmd += ["--params-file", path]
    task_path = task_params_path(args.get("task", ""), share) if path is not None else None
    if task_path is not None:
        cmd += ["--params-file", task_path]  # a node takes only its own section of it
    for name, value in node_parameters(spec, args, arguments).items():
        cmd += ["-p", f"{name}:={_param_literal(value)}"]
    for src, dst in spec.remappings:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


@dataclass
class ManagedNode:
    spec: NodeSpec
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    restarts_in_a_row: int = 0
    seen_absent: bool = True  # name seen gone from the ROS graph since this process started
    next_start: float | None = None  # respawn scheduled at this time
    status: str = "pending"
    reader: threading.Thread | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    cpu_before: float = 0.0  # CPU seconds of its earlier (dead) processes
    cpu_now: float = 0.0  # ... of the running one, last read
    deaths: list = field(default_factory=list)  # one line per unrequested death: how, and its last words

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_before + self.cpu_now


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15 of stat(5))


class Launcher:
    def __init__(
        self,
        graph: Graph = TRAIN_GRAPH,
        overrides: dict[str, str] | None = None,
        grace_period: float = 5.0,
        watch_graph: bool = True,
        out=None,
    ):
        self.graph = graph
        self.args = graph.resolve_arguments(overrides)
        self.grace_period = grace_period
        self.watch_graph = watch_graph
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        active = graph.active_nodes(self.args)
        self.missing = [s for s in active if not is_implemented(s)]
        self.nodes = [ManagedNode(s, node_command(s, self.args, arguments=graph.arguments))
                      for s in active if is_implemented(s)]
        self.failed = False
        self._stopping = False  # set once we signal the nodes ourselves
        self._stop_reason: str | None = None  # set by signal handlers (no locks there)
        self._visible: frozenset | None = None  # node names on the ROS graph (watcher thread)

    # -- output -------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        with self._lock:
            print(f"[launch] {text}", file=self.out, flush=True)

    def _pump(self, managed: ManagedNode, stream) -> None:
        prefix = f"[{managed.spec.name}] "
        for line in iter(stream.readline, ""):
            line = line.rstrip("\n")
            managed.tail.append(line)
            with self._lock:
                print(prefix + line, file=self.out, flush=True)
        stream.close()

    # -- process control ----------------------------------------------------------------------
    def _start(self, managed: ManagedNode) -> None:
        managed.cpu_before, managed.cpu_now = managed.cpu_seconds, 0.0
        managed.process = subprocess.Popen(
            managed.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it forwards
            preexec_fn=die_with_parent(os.getpid()),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        managed.started_at = time.monotonic()
        managed.next_start = None
        managed.status = "starting"
        managed.reader = threading.Thread(target=self._pump, args=(managed, managed.process.stdout), daemon=True)
        managed.reader.start()
        self.say(f"{managed.spec.name}: started (pid {managed.process.pid})")

    def _signal_all(self, sig: int) -> None:
        for managed in self.nodes:
            proc = managed.process
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass

    def _read_cpu(self) -> None:
        for managed in self._running():
            seconds = process_cpu_seconds(managed.process.pid)
            if seconds is not None:
                managed.cpu_now = seconds

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per node so far (read about once a second while it runs)."""
        return {m.spec.name: round(m.cpu_seconds, 1) for m in self.nodes}

    def _running(self) -> list[ManagedNode]:
        return [m for m in self.nodes if m.process is not None and m.process.poll() is None]

    def _reap(self) -> None:
        now = time.monotonic()
        for managed in self.nodes:
            proc = managed.process
            if proc is None or managed.status in ("died", "exited", "stopped", "killed", "respawning") \
                    or proc.poll() is None:
                continue
            code = proc.returncode
            ran = now - managed.started_at
            if managed.reader is not None:
                managed.reader.join(timeout=2.0)  # its last lines are read before we report them
            if self._stopping:
                # asked to stop by us: not a crash, whatever the exit code
                managed.status = "stopped" if code == 0 else "killed"
                how = "cleanly" if code == 0 else (f"by {signal_name(code)}" if code < 0 else f"code {code}")
                self.say(f"{managed.spec.name}: stopped {how} after {ran:.1f} s")
                if code != 0:
                    self._after_death(managed)  # e.g. escalated to SIGKILL: it could not clean up
            else:
                if code == 0:
                    self.say(f"{managed.spec.name}: exited cleanly after {ran:.1f} s")
                else:
                    how = f"killed by {signal_name(code)}" if code < 0 else f"exit code {code}"
                    managed.deaths.append(f"{how} after {ran:.0f} s" + _last_words(managed.tail))
                    self.say(f"{managed.spec.name}: DIED ({how}) after {ran:.1f} s; its last lines:")
                    with self._lock:
                        for line in managed.tail:
                            print(f"    | {line}", file=self.out, flush=True)
                if code != 0:
                    self._after_death(managed)
                if managed.spec.respawn:  # as launch_ros: respawn on any exit
                    if ran > HEALTHY_RUN:
                        managed.restarts_in_a_row = 0
                    delay = min(managed.spec.respawn_delay * (2 ** managed.restarts_in_a_row), MAX_RESPAWN_DELAY)
                    managed.next_start = now + delay
                    managed.status = "respawning"
                    self.say(f"{managed.spec.name}: respawning in {delay:.1f} s")
                elif code == 0:
                    managed.status = "exited"
                else:
                    managed.status = "died"
                    self.failed = True

    def _after_death(self, managed: ManagedNode) -> None:
        """The node's on_death command (the arm's torque off when its driver died uncleanly)."""
        command = death_command(managed.spec, self.args)
        if not command:
            return
        self.say(f"{managed.spec.name}: running {' '.join(command[1:])}")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=15)
            for line in (done.stdout + done.stderr).strip().splitlines():
                self.say(f"{managed.spec.name}:   {line}")
            if done.returncode != 0:
                self.say(f"{managed.spec.name}: on-death command FAILED (exit {done.returncode})")
        except (OSError, subprocess.TimeoutExpired) as err:
            self.say(f"{managed.spec.name}: on-death command FAILED: {err}")

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for managed in self.nodes:
            if managed.status == "respawning" and managed.next_start is not None and now >= managed.next_start:
                managed.restarts += 1
                managed.restarts_in_a_row += 1
                managed.seen_absent = False  # the dead process's name may linger in discovery
                self._start(managed)

    def _graph_watch(self) -> None:
        """Report each node once it is visible on the ROS graph (not only its process)."""
        try:
            import rclpy
            from rclpy.context import Context
        except ImportError:
            return
        context = Context()
        rclpy.init(context=context, args=["--ros-args", "--disable-rosout-logs", "--log-level", "warn"])
        watcher = rclpy.create_node("_hilserl_launcher", context=context, enable_rosout=False)
        try:
            while not self._stop.wait(0.5):
                self._visible = frozenset(watcher.get_node_names())  # one atomic assignment
        finally:
            watcher.destroy_node()
            context.try_shutdown()

    def _report_up(self) -> None:
        visible = self._visible
        if visible is None:
            return
        for managed in self.nodes:
            if managed.status != "starting":
                continue
            if managed.spec.name not in visible:
                managed.seen_absent = True
            elif managed.seen_absent:
                managed.status = "up"
                took = time.monotonic() - managed.started_at
                self.say(f"{managed.spec.name}: up on the ROS graph ({took:.1f} s)")

    # -- main loop ------------------------------------------------------------------------------
    def describe(self) -> str:
        lines = ["graph: " + " ".join(f"{k}:={v}" for k, v in self.args.items())]
        for managed in self.nodes:
            lines.append(f"  {managed.spec.name:18s} {' '.join(managed.command[1:3])}")
        for spec in self.missing:
            where = (f"not installed here (package {spec.package})" if spec.package != PACKAGE
                     else f"NOT IMPLEMENTED YET ({spec.module})")
            lines.append(f"  {spec.name:18s} {where}: {spec.description}")
        return "\n".join(lines)

    def run(self, install_signal_handlers: bool = True) -> int:
        if install_signal_handlers:
            # a handler may interrupt the main thread inside say(): it only records the request
            signal.signal(signal.SIGINT, lambda *_: setattr(self, "_stop_reason", "SIGINT"))
            signal.signal(signal.SIGTERM, lambda *_: setattr(self, "_stop_reason", "SIGTERM"))
        for line in self.describe().splitlines():
            self.say(line)
        ours = [s.name for s in self.missing if s.package == PACKAGE]
        if ours:
            self.say("still missing: " + ", ".join(ours))
        if not self.nodes:
            self.say("no node of this graph exists yet; nothing to start")
            return 0
        watcher = None
        if self.watch_graph:
            watcher = threading.Thread(target=self._graph_watch, daemon=True)
            watcher.start()
        for managed in self.nodes:
            self._start(managed)
        ticks = 0
        while not self._stop.is_set():
            if self._stop_reason is not None:
                self.request_stop(self._stop_reason)
                break
            ticks += 1
            if ticks % 10 == 0:
                self._read_cpu()
            self._reap()
            self._respawn_due()
            self._report_up()
            if not self._running() and not any(m.status == "respawning" for m in self.nodes):
                self.say("every node has exited")
                self._stop.set()
                break
            time.sleep(0.1)
        self._shutdown()
        if watcher is not None:
            watcher.join(timeout=5)
        self._summary()
        return 1 if self.failed else 0

    def request_stop(self, why: str) -> None:
        if not self._stop.is_set():
            self.say(f"{why}: stopping every node (grace {self.grace_period:.0f} s)")
        self._stop.set()

    def _shutdown(self) -> None:
        """SIGINT, then SIGTERM after the grace period, then SIGKILL."""
        self._stopping = True
        self._read_cpu()  # the last reading before they go
        previous = None
        for sig, wait in ((signal.SIGINT, self.grace_period), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            running = self._running()
            if not running:
                break
            if previous is not None:
                self.say(f"still running {wait:.0f} s after {previous.name}: "
                         + ", ".join(m.spec.name for m in running) + f"; sending {sig.name}")
            self._signal_all(sig)
            previous = sig
            deadline = time.monotonic() + wait
            while self._running() and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.05)
        for managed in self.nodes:
            if managed.process is not None:
                managed.process.wait()
        self._reap()
        for managed in self.nodes:
            if managed.status == "respawning":
                managed.status = "stopped"

    def trouble(self) -> list[str]:
        """One line per node that died on its own or is not running as it should, for a
        person's last look at a run (``make train``'s final message): empty when all went well."""
        lines = []
        for managed in self.nodes:
            if not managed.deaths and managed.status not in ("died",):
                continue
            fate = {"died": "and stayed down", "respawning": "(respawn pending)"}.get(
                managed.status, f"and was respawned ({managed.restarts}x)" if managed.restarts else "")
            times = len(managed.deaths)
            lines.append(f"{managed.spec.name} died {times} time{'s' if times != 1 else ''} {fate}".rstrip()
                         + (f"; last: {managed.deaths[-1]}" if managed.deaths else ""))
        return lines

    def _summary(self) -> None:
        self.say("summary (cpu: CPU seconds the node used, and its share of all nodes'):")
        total = sum(m.cpu_seconds for m in self.nodes) or 1.0
        for managed in self.nodes:
            code = managed.process.returncode if managed.process is not None else None
            self.say(f"  {managed.spec.name:18s} {managed.status:10s} exit={code} restarts={managed.restarts} "
                     f"cpu={managed.cpu_seconds:.1f} s ({100 * managed.cpu_seconds / total:.0f}%)")
        for line in self.trouble():
            self.say(f"  trouble: {line}")


def _last_words(tail) -> str:
    """The line of a dead node's output that says why: the runner's exit reason or the last
    error, else its last line."""
    lines = [line.strip() for line in tail if line.strip()]
    for marker in ("[runner] exit", "Error", "FATAL", "ERROR"):
        hits = [line for line in lines if marker in line]
        if hits:
            return ": " + hits[-1][:300]
    return (": " + lines[-1][:300]) if lines else ""


def load_graph(ref: str) -> Graph:
    """``package.module:ATTRIBUTE`` naming a Graph (tests and custom graphs)."""
    module, _, attr = ref.partition(":")
    graph = getattr(importlib.import_module(module), attr or "GRAPH")
    if not isinstance(graph, Graph):
        raise TypeError(f"{ref} is not a hilserl_ros.graph.Graph")
    return graph


def parse_overrides(words: list[str]) -> dict[str, str]:
    overrides = {}
    for word in words:
        name, sep, value = word.partition(":=")
        if not sep or not name:
            raise ValueError(f"launch arguments are name:=value, got {word!r}")
        overrides[name] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hilserl_ros.launcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("arguments", nargs="*", help="launch arguments, name:=value")
    parser.add_argument("--graph", default=None, help="module:ATTRIBUTE of another Graph")
    parser.add_argument("--list", action="store_true", help="print the graph and its arguments, start nothing")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds nodes get to stop after SIGINT")
    parser.add_argument("--no-graph-watch", action="store_true", help="do not watch the ROS graph")
    opts = parser.parse_args(argv)
    graph = load_graph(opts.graph) if opts.graph else TRAIN_GRAPH
    try:
        launcher = Launcher(graph, parse_overrides(opts.arguments), opts.grace, not opts.no_graph_watch)
    except ValueError as err:
        parser.error(str(err))
    if opts.list:
        print(launcher.describe())
        for arg in graph.arguments:
            choices = f" ({'|'.join(arg.choices)})" if arg.choices else ""
            print(f"  arg {arg.name}:={arg.default}{choices}  {arg.description}")
        return 0
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())
