"""The emergency torque-off command (python -m hilserl_ros.hardware.torque_off) against the
emulated STS3215 bus: it turns every servo's torque off without ROS and without a
calibration, names the servos that did not confirm, and fails loudly only when the port is
unusable. It is what runs after the hardware node dies without turning torque off itself."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys

import pytest

from hilserl_ros.hardware.bus import SERVO_IDS
from hilserl_ros.hardware.torque_off import PortUnavailable, torque_off
from ros_harness import EmulatorProcess, wait_for

TORQUE_ENABLE = 40


@pytest.fixture
def bus(tmp_path):
    emulator = EmulatorProcess(str(tmp_path / "ttySO101"))
    yield emulator
    emulator.stop()


def torque_registers(bus) -> list[int]:
    return [bus.read_register(sid, TORQUE_ENABLE) for sid in SERVO_IDS]


def enable_all(bus) -> None:
    for sid in SERVO_IDS:
        bus.call("write_register", sid, TORQUE_ENABLE, 1)
    assert torque_registers(bus) == [1] * 6


# Per-reply timeout of the read-backs: the 35 ms default is sized for a real servo; the emulator
# is another process, which a loaded machine may schedule later than that (a servo that answers
# would read as NOT CONFIRMED). A silent servo costs 4 of these (2 attempts, ack and read-back).
REPLY_TIMEOUT = "1.0"


def run_command(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hilserl_ros.hardware.torque_off", "--timeout", REPLY_TIMEOUT,
                           *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def broken_ros(tmp_path) -> dict:
    """An environment in which importing rclpy fails, as when the ROS installation is broken."""
    shadow = tmp_path / "broken_ros"
    (shadow / "rclpy").mkdir(parents=True)
    (shadow / "rclpy" / "__init__.py").write_text("raise ImportError('ROS is broken (test)')\n")
    return {"PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}


def test_the_command_turns_every_servo_off_without_ros(bus, tmp_path):
    enable_all(bus)
    env = broken_ros(tmp_path)
    proof = subprocess.run([sys.executable, "-c", "import rclpy"], capture_output=True, text=True,
                           env={**os.environ, **env})
    assert proof.returncode != 0 and "ROS is broken" in proof.stderr  # the environment is really broken
    done = run_command("--port", bus.link_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert torque_registers(bus) == [0] * 6
    assert "6/6 servos confirmed" in done.stdout, done.stdout
    for sid in SERVO_IDS:
        assert f"servo {sid} (" in done.stdout


def test_a_missing_servo_is_named_and_the_others_still_go_off(bus):
    enable_all(bus)
    bus.call("remove_servo", 4)
    done = run_command("--port", bus.link_path)
    assert done.returncode == 0, done.stdout + done.stderr  # the write went out: success, with the gap named
    registers = torque_registers(bus)
    assert registers[:3] + registers[4:] == [0] * 5
    assert "servo 4 (wrist_flex): NOT CONFIRMED: no reply" in done.stdout, done.stdout
    assert "5/6 servos confirmed; not confirmed: 4 (wrist_flex)" in done.stdout, done.stdout


def test_a_missing_port_exits_non_zero_with_the_reason(tmp_path):
    port = str(tmp_path / "ttyNOTHERE")
    done = run_command("--port", port)
    assert done.returncode != 0
    assert "torque off FAILED" in done.stderr and port in done.stderr and "No such file" in done.stderr, done.stderr
    with pytest.raises(PortUnavailable, match="cannot open"):
        torque_off(port)


def test_the_function_reports_per_servo_and_can_broadcast_only(bus):
    enable_all(bus)
    result = torque_off(bus.link_path, confirm=False)  # what the hardware node uses after a failed reconnect
    assert result["broadcast"] and result["confirmed"] == [] and result["unconfirmed"] == {}
    wait_for(lambda: torque_registers(bus) == [0] * 6, 30, "the broadcast to reach every servo")
    enable_all(bus)
    bus.call("corrupt_replies", 2, 10)  # servo 2 answers, but never with a valid packet
    result = torque_off(bus.link_path, timeout=float(REPLY_TIMEOUT))
    assert result["confirmed"] == [1, 3, 4, 5, 6]
    assert list(result["unconfirmed"]) == [2] and "corrupt" in result["unconfirmed"][2]
    assert bus.read_register(2, TORQUE_ENABLE) == 0  # the write reached it all the same


def test_a_port_locked_by_a_driver_is_written_anyway_and_said_so(bus):
    enable_all(bus)
    holder = os.open(bus.link_path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running (hung) driver holds it
        done = run_command("--port", bus.link_path)
    finally:
        os.close(holder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "locked by another process" in done.stdout, done.stdout
    assert torque_registers(bus) == [0] * 6


@pytest.mark.ros
def test_after_the_hardware_node_is_killed_the_command_releases_the_arm(bus, node_process):
    # no in-process ROS peer here: a DDS participant torn down right after its peer was
    # SIGKILLed crashed the interpreter once (FastDDS, in rclpy's destroy_node); the bus itself
    # shows what matters: the driver turned torque on, and it is left on when the driver dies
    driver = node_process("hilserl_ros.nodes.hardware_node", "-p", f"port:={bus.link_path}",
                          "-p", "rx_timeout_ms:=100.0", name="so101_driver")  # the emulator may answer late
    driver.wait_output("connected to the SO-101 bus", timeout=30)
    wait_for(lambda: torque_registers(bus) == [1] * 6, 20, "torque on at the driver's start")  # torque_on_start
    os.killpg(driver.proc.pid, signal.SIGKILL)  # no chance to turn torque off itself
    driver.proc.wait(30)
    assert torque_registers(bus) == [1] * 6  # the arm is left stiff
    done = run_command("--port", bus.link_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert torque_registers(bus) == [0] * 6
