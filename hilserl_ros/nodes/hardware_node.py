"""SO-101 hardware interface node (/so101_driver).

Talks to the Feetech STS3215 bus through hilserl_ros.hardware.feetech, on the real USB port or,
in simulation, on the pseudo-terminal the sim node serves (the same driver code either way).

- publishes /joint_states (sensor_msgs/JointState: rad, rad/s, effort = signed load fraction)
  at ``publish_rate`` (50 Hz default) and /diagnostics (per servo: temperature, load, voltage,
  communication error rate) at ``diagnostics_rate``;
- takes position targets on /joint_commands; each is checked (known joints, finite), clamped
  to the calibrated joint range and to ``max_step`` rad away from the measured position, and
  written on the next cycle;
- ~/torque_enable (std_srvs/SetBool) turns torque on (after setting the goal to the present
  position, so the arm does not jump) or off;
- safety: torque off on shutdown, on a bus fault and on a servo over ``max_temperature``;
  after a fault it stops commanding, reconnects every ``reconnect_period`` and, once the bus
  answers again, leaves torque off until the operator enables it (or ``auto_enable_after_fault``).
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from hilserl_ros import topics
from hilserl_ros.hardware.bus import JOINT_NAMES, BusError, JointReading, PortLost, ServoFault
from hilserl_ros.ros import qos
from hilserl_ros.ros.params import ParamSpec, declare
from hilserl_ros.ros.runner import run_node
from hilserl_ros.ros.validation import DropCounter, non_finite

def default_sim_port() -> str:
    """Where the sim node serves its emulated bus unless told otherwise: one path per ROS
    domain, so two simulations on one machine (a test run beside a training run) never meet."""
    return f"/tmp/hilserl_so101_sim_d{os.environ.get('ROS_DOMAIN_ID', '0') or '0'}"

PARAMS = [
    ParamSpec("port", "/dev/ttyACM0", "serial port of the Feetech bus (real arm)", read_only=True),
    ParamSpec("use_sim", False, "connect to the simulated bus at sim_port instead of port", read_only=True),
    ParamSpec("sim_port", "", "pseudo-terminal served by the sim node; empty = per-domain default", read_only=True),
    ParamSpec("baudrate", 1_000_000, "bus baud rate", min=9600, max=1_000_000, read_only=True, unit="baud"),
    ParamSpec("calibration_file", "", "calibration YAML or LeRobot JSON; empty = nominal (URDF ranges)",
              read_only=True),
    ParamSpec("retries", 2, "driver retries of a failed transaction", min=0, max=10, read_only=True),
    ParamSpec("rx_timeout_ms", 10.0, "wait for a status packet (the SDK's default ~35 ms would block a 50 Hz "
              "cycle for 140 ms on a dead servo)", min=1.0, max=100.0, read_only=True, unit="ms"),
    ParamSpec("publish_rate", 50.0, "joint state rate", min=1.0, max=200.0, unit="Hz"),
    ParamSpec("diagnostics_rate", 1.0, "diagnostics rate", min=0.1, max=10.0, unit="Hz"),
    ParamSpec("max_step", 0.25, "largest change of a joint target per command", min=0.01, max=1.5, unit="rad"),
    ParamSpec("max_temperature", 65.0, "torque off above this servo temperature", min=30.0, max=85.0, unit="degC"),
    ParamSpec("torque_on_start", True, "enable torque once connected at start", read_only=True),
    ParamSpec("auto_enable_after_fault", False, "re-enable torque by itself once a fault clears"),
    ParamSpec("fault_after_errors", 3, "consecutive failed cycles (each already retried by the driver) "
              "before the bus is declared faulty; a lost port or a servo fault counts at once", min=1, max=100),
    ParamSpec("reconnect_period", 1.0, "seconds between reconnection attempts after a fault", min=0.1, max=30.0,
              unit="s"),
]


def make_bus(port: str, baudrate: int, calibration_file: str, retries: int = 2, rx_timeout_ms: float = 10.0):
    """The driver for a port (real or emulated): one code path for both."""
    from hilserl_ros.hardware.calibration import Calibration
    from hilserl_ros.hardware.feetech import FeetechArmBus

    if not calibration_file:
        calibration = Calibration.default()
    elif calibration_file.endswith(".json"):
        calibration = Calibration.from_lerobot_json(calibration_file)
    else:
        calibration = Calibration.load(calibration_file)
    return FeetechArmBus(port, calibration, baudrate=baudrate, retries=retries, rx_timeout_ms=rx_timeout_ms), calibration


class HardwareNode(Node):
    def __init__(self, **node_options):
        super().__init__("so101_driver", **node_options)
        self.params = declare(self, PARAMS)
        self.port = (self.params["sim_port"] or default_sim_port()) if self.params["use_sim"] else self.params["port"]
        self.bus, self.calibration = make_bus(self.port, self.params["baudrate"], self.params["calibration_file"],
                                              self.params["retries"], self.params["rx_timeout_ms"])
        self.lower, self.upper = self.calibration.limits()
        self.lock = threading.Lock()  # bus access: timer thread and service calls
        self.connected = False
        self.ever_connected = False
        self.torque = False
        self.fault: str | None = None
        self.last_attempt = 0.0
        self.reading: JointReading | None = None
        self.pending: np.ndarray | None = None  # latest accepted command, not yet written
        self.drops = DropCounter(self.get_logger(), "joint command")
        self.limited_commands = 0
        self.consecutive_errors = 0
        self.transient_errors = 0
        self.state_pub = self.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.EVENTS)
        self.create_subscription(JointState, topics.JOINT_COMMANDS, self._on_command, qos.EVENTS)
        self.create_service(SetBool, "~/torque_enable", self._on_torque)
        self.state_timer = self.create_timer(1.0 / self.params["publish_rate"], self._cycle)
        self.diag_timer = self.create_timer(1.0 / self.params["diagnostics_rate"], self._publish_diagnostics)
        self.params.bind_rate("publish_rate", self.state_timer)
        self.params.bind_rate("diagnostics_rate", self.diag_timer)
        self._connect(enable=self.params["torque_on_start"])

    # ------------------------------------------------------------------ bus
    def _connect(self, enable: bool) -> None:
        self.last_attempt = time.monotonic()
        try:
            with self.lock:
                self.bus.connect()
                self.reading = self.bus.read()
                if enable:
                    self.bus.write_positions(self.reading.position)  # hold where it is: no jump
                    self.bus.set_torque(True)
                    self.torque = True
            was = self.fault
            self.connected, self.fault, self.ever_connected = True, None, True
            self.get_logger().info(f"connected to the SO-101 bus on {self.port}"
                                   + (f" (fault cleared: {was})" if was else "")
                                   + (", torque on" if self.torque else ", torque off"))
        except BusError as err:
            self._on_fault(err, first=self.fault is None)

    def _on_fault(self, err: BusError, first: bool = True) -> None:
        """Stop commanding, try torque off, remember what happened."""
        self.pending = None
        if first and not self.ever_connected:
            self.get_logger().warning(f"cannot reach the bus yet ({err}); retrying every "
                                      f"{self.params['reconnect_period']:.1f} s")
        elif first:
            self.get_logger().error(f"bus fault: {err}; torque off, commands stopped, retrying every "
                                    f"{self.params['reconnect_period']:.1f} s")
        self.fault = str(err)
        self.connected = False
        with self.lock:
            if self.bus.connected:
                try:
                    self.bus.set_torque(False)
                except BusError:
                    pass  # the bus may be gone: the servos then hold no torque command anyway
            try:
                self.bus.close()
            except BusError:
                pass
        self.torque = False

    def _cycle(self) -> None:
        if not self.connected:
            if time.monotonic() - self.last_attempt >= self.params["reconnect_period"]:
                # never connected yet (port not there at start): as at start; after a fault on
                # the real arm, torque waits for the operator (in simulation nobody is there)
                enable = (self.params["torque_on_start"] if not self.ever_connected
                          else self.params["auto_enable_after_fault"] or self.params["use_sim"])
                self._connect(enable=enable)
            return
        try:
            with self.lock:
                reading = self.bus.read()
                self.reading = reading
                hot = np.flatnonzero(reading.temperature > self.params["max_temperature"])
                if hot.size and self.torque:
                    names = ", ".join(f"{JOINT_NAMES[i]} {reading.temperature[i]:.0f} C" for i in hot)
                    self.bus.set_torque(False)
                    self.torque = False
                    self.get_logger().error(f"over temperature ({names}): torque off")
                if self.pending is not None and self.torque:
                    self.bus.write_positions(self._safe_target(self.pending, reading.position))
                    self.pending = None
        except BusError as err:
            self.consecutive_errors += 1
            self.transient_errors += 1
            if isinstance(err, (PortLost, ServoFault)) or self.consecutive_errors >= self.params["fault_after_errors"]:
                self._on_fault(err)
            return
        self.consecutive_errors = 0
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(JOINT_NAMES)
        msg.position = reading.position.tolist()
        msg.velocity = reading.velocity.tolist()
        msg.effort = reading.load.tolist()
        self.state_pub.publish(msg)

    def _safe_target(self, target: np.ndarray, measured: np.ndarray) -> np.ndarray:
        step = self.params["max_step"]
        safe = np.clip(target, measured - step, measured + step)
        safe = np.clip(safe, self.lower, self.upper)
        if np.any(np.abs(safe - target) > 1e-9):
            self.limited_commands += 1
        return safe

    # ------------------------------------------------------------------ inputs
    def _on_command(self, msg: JointState) -> None:
        if len(msg.position) != len(msg.name):
            self.drops.drop(f"{len(msg.name)} names but {len(msg.position)} positions")
            return
        unknown = [n for n in msg.name if n not in JOINT_NAMES]
        if unknown:
            self.drops.drop(f"unknown joints {unknown}")
            return
        reason = non_finite("position", msg.position)
        if reason:
            self.drops.drop(reason)
            return
        if not self.connected or self.reading is None:
            self.drops.drop("bus not connected")
            return
        base = self.pending if self.pending is not None else self.reading.position
        target = np.array(base, float)
        for name, value in zip(msg.name, msg.position):
            target[JOINT_NAMES.index(name)] = value
        self.pending = target

    def _on_torque(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data and not self.connected:
            response.success, response.message = False, f"bus not connected ({self.fault or 'starting'})"
            return response
        try:
            with self.lock:
                if request.data:
                    present = self.bus.read().position
                    self.bus.write_positions(present)  # no jump when torque comes on
                self.bus.set_torque(request.data)
            self.torque = bool(request.data)
            self.pending = None
            response.success, response.message = True, f"torque {'on' if request.data else 'off'}"
            self.get_logger().info(response.message)
        except BusError as err:
            response.success, response.message = False, str(err)
            self._on_fault(err)
        return response

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        bus = DiagnosticStatus(name="so101_driver: bus", hardware_id=self.port)
        if self.connected:
            bus.level, bus.message = DiagnosticStatus.OK, "connected, torque " + ("on" if self.torque else "off")
        else:
            bus.level, bus.message = DiagnosticStatus.ERROR, f"fault: {self.fault}"
        bus.values = [KeyValue(key="commands_dropped", value=str(self.drops.total)),
                      KeyValue(key="failed_cycles", value=str(self.transient_errors)),
                      KeyValue(key="commands_limited", value=str(self.limited_commands))]
        out.status.append(bus)
        stats, reading = self.bus.stats, self.reading
        for i, (joint, cal) in enumerate(self.calibration.items()):
            sid = cal.servo_id
            status = DiagnosticStatus(name=f"so101_driver: {joint}", hardware_id=f"sts3215 id {sid}")
            rate = stats.error_rate(sid)
            values = {"comm_error_rate": f"{rate:.4f}", "retries": str(stats.retries.get(sid, 0))}
            level, message = DiagnosticStatus.OK, "ok"
            if reading is not None:
                values.update(temperature_c=f"{reading.temperature[i]:.0f}", load=f"{reading.load[i]:+.2f}",
                              voltage_v=f"{reading.voltage[i]:.1f}", position_rad=f"{reading.position[i]:+.3f}")
                if reading.temperature[i] > self.params["max_temperature"]:
                    level, message = DiagnosticStatus.ERROR, "over temperature"
                elif reading.temperature[i] > self.params["max_temperature"] - 10:
                    level, message = DiagnosticStatus.WARN, "hot"
            if rate > 0.01 and level == DiagnosticStatus.OK:
                level, message = DiagnosticStatus.WARN, "communication errors"
            if not self.connected:
                level, message = DiagnosticStatus.ERROR, "bus fault"
            status.level, status.message = level, message
            status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
            out.status.append(status)
        self.diag_pub.publish(out)

    def close(self) -> None:
        """Torque off on shutdown: the arm must never be left holding a stale command."""
        with self.lock:
            try:
                if self.connected and self.bus.connected:
                    self.bus.set_torque(False)
                    self.get_logger().info("shutdown: torque off")
            except BusError as err:
                self.get_logger().error(f"shutdown: could not turn torque off: {err}")
            finally:
                try:
                    self.bus.close()
                except BusError:
                    pass


def main():
    return run_node(HardwareNode)


if __name__ == "__main__":
    raise SystemExit(main())
