"""The real ``ros2`` command line, as the tests drive it.

Which ``ros2``: the one that belongs to the rclpy these tests run on. Where rclpy comes from a
full ROS 2 install (a sourced ``/opt/ros/<distro>``), that install's own ``ros2``; in the
project's venv of wheels, the ros2-tools kit that ``make setup`` installs into it. Nothing
else: a ``ros2`` of another install would speak to our nodes with another Python and another
build of our message types. Where neither exists, :func:`require_cli` skips, saying why.

The CLI's daemon fills in its view of a new graph over seconds (in 20 queries of a running
graph, ``ros2 node list`` missed nodes up to 7 times), so nothing here trusts one query:
:func:`poll` repeats a command until its output satisfies a condition.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest


def find_cli() -> tuple[str | None, str]:
    """(path of ros2, where it comes from) or (None, why there is none)."""
    import rclpy

    # <prefix>/lib/pythonX.Y/site-packages/rclpy/__init__.py of a system install
    prefix = os.path.abspath(os.path.join(os.path.dirname(rclpy.__file__), *[os.pardir] * 4))
    system = os.path.join(prefix, "bin", "ros2")
    if not prefix.startswith(os.path.abspath(sys.prefix)) and os.access(system, os.X_OK):
        return system, f"the ROS 2 install at {prefix}"
    venv = os.path.join(os.path.dirname(sys.executable), "ros2")
    if os.access(venv, os.X_OK):
        try:
            import ros2cli  # noqa: F401
            import launch_ros  # noqa: F401
        except ImportError as err:
            return None, f"{venv} exists but the ros2-tools kit does not import ({err}): make setup again"
        return venv, "the ros2-tools kit in the venv"
    return None, ("no ros2 command line: rclpy comes from a venv without the ros2-tools kit (make setup "
                  "installs it when shared/ros2-tools is beside or above the checkout, or ROS2_TOOLS=...) "
                  "and not from a sourced ROS 2 install")


def require_cli() -> str:
    path, where = find_cli()
    if path is None:
        pytest.skip(where)
    return path


@dataclass
class Result:
    args: list[str]
    returncode: int
    output: str

    def __str__(self) -> str:
        return f"$ ros2 {' '.join(self.args)}  (exit {self.returncode})\n{self.output}"


def ros2(*args: str, timeout: float = 60.0, cwd: str | None = None) -> Result:
    """Run ``ros2 ARGS`` to the end; stdout and stderr together."""
    cli = require_cli()
    proc = subprocess.run([cli, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, cwd=cwd, start_new_session=True)
    return Result(list(args), proc.returncode, proc.stdout)


def poll(args: list[str], condition, timeout: float, what: str, per_call: float = 30.0) -> Result:
    """Repeat ``ros2 ARGS`` until ``condition(result)`` holds; fail with the last output."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = ros2(*args, timeout=per_call)
            if condition(last):
                return last
        except subprocess.TimeoutExpired:
            last = Result(list(args), -1, f"(no answer within {per_call:.0f} s)")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s; last answer:\n{last}")
        time.sleep(0.5)


def _sigint_default() -> None:
    # A process started from a script's background job inherits SIGINT ignored, and ros2
    # launch could then not be stopped as Ctrl-C stops it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    """``ros2 ARGS`` running in its own process group (as a terminal's foreground job), its
    output collected in a file."""

    def __init__(self, args: list[str], log_path: str, cwd: str | None = None):
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([require_cli(), *args], stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=cwd, start_new_session=True, preexec_fn=_sigint_default)

    @property
    def output(self) -> str:
        with open(self.log_path, errors="replace") as fh:
            return fh.read()

    def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None:
                pytest.fail(f"ros2 {' '.join(self.args)} exited ({self.proc.returncode}) before "
                            f"printing {text!r}:\n{self.output[-6000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"ros2 {' '.join(self.args)} did not print {text!r} within {timeout:.0f} s:\n"
                            f"{self.output[-6000:]}")
            time.sleep(0.5)

    def ctrl_c(self, timeout: float = 60.0) -> int:
        """SIGINT to the whole process group, as Ctrl-C in a terminal sends it; the exit code."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._log.close()


def stop_daemon() -> None:
    """The daemon that the first graph query started outlives every command: stop it."""
    if find_cli()[0] is not None:
        try:
            ros2("daemon", "stop", timeout=30)
        except subprocess.TimeoutExpired:
            pass
