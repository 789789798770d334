"""The project launcher starts a graph as processes, reports crashes, and leaves nothing behind."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from std_msgs.msg import String

from hilserl_ros.ros import qos
from ros_harness import REPO_ROOT, TEST_DIR, processes_with_marker, wait_for

pytestmark = pytest.mark.ros


class LauncherProcess:
    def __init__(self, *arguments: str):
        self.marker = uuid.uuid4().hex
        env = {**os.environ, "HILSERL_TEST_RUN": self.marker, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([TEST_DIR, os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hilserl_ros.launcher", "--graph", "helper_nodes.graph:GRAPH", *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO_ROOT)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_output(self, pattern: str, timeout: float = 30.0) -> re.Match:
        return wait_for(lambda: re.search(pattern, self.output, re.M), timeout, f"/{pattern}/ in:\n{self.output}")

    def pids(self) -> dict[str, int]:
        return {m[0]: int(m[1]) for m in re.findall(r"\[launch\] (\w+): started \(pid (\d+)\)", self.output)}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in processes_with_marker(self.marker):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def launcher_factory():
    made = []

    def make(*arguments):
        launcher = LauncherProcess(*arguments)
        made.append(launcher)
        return launcher

    yield make
    for launcher in made:
        launcher.kill()


def test_starts_graph_reports_crash_and_stops_everything_on_sigint(ros, launcher_factory):
    node = ros.node("launcher_probe")
    chatter = ros.probe(node, String, "launched_chatter", qos.EVENTS)
    # grace: long enough for the talker to exit on SIGINT on a loaded machine (the stubborn one
    # waits all of it out before its SIGKILL)
    launcher = launcher_factory("--grace", "5", "text:=bonjour", "with_stubborn:=true")

    # every node's process starts, and the talker shows up on the ROS graph
    launcher.wait_output(r"talker: up on the ROS graph")
    assert set(launcher.pids()) == {"talker", "crasher", "stubborn"}
    # launch argument -> parameter, parameter file, and remapping all reached the talker
    msg = chatter.wait(1, timeout=30)[0]
    assert msg.data.startswith("bonjour|from-params-file|")

    # the crash is reported with its exit code and the node's last lines
    launcher.wait_output(r"crasher: DIED \(exit code 1\)")
    assert "boom: injected failure" in launcher.output.split("crasher: DIED")[1]
    assert "talker: DIED" not in launcher.output
    # its on-death command ran (what turns the arm's torque off when the driver dies uncleanly)
    launcher.wait_output(r"crasher:   cleaning up after crasher, bonjour")

    # Ctrl-C: forwarded; the stubborn process is escalated to SIGKILL; nothing is left
    launcher.proc.send_signal(signal.SIGINT)
    code = launcher.proc.wait(timeout=60)
    assert code == 1, "a node died during the run, so the launcher reports failure"
    assert re.search(r"sending SIGKILL", launcher.output)
    assert re.search(r"talker\s+stopped\s+exit=0", launcher.output), launcher.output
    # where the time went: CPU seconds per node, read once a second (the crasher may die unread)
    cpu = {m[0]: float(m[1]) for m in re.findall(r"\[launch\]\s+(\w+)\s+\w+\s+exit=.* cpu=([\d.]+) s", launcher.output)}
    assert set(cpu) == {"talker", "crasher", "stubborn"}, launcher.output
    assert cpu["talker"] > 0.05  # importing rclpy and spinning alone costs that
    assert re.search(r"stubborn\s+killed\s+exit=-9", launcher.output), launcher.output
    # the summary names the node that died on its own, and why (the same lines end `make train`)
    assert re.search(r"trouble: crasher died 1 time and stayed down; last: exit code 1 after \d+ s: .*boom: injected "
                     r"failure", launcher.output), launcher.output
    assert "trouble: stubborn" not in launcher.output and "trouble: talker" not in launcher.output
    assert processes_with_marker(launcher.marker) == []
    assert "talker on-death command ran" not in launcher.output  # it stopped cleanly


def test_nodes_die_with_a_killed_launcher(launcher_factory):
    launcher = launcher_factory("with_crasher:=false")
    launcher.wait_output(r"talker: started \(pid \d+\)")
    talker = launcher.pids()["talker"]
    launcher.wait_output(r"talker: up on the ROS graph")
    launcher.proc.kill()  # SIGKILL: the launcher gets no chance to clean up
    launcher.proc.wait()
    wait_for(lambda: not processes_with_marker(launcher.marker), 30, f"talker (pid {talker}) to exit")


def test_clean_exit_of_every_node_ends_the_launcher(launcher_factory, tmp_path):
    launcher = launcher_factory("with_crasher:=false")
    launcher.wait_output(r"talker: up on the ROS graph")
    os.kill(launcher.pids()["talker"], signal.SIGINT)  # a node asked to stop exits cleanly
    assert launcher.proc.wait(timeout=60) == 0
    assert "talker: exited cleanly" in launcher.output
    assert "every node has exited" in launcher.output


def test_cpu_seconds_of_a_process_are_read_from_proc():
    from hilserl_ros.launcher import process_cpu_seconds

    before = process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn 0.3 s of CPU
        pass
    after = process_cpu_seconds(os.getpid())
    assert before is not None and after - before >= 0.2
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert process_cpu_seconds(dead.pid) is None  # reaped: nothing to read
