"""SO-101 hardware interface node (/so101_driver).

Talks to the Feetech STS3215 bus through hilserl_ros.hardware.feetech, on the real USB port or,
in simulation, on the pseudo-terminal the sim node serves (the same driver code either way).

- publishes /joint_states (sensor_msgs/JointState: rad, rad/s, effort = signed load fraction)
  at ``publish_rate`` (50 Hz default) and /diagnostics (per servo: temperature, load, voltage,
  communication error rate) at ``diagnostics_rate``;
- takes position targets on /joint_commands; each is checked (known joints, finite), clamped
  to the calibrated joint range and to ``max_step`` rad away from the latest measured
  position, and written at once (the latency from policy to arm is part of the control loop);
- publishes /joint_commands/applied (sensor_msgs/JointState) after each write of a command:
  the targets as written (after the limits above), stamped with the command they answer. What
  reached the arm, to plot against what was asked; in simulation the lockstep waits for it
  (a bus write alone does not say which command it carried);
- ~/torque_enable (std_srvs/SetBool) turns torque on (after setting the goal to the present
  position, so the arm does not jump) or off;
- safety: torque off on shutdown, on a bus fault and on a servo over ``max_temperature``;
  after a fault it stops commanding, reconnects every ``reconnect_period`` and, once the bus
  answers again, leaves torque off until the operator enables it (or ``auto_enable_after_fault``;
  in simulation, where no operator is there, it re-enables by itself).

Fault tolerance (what can go wrong on a real bus, and what the node does):

- Every (re)connection that does not enable torque writes torque OFF explicitly: after a
  pulled cable or a power glitch of the adapter the servos still hold torque from before, and
  "off until the operator enables it" must be true of the servos, not only of the node.
- A reconnection that fails after the port opened (a servo missing, faulted or answering
  garbage) still broadcasts torque off (hilserl_ros.hardware.torque_off): the driver refuses
  the bus, but the servos that do listen must not keep pushing.
- No exception leaves a callback: bus errors (BusError), and the OSError / serial exceptions
  pyserial raises when the device disappears, become a fault (torque off, commands stopped,
  reconnection); anything else is logged with its traceback and handled as a fault too. The
  node keeps running and recovers without a restart.
- /diagnostics names the servo and what happened: ``missing servo`` (no status packet),
  ``checksum errors`` (corrupt replies), ``over temperature`` (overheat status bit or above
  ``max_temperature``), ``servo fault`` (another status bit), ``port lost`` (the adapter
  disappeared). It is published at once when a fault starts and when it clears, besides
  ``diagnostics_rate``.

If the node itself dies without turning torque off (SIGKILL, crash), the launcher runs
``python -m hilserl_ros.hardware.torque_off --port PORT``.
"""
from __future__ import annotations

import os
import termios
import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from hilserl_ros import topics
from hilserl_ros.hardware.bus import (JOINT_NAMES, BusError, CorruptReply, JointReading, PortLost, ServoFault,
                                      ServoNotResponding)
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


@dataclass
class Fault:
    """What went wrong, for the log, the torque service's reply and /diagnostics."""

    kind: str  # "port lost", "missing servo", "checksum errors", "over temperature", "servo fault", "bus error"
    detail: str  # the error's own text, which names the servo and the transaction
    servos: dict[int, str] = field(default_factory=dict)  # servo id -> what is wrong with it


def classify(err: BusError) -> Fault:
    """The kind of a bus error and the servos it blames."""
    if isinstance(err, PortLost):
        kind = "port lost"
    elif isinstance(err, ServoNotResponding):
        kind = "missing servo"
    elif isinstance(err, CorruptReply):
        kind = "checksum errors"
    elif isinstance(err, ServoFault):
        kind = "over temperature" if "overheat" in err.reason else "servo fault"
    else:
        kind = "bus error"
    servos = {err.servo_id: kind} if err.servo_id is not None else {}
    for sid, names in (getattr(err, "faults", None) or {}).items():  # a ServoFault of several servos
        servos[sid] = "over temperature" if "overheat" in names else "servo fault: " + ", ".join(names)
    return Fault(kind, str(err), servos)


def as_bus_error(err: Exception, port: str) -> BusError:
    """Any exception out of a bus call as a BusError. The driver converts what it expects, but
    pyserial raises OSError subclasses (SerialException) and termios.error from places it does
    not wrap when the device vanishes mid-call (a pty closed, a USB adapter unplugged)."""
    if isinstance(err, BusError):
        return err
    if isinstance(err, (OSError, termios.error)):
        return PortLost(f"port {port} failed ({type(err).__name__}: {err}); adapter unplugged or reset?")
    return BusError(f"unexpected {type(err).__name__} in the driver: {err}")


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
        self._waiting_for_sim = False  # at start in simulation: the bus is not made yet (not a fault)
        self.torque = False
        self.fault: str | None = None  # what is wrong now (None = connected)
        self.fault_info: Fault | None = None
        self.last_fault: str = ""  # what started the latest fault episode, kept after it clears
        self.faults = 0  # fault episodes since start
        self.hot: str = ""  # joints above max_temperature while connected (torque went off for it)
        self.last_attempt = 0.0
        self.reading: JointReading | None = None
        self.pending: np.ndarray | None = None  # latest accepted command, not yet written
        self.pending_stamp = None  # the header stamp of the newest command merged into it
        self.drops = DropCounter(self.get_logger(), "joint command")
        self.limited_commands = 0
        self.consecutive_errors = 0
        self.transient_errors = 0
        self.state_pub = self.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
        # latched: a subscriber matched late (DDS discovery can take seconds) still gets the newest
        self.applied_pub = self.create_publisher(JointState, topics.JOINT_COMMANDS_APPLIED, qos.LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.EVENTS)
        self.create_subscription(JointState, topics.JOINT_COMMANDS, self._on_command, qos.EVENTS)
        self.create_service(SetBool, "~/torque_enable", self._on_torque)
        # the bus is polled in wall time, also when the clock is the simulation's (use_sim_time:
        # stamps in simulated time) and simulated time stands still (lockstep)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.state_timer = self.create_timer(1.0 / self.params["publish_rate"], self._cycle, clock=steady)
        self.diag_timer = self.create_timer(1.0 / self.params["diagnostics_rate"], self._publish_diagnostics,
                                            clock=steady)
        self.params.bind_rate("publish_rate", self.state_timer)
        self.params.bind_rate("diagnostics_rate", self.diag_timer)
        self._connect(enable=self.params["torque_on_start"])

    # ------------------------------------------------------------------ bus
    def _connect(self, enable: bool) -> None:
        self.last_attempt = time.monotonic()
        try:
            with self.lock:
                self.bus.connect()
                if not enable:
                    # The servos may still hold torque from before (a pulled cable, a crashed
                    # driver): off means off in the servos, until the operator enables it.
                    self.bus.set_torque(False)
                    self.torque = False
                self.reading = self.bus.read()
                if enable:
                    self.bus.write_positions(self.reading.position)  # hold where it is: no jump
                    self.bus.set_torque(True)
                    self.torque = True
            # the simulated bus not made yet at start is a wait, not a fault that cleared
            was = self.last_fault if self.fault is not None and not self._waiting_for_sim else None
            self._waiting_for_sim = False
            self.connected, self.fault, self.fault_info, self.ever_connected = True, None, None, True
            self.consecutive_errors = 0
            self.hot = ""
            self.get_logger().info(f"connected to the SO-101 bus on {self.port}"
                                   + (f" (fault cleared: {was})" if was else "")
                                   + (", torque on" if self.torque else ", torque off"
                                      + (" until enabled (~/torque_enable)" if was else "")))
            if was:
                self._publish_diagnostics()
        except Exception as err:  # noqa: BLE001 - whatever the driver raised, the node stays up
            self._on_fault(self._bus_error(err), first=self.fault is None)

    def _bus_error(self, err: Exception) -> BusError:
        """``err`` as a BusError; an exception that is not a bus or port error is a bug: its
        traceback is logged (once per fault episode) before it is handled as a fault."""
        if not isinstance(err, (BusError, OSError, termios.error)) and self.fault is None:
            self.get_logger().error("unexpected error on the bus path (a bug?):\n" + traceback.format_exc())
        return as_bus_error(err, self.port)

    def _on_fault(self, err: BusError, first: bool = True) -> None:
        """Stop commanding, torque off (through the bus, or by broadcast when the driver could
        not take the bus), remember what happened."""
        self.pending = None
        info = classify(err)
        if getattr(err, "reading", None) is not None:  # a ServoFault's data is good: diagnostics show it
            self.reading = err.reading
        if first and not self.ever_connected and self.params["use_sim"]:
            # /sim makes the simulated bus a few seconds after start: expected, said once
            self._waiting_for_sim = True
            self.get_logger().info(f"waiting for the simulated bus at {self.port} (/sim makes it when it is up)")
        elif first and not self.ever_connected:
            self.get_logger().warning(f"cannot reach the bus yet ({info.kind}: {err}); retrying every "
                                      f"{self.params['reconnect_period']:.1f} s")
        elif first:
            self.get_logger().error(f"bus fault ({info.kind}): {err}; torque off, commands stopped, retrying every "
                                    f"{self.params['reconnect_period']:.1f} s")
        if first and not self._waiting_for_sim:  # later failures of the episode are reconnection attempts
            self.faults += 1
            self.last_fault = f"{info.kind}: {err}"
        self.fault, self.fault_info = str(err), info
        self.connected = False
        self.consecutive_errors = 0
        with self.lock:
            torque_written = False
            if self.bus.connected:
                try:
                    self.bus.set_torque(False)
                    torque_written = True
                except Exception:  # noqa: BLE001 - the bus may be gone: then nothing holds a new command
                    pass
            try:
                self.bus.close()
            except Exception:  # noqa: BLE001 - the device is already gone
                pass
            if not torque_written and not isinstance(err, PortLost):
                # the port opens but the driver refused the bus (a servo missing, faulted,
                # answering garbage): the servos that listen must not keep holding torque
                self._broadcast_torque_off()
        self.torque = False
        if first:
            self._publish_diagnostics()

    def _broadcast_torque_off(self) -> bool:
        """One broadcast Torque_Enable=0 on the port, with the driver's port closed; best effort."""
        from hilserl_ros.hardware.torque_off import torque_off

        try:
            torque_off(self.port, self.params["baudrate"], confirm=False)
            return True
        except Exception:  # noqa: BLE001 - the port is unusable: nothing reaches the servos anyway
            return False

    def _cycle(self) -> None:
        if not self.connected:
            if time.monotonic() - self.last_attempt >= self.params["reconnect_period"]:
                # never connected yet (port not there at start): as at start; after a fault on
                # the real arm, torque waits for the operator (in simulation nobody is there)
                enable = (self.params["torque_on_start"] if not self.ever_connected
                          else self.params["auto_enable_after_fault"] or self.params["use_sim"])
                self._connect(enable=enable)
            return
        stamp = self.get_clock().now().to_msg()  # before the read: a stamp never claims a later state
        try:
            with self.lock:
                reading = self.bus.read()
                self.reading = reading
                hot = np.flatnonzero(reading.temperature > self.params["max_temperature"])
                if hot.size and self.torque:
                    names = ", ".join(f"servo {self.bus.ids[i]} ({self.bus.joint_names[i]}) "
                                      f"{reading.temperature[i]:.0f} C" for i in hot)
                    self.bus.set_torque(False)
                    self.torque = False
                    self.hot = names
                    self.get_logger().error(f"over temperature: {names} above {self.params['max_temperature']:g} C: "
                                            "torque off until enabled")
                self._write_pending()
        except Exception as err:  # noqa: BLE001 - no exception may leave the cycle: the node must stay up
            self._bus_failed(err)
            return
        self.consecutive_errors = 0
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(JOINT_NAMES)
        msg.position = reading.position.tolist()
        msg.velocity = reading.velocity.tolist()
        msg.effort = reading.load.tolist()
        self._publish(self.state_pub, msg)

    def _bus_failed(self, err: Exception) -> None:
        unexpected = not isinstance(err, (BusError, OSError, termios.error))  # a bug: do not retry blindly
        err = self._bus_error(err)
        self.consecutive_errors += 1
        self.transient_errors += 1
        if (unexpected or isinstance(err, (PortLost, ServoFault))
                or self.consecutive_errors >= self.params["fault_after_errors"]):
            self._on_fault(err)

    def _write_pending(self) -> None:
        """Write the accepted command (caller holds the lock), limited against the latest reading."""
        if self.pending is not None and self.torque and self.reading is not None:
            safe = self._safe_target(self.pending, self.reading.position)
            self.bus.write_positions(safe)
            self.pending = None
            applied = JointState(name=list(JOINT_NAMES), position=safe.tolist())
            applied.header.stamp = self.pending_stamp
            self._publish(self.applied_pub, applied)

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
        stamped = msg.header.stamp.sec or msg.header.stamp.nanosec
        self.pending_stamp = msg.header.stamp if stamped else self.get_clock().now().to_msg()
        # written at once, not on the next read cycle: up to 1/publish_rate of latency less
        # between the policy's action and the arm (a control period is only 100 ms)
        try:
            with self.lock:
                self._write_pending()
        except Exception as err:  # noqa: BLE001 - as in the cycle: a fault, never a dead node
            self._bus_failed(err)

    def _on_torque(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data and not self.connected:
            response.success, response.message = False, f"bus not connected ({self.fault or 'starting'})"
            return response
        if not self.connected:
            # off while faulted: the driver does not hold the bus; a broadcast still reaches the servos
            with self.lock:
                sent = self._broadcast_torque_off()
            self.torque = False
            response.success = sent
            response.message = ("torque off (broadcast; bus not connected)" if sent
                                else f"bus not connected and the port is unusable ({self.fault})")
            return response
        try:
            with self.lock:
                if request.data:
                    present = self.bus.read().position
                    self.bus.write_positions(present)  # no jump when torque comes on
                self.bus.set_torque(request.data)
            self.torque = bool(request.data)
            self.pending = None
            if request.data:
                self.hot = ""
            response.success, response.message = True, f"torque {'on' if request.data else 'off'}"
            self.get_logger().info(response.message)
        except Exception as err:  # noqa: BLE001 - a service callback must not take the node down
            err = self._bus_error(err)
            response.success, response.message = False, str(err)
            self._on_fault(err)
        return response

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        bus = DiagnosticStatus(name="so101_driver: bus", hardware_id=self.port)
        fault = self.fault_info if not self.connected else None
        if self.connected and self.hot and not self.torque:
            bus.level, bus.message = DiagnosticStatus.ERROR, f"over temperature: {self.hot}; torque off"
        elif self.connected:
            bus.level, bus.message = DiagnosticStatus.OK, "connected, torque " + ("on" if self.torque else "off")
        elif fault is not None:
            bus.level, bus.message = DiagnosticStatus.ERROR, f"{fault.kind}: {fault.detail}"
        else:
            bus.level, bus.message = DiagnosticStatus.ERROR, "not connected"
        blamed = ", ".join(f"{sid} ({self._joint_of(sid)})" for sid in (fault.servos if fault else {}))
        bus.values = [KeyValue(key="fault_kind", value=fault.kind if fault else ""),
                      KeyValue(key="fault_servos", value=blamed),
                      KeyValue(key="last_fault", value=self.last_fault),
                      KeyValue(key="faults", value=str(self.faults)),
                      KeyValue(key="commands_dropped", value=str(self.drops.total)),
                      KeyValue(key="failed_cycles", value=str(self.transient_errors)),
                      KeyValue(key="commands_limited", value=str(self.limited_commands)),
                      # replies that came after their read gave up, recognised and skipped
                      KeyValue(key="stale_replies", value=str(self.bus.stats.stale_replies))]
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
            if fault is not None and sid in fault.servos:
                level, message = DiagnosticStatus.ERROR, fault.servos[sid]
            elif fault is not None and fault.kind == "port lost":
                level, message = DiagnosticStatus.ERROR, "port lost"
            elif not self.connected:
                culprit = ", ".join(f"servo {s} ({self._joint_of(s)}): {what}" for s, what in fault.servos.items()) \
                    if fault is not None and fault.servos else (fault.kind if fault is not None else "not connected")
                level, message = DiagnosticStatus.ERROR, f"bus fault ({culprit})"
            status.level, status.message = level, message
            status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
            out.status.append(status)
        self._publish(self.diag_pub, out)

    def _publish(self, publisher, msg) -> None:
        """Publish, unless the process is shutting down: SIGINT invalidates the context while a
        callback may be running, and the failed publish must not turn a clean shutdown (torque
        off in close()) into a crash."""
        try:
            publisher.publish(msg)
        except Exception:
            if self.context.ok():
                raise

    def _joint_of(self, servo_id: int) -> str:
        return next((joint for joint, cal in self.calibration.items() if cal.servo_id == servo_id), "?")

    def close(self) -> None:
        """Torque off on shutdown: the arm must never be left holding a stale command.

        A bus transaction cut short (a node run without the runner's signal handling, where
        SIGINT raises KeyboardInterrupt anywhere) leaves the SDK's port marked busy and the
        driver's torque write fails. The fallback is a broadcast on a freshly opened port, which
        needs nothing of the interrupted state."""
        with self.lock:
            if not (self.connected and self.bus.connected):
                try:
                    self.bus.close()
                except Exception:  # noqa: BLE001 - the device is already gone
                    pass
                return  # faulted: torque went off (or could not be reached) when the fault began
            try:
                self.bus.set_torque(False)
                self.get_logger().info("shutdown: torque off")
                failure = None
            except Exception as err:  # noqa: BLE001 - fall back below
                failure = as_bus_error(err, self.port)
            try:
                self.bus.close()
            except Exception:  # noqa: BLE001 - the device is already gone
                pass
            if failure is not None:
                if self._broadcast_torque_off():
                    self.get_logger().info(f"shutdown: torque off (broadcast; the driver's write failed: {failure})")
                else:
                    self.get_logger().error(f"shutdown: could not turn torque off: {failure}; run python -m "
                                            f"hilserl_ros.hardware.torque_off --port {self.port}")
            self.connected = False

def main():
    return run_node(HardwareNode)


if __name__ == "__main__":
    raise SystemExit(main())
