"""An emulated Feetech STS3215 servo bus on a pseudo-terminal (no ROS).

The unmodified Feetech SDK (``scservo_sdk``), or anything else that speaks the protocol, opens
:attr:`EmulatedServoBus.port` (or the stable symlink ``link_path``) exactly as it opens the real
USB adapter. A background thread reads instruction packets from the pty's master side, drops
any with a bad checksum (as a real servo does), and answers PING, READ, WRITE, REG_WRITE,
ACTION, SYNC_READ and SYNC_WRITE with status packets built from each servo's 256-byte control
table::

    instruction  FF FF ID LEN INSTR PARAMS... CHK     CHK = ~(ID + LEN + INSTR + sum(PARAMS)) & 0xFF
    status       FF FF ID LEN ERROR PARAMS... CHK     LEN = len(PARAMS) + 2

Multi-byte registers are little endian (STS: the SDK's protocol_end 0); signed registers are
sign-magnitude (Present_Speed/Goal_Speed sign bit 15, Present_Load bit 10, Homing_Offset bit
11). SYNC_READ is answered by every listed servo, in the listed order; broadcast (ID 0xFE)
WRITE/SYNC_WRITE get no reply; a servo whose Response_Status_Level (address 8) is 0 answers
only PING and READ. Not emulated: ID and baud-rate changes (writes to addresses 5 and 6 are
stored but the servo keeps answering on its ID; the baud rate the client sets on the pty is not
checked), EEPROM persistence, multi-turn and wheel modes.

With ``wire_timing`` (default) the bus is as busy as a real half-duplex bus at ``baudrate`` (10
bits per byte: the instruction's bytes, each servo's Return_Delay_Time (address 7, 2 us units)
and its status packet's bytes): an instruction that comes while the previous transaction is
still on the wire waits for it, so rates measured against the emulator are what the wire
allows. The status packets of one instruction are written together, in one write. When what is
left of their wire time is short (under ``SHORT_WIRE_S``, every transaction at 1 Mbps) they are
written at once and the wire time is charged to the next instruction instead: sleeping for it
costs a second wake-up per instruction, and on a loaded machine a wake-up can take tens of
milliseconds (measured: replies 36 ms late at the 99.9th percentile with load 13 on 2 cores,
past the SDK's 35 ms timeout). A single transaction then ends up to that much early; back to
back ones end when the wire says. Longer replies (slow baud rates) are held until they would
have finished.

Served by a thread, the emulator shares its process's GIL: with a busy Python thread in that
process (or a client spinning on the port in it, as the SDK does) replies wait for the GIL on
every wake-up and miss the SDK's timeout (measured: 1 in 10 sync reads under load). A client
that must not see that runs the emulator in a process of its own
(``python -m hilserl_ros.hardware.emulator``), as a real bus is.

Backends: what moves the servos
-------------------------------
A backend is any object with one method (:class:`ServoBackend` documents it; subclassing is
optional, duck typing is enough)::

    def update(self, tables: dict[int, bytearray], now: float) -> None

``tables`` maps each servo ID to its live 256-byte control table; ``now`` is
``time.monotonic()``. The emulator calls ``update``

- before it answers any instruction that returns data or a status byte (PING, READ,
  SYNC_READ), so what is read is current, and
- after it has applied any write (WRITE, REG_WRITE + ACTION, SYNC_WRITE), so a new goal or
  torque setting is seen at once;

from its I/O thread, holding the emulator's lock, so ``update`` is the only code touching the
tables while it runs (the emulator's own register methods take the same lock). The backend
reads what the client commanded and writes what the servo measures:

    reads   Torque_Enable 40 (1 byte, 1 = on), Acceleration 41 (1, x100 ticks/s^2, 0 = max),
            Goal_Position 42 (2), Goal_Speed 46 (2, ticks/s, 0 = max), Min/Max_Angle_Limit 9/11
    writes  Present_Position 56 (2, ticks 0..4095), Present_Speed 58 (2, ticks/s, sign bit 15),
            Present_Load 60 (2, 0..1000 = fraction x1000, sign bit 10), Present_Voltage 62
            (1, 0.1 V), Present_Temperature 63 (1, deg C), Moving 66 (1), Present_Current 69 (2)

Rules: keep ``update`` short (it is on the reply path: tens of microseconds, not
milliseconds); do not call back into the emulator from it; if the backend's own state is also
touched by another thread (a physics loop), guard it with the backend's own lock. An exception
raised by ``update`` is logged and the servos answer with the tables as they are. The status
byte is derived by the emulator after ``update``: 0x04 (overheat) when Present_Temperature >=
Max_Temperature_Limit (address 13), 0x01 (voltage) when Present_Voltage is outside
Min/Max_Input_Voltage (15/14), plus injected faults. :func:`put_u16`, :func:`get_u16` and
:func:`sign_magnitude` encode registers. :class:`FirstOrderServoModel` is the reference backend.

Fault injection (thread-safe, effective from the next instruction): :meth:`drop_replies`,
:meth:`corrupt_replies` (bad checksum), :meth:`delay_replies`, :meth:`inject` (bytes nobody asked
for, such as a late reply), :meth:`remove_servo`/:meth:`restore_servo` (stops
answering anything), :meth:`overheat`/:meth:`clear_overheat`, :meth:`close_port` (cable
pulled: the client's reads and writes fail with EIO, the device and the link disappear) and
:meth:`reopen_port` (a new pty; ``link_path`` points at it again).

Run one from a shell: ``python -m hilserl_ros.hardware.emulator --link /tmp/so101_bus``.
"""
from __future__ import annotations

import argparse
import collections
import errno
import logging
import math
import os
import select
import signal
import threading
import time
import tty
from dataclasses import dataclass, field

from hilserl_ros.hardware.bus import SERVO_IDS

log = logging.getLogger(__name__)

# Instructions
INST_PING, INST_READ, INST_WRITE, INST_REG_WRITE, INST_ACTION = 0x01, 0x02, 0x03, 0x04, 0x05
INST_SYNC_READ, INST_SYNC_WRITE = 0x82, 0x83
BROADCAST_ID = 0xFE

# Status error bits (STS)
ERR_VOLTAGE, ERR_ANGLE, ERR_OVERHEAT, ERR_OVERCURRENT, ERR_OVERLOAD = 0x01, 0x02, 0x04, 0x08, 0x20

# STS3215 control table (addresses)
ADDR_FIRMWARE_MAJOR, ADDR_FIRMWARE_MINOR, ADDR_MODEL_NUMBER = 0, 1, 3
ADDR_ID, ADDR_BAUD_RATE, ADDR_RETURN_DELAY, ADDR_RESPONSE_LEVEL = 5, 6, 7, 8
ADDR_MIN_ANGLE_LIMIT, ADDR_MAX_ANGLE_LIMIT = 9, 11
ADDR_MAX_TEMPERATURE, ADDR_MAX_VOLTAGE, ADDR_MIN_VOLTAGE, ADDR_MAX_TORQUE = 13, 14, 15, 16
ADDR_P_GAIN, ADDR_D_GAIN, ADDR_I_GAIN = 21, 22, 23
ADDR_PROTECTION_CURRENT, ADDR_HOMING_OFFSET, ADDR_OPERATING_MODE = 28, 31, 33
ADDR_TORQUE_ENABLE, ADDR_ACCELERATION, ADDR_GOAL_POSITION, ADDR_GOAL_TIME, ADDR_GOAL_SPEED = 40, 41, 42, 44, 46
ADDR_TORQUE_LIMIT, ADDR_LOCK = 48, 55
ADDR_PRESENT_POSITION, ADDR_PRESENT_SPEED, ADDR_PRESENT_LOAD = 56, 58, 60
ADDR_PRESENT_VOLTAGE, ADDR_PRESENT_TEMPERATURE, ADDR_MOVING, ADDR_PRESENT_CURRENT = 62, 63, 66, 69

STS3215_MODEL = 777
TABLE_SIZE = 256
# Written only by the servo itself: versions, model number, and the present-state block.
READ_ONLY = frozenset(range(0, 5)) | frozenset(range(ADDR_PRESENT_POSITION, 71))
PARTIAL_PACKET_TIMEOUT_S = 0.02  # a half-received instruction idle this long is discarded
SHORT_WIRE_S = 0.005  # replies with less wire time than this left are written at once (docstring)


def checksum(body) -> int:
    """Feetech checksum of the bytes after the FF FF header (ID .. last parameter)."""
    return ~sum(body) & 0xFF


def instruction_packet(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    body = bytes([servo_id, len(params) + 2, instruction]) + bytes(params)
    return b"\xff\xff" + body + bytes([checksum(body)])


def status_packet(servo_id: int, error: int, params: bytes = b"") -> bytes:
    body = bytes([servo_id, len(params) + 2, error]) + bytes(params)
    return b"\xff\xff" + body + bytes([checksum(body)])


def get_u16(table, address: int) -> int:
    return table[address] | (table[address + 1] << 8)


def put_u16(table: bytearray, address: int, value: int) -> None:
    table[address] = value & 0xFF
    table[address + 1] = (value >> 8) & 0xFF


def sign_magnitude(value: int, sign_bit: int) -> int:
    """Signed value -> STS register encoding (magnitude, sign in ``sign_bit``), saturating."""
    magnitude = min(abs(int(value)), (1 << sign_bit) - 1)
    return magnitude | (1 << sign_bit) if value < 0 else magnitude


def from_sign_magnitude(raw: int, sign_bit: int) -> int:
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw & (1 << sign_bit) else magnitude


def default_control_table(servo_id: int) -> bytearray:
    """An STS3215 as LeRobot leaves it after setup: 1 Mbps, no return delay, full angle range,
    torque off, at mid position, 12.0 V, 30 C."""
    t = bytearray(TABLE_SIZE)
    t[ADDR_FIRMWARE_MAJOR], t[ADDR_FIRMWARE_MINOR] = 3, 10
    put_u16(t, ADDR_MODEL_NUMBER, STS3215_MODEL)
    t[ADDR_ID], t[ADDR_BAUD_RATE], t[ADDR_RETURN_DELAY], t[ADDR_RESPONSE_LEVEL] = servo_id, 0, 0, 1
    put_u16(t, ADDR_MIN_ANGLE_LIMIT, 0)
    put_u16(t, ADDR_MAX_ANGLE_LIMIT, 4095)
    t[ADDR_MAX_TEMPERATURE], t[ADDR_MAX_VOLTAGE], t[ADDR_MIN_VOLTAGE] = 70, 140, 40
    put_u16(t, ADDR_MAX_TORQUE, 1000)
    t[ADDR_P_GAIN], t[ADDR_D_GAIN], t[ADDR_I_GAIN] = 32, 32, 0
    put_u16(t, ADDR_PROTECTION_CURRENT, 500)
    put_u16(t, ADDR_TORQUE_LIMIT, 1000)
    t[ADDR_LOCK] = 1
    put_u16(t, ADDR_PRESENT_POSITION, 2048)
    put_u16(t, ADDR_GOAL_POSITION, 2048)  # goal = present at power-up: enabling torque does not jump
    t[ADDR_PRESENT_VOLTAGE], t[ADDR_PRESENT_TEMPERATURE] = 120, 30
    return t


class ServoBackend:
    """What moves the emulated servos; see the module docstring for the full contract."""

    def update(self, tables: dict[int, bytearray], now: float) -> None:
        """Read the commanded registers of ``tables``, advance to ``now`` (time.monotonic()),
        write the measured registers. Called with the emulator's lock held."""
        raise NotImplementedError


class FirstOrderServoModel(ServoBackend):
    """Servos without inertia or gravity: with torque on each moves toward its goal (clamped to
    its angle limits) with time constant ``time_constant``, at most ``max_speed`` (or the
    Goal_Speed register when set) and, when the Acceleration register is set, changing speed by
    at most that; with torque off it stays where it is. Load is proportional to the tracking
    error (full load at ``full_load_error`` ticks); temperature creeps from ``ambient_c``
    toward ``ambient_c + heat_at_full_load_c * |load|`` with ``thermal_time_constant``; the
    supply sags a little under load."""

    def __init__(self, max_speed: float = 3000.0, time_constant: float = 0.04, ambient_c: float = 30.0,
                 supply_v: float = 12.0, full_load_error: float = 400.0, heat_at_full_load_c: float = 45.0,
                 thermal_time_constant: float = 300.0, max_substep: float = 0.002):
        self.max_speed, self.time_constant = float(max_speed), float(time_constant)
        self.ambient_c, self.supply_v = float(ambient_c), float(supply_v)
        self.full_load_error, self.heat_at_full_load_c = float(full_load_error), float(heat_at_full_load_c)
        self.thermal_time_constant, self.max_substep = float(thermal_time_constant), float(max_substep)
        self._state: dict[int, list[float]] = {}  # id -> [position ticks, speed ticks/s, temperature C]
        self._last: float | None = None
        self._lock = threading.Lock()

    def set_position(self, servo_id: int, ticks: float) -> None:
        """Put a servo somewhere by hand (as if moved while unpowered); speed resets to zero."""
        with self._lock:
            state = self._state.setdefault(servo_id, [float(ticks), 0.0, self.ambient_c])
            state[0], state[1] = float(ticks), 0.0

    def position(self, servo_id: int) -> float:
        with self._lock:
            return self._state[servo_id][0]

    def update(self, tables: dict[int, bytearray], now: float) -> None:
        with self._lock:
            dt = 0.0 if self._last is None else max(0.0, now - self._last)
            self._last = now
            steps = min(200, max(1, math.ceil(dt / self.max_substep))) if dt > 0 else 0
            h = dt / steps if steps else 0.0
            cool = 1.0 - math.exp(-dt / self.thermal_time_constant) if dt > 0 else 0.0
            for sid, table in tables.items():
                state = self._state.get(sid)
                if state is None:
                    # position from the table (where the servo was left); temperature from the
                    # model, never from the register, which may hold an injected fault
                    state = self._state[sid] = [float(get_u16(table, ADDR_PRESENT_POSITION)), 0.0,
                                                self.ambient_c]
                pos, vel, temp = state
                torque = table[ADDR_TORQUE_ENABLE] == 1 and table[ADDR_OPERATING_MODE] == 0
                goal = float(get_u16(table, ADDR_GOAL_POSITION) & 0x7FFF)
                low, high = get_u16(table, ADDR_MIN_ANGLE_LIMIT), get_u16(table, ADDR_MAX_ANGLE_LIMIT)
                if high > low:  # both 0 would be multi-turn mode: no clamp
                    goal = min(max(goal, low), high)
                if torque:
                    vmax = get_u16(table, ADDR_GOAL_SPEED) & 0x7FFF or self.max_speed
                    vmax = min(vmax, self.max_speed)
                    acc = table[ADDR_ACCELERATION] * 100.0
                    for _ in range(steps):
                        err = goal - pos
                        want = max(-vmax, min(vmax, err / self.time_constant))
                        if acc > 0:
                            want = vel + max(-acc * h, min(acc * h, want - vel))
                        step = want * h
                        # within half a tick (the servo's dead zone) or reached within the sub-step
                        if abs(err) <= 0.5 or (abs(step) >= abs(err) and (step >= 0) == (err >= 0)):
                            pos, vel = goal, 0.0  # arrives within the sub-step and stops there
                        else:
                            pos, vel = pos + step, want
                    load = max(-1.0, min(1.0, (goal - pos) / self.full_load_error))
                else:
                    vel, load = 0.0, 0.0
                temp += (self.ambient_c + self.heat_at_full_load_c * abs(load) - temp) * cool
                state[:] = [pos, vel, temp]
                put_u16(table, ADDR_PRESENT_POSITION, int(min(max(round(pos), 0), 4095)))
                put_u16(table, ADDR_PRESENT_SPEED, sign_magnitude(round(vel), 15))
                put_u16(table, ADDR_PRESENT_LOAD, sign_magnitude(round(load * 1000), 10))
                put_u16(table, ADDR_PRESENT_CURRENT, int(abs(load) * 300))
                table[ADDR_PRESENT_VOLTAGE] = int(round((self.supply_v - 0.4 * abs(load)) * 10))
                table[ADDR_PRESENT_TEMPERATURE] = int(min(max(round(temp), 0), 255))
                table[ADDR_MOVING] = 1 if abs(vel) > 1.0 else 0


@dataclass
class _Servo:
    servo_id: int
    present: bool = True
    drop: int = 0  # replies still to drop
    corrupt: int = 0  # replies still to send with a bad checksum
    overheat_c: float | None = None
    pending: tuple[int, bytes] | None = None  # REG_WRITE waiting for ACTION


@dataclass
class EmulatorStats:
    requests: int = 0  # well-formed instruction packets received
    bad_checksums: int = 0  # instruction packets dropped for a bad checksum
    replies: int = 0  # status packets sent
    dropped_replies: int = 0
    corrupted_replies: int = 0
    instructions: collections.Counter = field(default_factory=collections.Counter)
    backend_errors: int = 0
    internal_errors: int = 0  # exceptions while serving an instruction (bugs): tests expect 0


class EmulatedServoBus:
    """Emulated STS3215 servos on a pseudo-terminal; see the module docstring.

    ``with EmulatedServoBus(link_path="/tmp/bus") as emu: FeetechArmBus(emu.link_path, ...)``
    """

    def __init__(self, ids=SERVO_IDS, backend: ServoBackend | None = None, baudrate: int = 1_000_000,
                 wire_timing: bool = True, link_path: str | None = None):
        ids = tuple(int(i) for i in ids)
        if not ids or len(set(ids)) != len(ids) or not all(0 <= i <= 253 for i in ids):
            raise ValueError(f"servo ids must be distinct and in 0..253, got {ids}")
        if baudrate <= 0:
            raise ValueError(f"baudrate must be positive, got {baudrate}")
        self.ids = ids
        self.backend = backend if backend is not None else FirstOrderServoModel()
        self.baudrate = int(baudrate)
        self.wire_timing = bool(wire_timing)
        self.link_path = os.path.abspath(link_path) if link_path else None
        self.stats = EmulatorStats()
        self._byte_time = 10.0 / self.baudrate  # start + 8 data + stop bits
        self._tables = {sid: default_control_table(sid) for sid in ids}
        self._servos = {sid: _Servo(sid) for sid in ids}
        self._lock = threading.RLock()  # tables, servo fault state, backend calls
        self._master: int | None = None
        self._slave: int | None = None
        self._port: str | None = None
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._commands: collections.deque = collections.deque()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._bus_free = 0.0  # when the emulated wire is next idle (monotonic)
        self._late: tuple[float, int] = (0.0, 0)  # (seconds, how many more instructions) answered late
        self._prefix = b""  # injected bytes that go out with the next answer
        self._warned_backend = False

    # ------------------------------------------------------------------ life cycle
    @property
    def port(self) -> str:
        """The pty's slave device (changes on :meth:`reopen_port`; ``link_path`` does not)."""
        if self._port is None:
            raise RuntimeError("the emulated bus is not running (start() it) or its port is closed")
        return self._port

    @property
    def port_open(self) -> bool:
        return self._master is not None

    def start(self) -> "EmulatedServoBus":
        if self._thread is not None:
            raise RuntimeError("emulated bus already started")
        if self.link_path and os.path.lexists(self.link_path) and not os.path.islink(self.link_path):
            raise FileExistsError(f"{self.link_path} exists and is not a symlink; not replacing it")
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._open_pty()
        with self._lock:
            self._update(time.monotonic())  # the backend fills the tables before anyone reads them
        self._thread = threading.Thread(target=self._run, name="sts3215-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, close the pty (the client sees the port vanish) and remove the link."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._wake()
        thread.join(timeout=5.0)
        if thread.is_alive():  # never expected: the loop wakes on the pipe at once
            log.error("emulator thread did not stop within 5 s")
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)
        self._wake_r = self._wake_w = None

    def __enter__(self) -> "EmulatedServoBus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def _servo(self, servo_id: int) -> _Servo:
        try:
            return self._servos[servo_id]
        except KeyError:
            raise KeyError(f"no emulated servo with id {servo_id} (have {self.ids})") from None

    def drop_replies(self, servo_id: int, count: int = 1) -> None:
        """The servo's next ``count`` status packets are lost (it still executes instructions)."""
        with self._lock:
            self._servo(servo_id).drop += int(count)

    def corrupt_replies(self, servo_id: int, count: int = 1) -> None:
        """The servo's next ``count`` status packets arrive with a wrong checksum."""
        with self._lock:
            self._servo(servo_id).corrupt += int(count)

    def delay_replies(self, seconds: float, count: int = 1) -> None:
        """The answers to the next ``count`` instructions that have one leave ``seconds`` late,
        and nothing else is served meanwhile: a loaded host, or a USB adapter holding the bytes
        (its latency timer). A client that gave up waiting sees the reply arrive afterwards."""
        with self._lock:
            self._late = (float(seconds), int(count))

    def inject(self, data: bytes, with_next_reply: bool = False) -> None:
        """Bytes the client receives unasked (line noise, a late reply to an earlier
        instruction): written now, or with ``with_next_reply`` when the next instruction is
        served, just before its answer (in the same write) or where it would have been had it
        been dropped: they reach the client while it waits for that answer."""
        if with_next_reply:
            with self._lock:
                self._prefix += bytes(data)
        else:
            self._in_thread(lambda: self._send(bytes(data)))

    def remove_servo(self, servo_id: int) -> None:
        """The servo is gone from the bus (unplugged, dead): it neither answers nor executes."""
        with self._lock:
            self._servo(servo_id).present = False

    def restore_servo(self, servo_id: int) -> None:
        with self._lock:
            self._servo(servo_id).present = True

    def overheat(self, servo_id: int, temperature_c: float = 85.0) -> None:
        """The servo reads ``temperature_c`` and sets the overheat bit (0x04) in its status
        packets until :meth:`clear_overheat`."""
        with self._lock:
            servo = self._servo(servo_id)
            servo.overheat_c = float(temperature_c)
            self._tables[servo_id][ADDR_PRESENT_TEMPERATURE] = int(min(max(round(temperature_c), 0), 255))

    def clear_overheat(self, servo_id: int) -> None:
        with self._lock:
            self._servo(servo_id).overheat_c = None
            self._update(time.monotonic())

    def close_port(self) -> None:
        """Pull the cable: the pty goes away (the client's reads/writes fail with EIO, opening the
        path fails) and the link is removed. Servo state is kept."""
        self._in_thread(self._close_pty)

    def reopen_port(self) -> str:
        """Plug the cable back: a new pty, ``link_path`` pointing at it. Returns the new port."""
        def reopen():
            if self._master is None:
                self._open_pty()
        self._in_thread(reopen)
        return self.port

    # ------------------------------------------------------------------ registers (tests, tools)
    def read_register(self, servo_id: int, address: int, size: int = 1) -> int:
        """Unsigned little-endian value of ``size`` bytes at ``address`` (after a backend update)."""
        with self._lock:
            self._update(time.monotonic())
            table = self._tables[self._servo(servo_id).servo_id]
            return int.from_bytes(table[address:address + size], "little")

    def write_register(self, servo_id: int, address: int, value: int, size: int = 1) -> None:
        """Set a register directly (any address, as the servo itself would), then update."""
        with self._lock:
            table = self._tables[self._servo(servo_id).servo_id]
            table[address:address + size] = int(value).to_bytes(size, "little")
            self._update(time.monotonic())

    def table(self, servo_id: int) -> bytes:
        """A copy of the servo's control table."""
        with self._lock:
            return bytes(self._tables[self._servo(servo_id).servo_id])

    # ------------------------------------------------------------------ pty
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass untouched, as on a UART
        os.set_blocking(master, False)
        # We keep the slave open ourselves: with no slave fd open, reads on the master fail with
        # EIO, which would make a client's close/reopen look like a pulled cable to us.
        self._master, self._slave, self._port = master, slave, os.ttyname(slave)
        self._bus_free = 0.0
        if self.link_path:
            tmp = f"{self.link_path}.{os.getpid()}.tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(self._port, tmp)
            os.replace(tmp, self.link_path)  # atomic: the path is never missing while plugged
        log.info("emulated STS3215 bus (ids %s) on %s%s", self.ids, self._port,
                 f" (link {self.link_path})" if self.link_path else "")

    def _close_pty(self) -> None:
        if self.link_path and os.path.islink(self.link_path) and os.readlink(self.link_path) == self._port:
            os.unlink(self.link_path)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = self._port = None

    # ------------------------------------------------------------------ I/O thread
    def _wake(self) -> None:
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # already awake

    def _in_thread(self, fn) -> None:
        """Run ``fn`` on the I/O thread (it owns the fds: closing an fd another thread is
        selecting on is a race), or here when the thread is not running."""
        thread = self._thread
        if thread is None or not thread.is_alive() or threading.current_thread() is thread:
            fn()
            return
        done, failure = threading.Event(), []

        def call():
            try:
                fn()
            except BaseException as err:  # handed back to the caller
                failure.append(err)
            finally:
                done.set()
        self._commands.append(call)
        self._wake()
        if not done.wait(5.0):
            raise RuntimeError("emulator thread did not respond within 5 s")
        if failure:
            raise failure[0]

    def _run(self) -> None:
        buf = bytearray()
        last_rx = 0.0
        while not self._stopping:
            fds = [self._wake_r] + ([self._master] if self._master is not None else [])
            timeout = max(0.0, last_rx + PARTIAL_PACKET_TIMEOUT_S - time.monotonic()) if buf else None
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except (OSError, ValueError):  # an fd closed under us: loop and rebuild the list
                continue
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
                while self._commands:
                    self._commands.popleft()()
                    buf.clear()  # a replugged cable starts a fresh byte stream
                continue
            now = time.monotonic()
            if buf and now - last_rx >= PARTIAL_PACKET_TIMEOUT_S:
                buf.clear()  # a servo's receiver resynchronises after an idle gap
            if self._master is None or self._master not in ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError as err:
                if err.errno != errno.EIO:
                    raise
                time.sleep(0.001)  # no client side yet; do not spin
                continue
            buf += data
            last_rx = now
            try:
                self._consume(buf, now)
            except Exception:  # a bug here must not kill the bus mid-run; it is logged and counted
                self.stats.internal_errors += 1
                log.exception("emulator: failed to serve an instruction; dropping the input")
                buf.clear()

    def _consume(self, buf: bytearray, t_rx: float) -> None:
        while True:
            start = buf.find(b"\xff\xff")
            if start < 0:
                del buf[:-1 if buf[-1:] == b"\xff" else len(buf)]
                return
            del buf[:start]
            if len(buf) >= 3 and buf[2] == 0xFF:  # FF FF FF ...: the header starts one byte later
                del buf[0]
                continue
            if len(buf) < 4:
                return
            length = buf[3]
            if length < 2:
                del buf[:2]
                continue
            total = length + 4
            if len(buf) < total:
                return
            packet = bytes(buf[:total])
            del buf[:total]
            if checksum(packet[2:-1]) != packet[-1]:
                self.stats.bad_checksums += 1  # a real servo ignores it; the client times out
                continue
            self._serve(packet[2], packet[4], packet[5:-1], total, t_rx)

    # ------------------------------------------------------------------ protocol
    def _update(self, now: float) -> None:
        try:
            self.backend.update(self._tables, now)
        except Exception:
            self.stats.backend_errors += 1
            if not self._warned_backend:
                self._warned_backend = True
                log.exception("emulator: servo backend update failed (serving the tables as they are)")
        for sid, servo in self._servos.items():
            if servo.overheat_c is not None:
                self._tables[sid][ADDR_PRESENT_TEMPERATURE] = int(min(max(round(servo.overheat_c), 0), 255))

    def _error_byte(self, sid: int) -> int:
        table, servo = self._tables[sid], self._servos[sid]
        error = 0
        if servo.overheat_c is not None or (table[ADDR_MAX_TEMPERATURE]
                                            and table[ADDR_PRESENT_TEMPERATURE] >= table[ADDR_MAX_TEMPERATURE]):
            error |= ERR_OVERHEAT
        volts = table[ADDR_PRESENT_VOLTAGE]
        if (table[ADDR_MAX_VOLTAGE] and volts > table[ADDR_MAX_VOLTAGE]) or volts < table[ADDR_MIN_VOLTAGE]:
            error |= ERR_VOLTAGE
        return error

    def _reply(self, sid: int, params: bytes, out: list) -> None:
        servo = self._servos[sid]
        if servo.drop > 0:
            servo.drop -= 1
            self.stats.dropped_replies += 1
            return
        packet = bytearray(status_packet(sid, self._error_byte(sid), params))
        if servo.corrupt > 0:
            servo.corrupt -= 1
            packet[-1] ^= 0xFF
            self.stats.corrupted_replies += 1
        out.append((sid, bytes(packet)))

    def _write(self, sid: int, address: int, data: bytes) -> None:
        table = self._tables[sid]
        for i, byte in enumerate(data):
            a = address + i
            if a < TABLE_SIZE and a not in READ_ONLY:
                table[a] = byte

    def _present(self, sid: int) -> bool:
        servo = self._servos.get(sid)
        return servo is not None and servo.present

    def _serve(self, sid: int, instruction: int, params: bytes, nbytes: int, t_rx: float) -> None:
        replies: list[tuple[int, bytes]] = []
        with self._lock:
            self.stats.requests += 1
            self.stats.instructions[instruction] += 1
            now = time.monotonic()
            targets = [s for s in self.ids if self._servos[s].present] if sid == BROADCAST_ID else \
                ([sid] if self._present(sid) else [])
            if instruction == INST_PING:
                if targets:
                    self._update(now)
                for s in targets:  # broadcast ping: every servo answers, in ID order
                    self._reply(s, b"", replies)
            elif instruction == INST_READ:
                if sid != BROADCAST_ID and targets and len(params) == 2:
                    self._update(now)
                    address, size = params
                    data = bytes(self._tables[sid][address:address + size]).ljust(size, b"\x00")
                    self._reply(sid, data, replies)
            elif instruction in (INST_WRITE, INST_REG_WRITE):
                if len(params) >= 2 and targets:
                    for s in targets:
                        if instruction == INST_WRITE:
                            self._write(s, params[0], params[1:])
                        else:
                            self._servos[s].pending = (params[0], bytes(params[1:]))
                    self._update(now)
                    if sid != BROADCAST_ID and self._tables[sid][ADDR_RESPONSE_LEVEL]:
                        self._reply(sid, b"", replies)
            elif instruction == INST_ACTION:
                for s in targets:
                    pending, self._servos[s].pending = self._servos[s].pending, None
                    if pending:
                        self._write(s, *pending)
                self._update(now)
            elif instruction == INST_SYNC_READ:
                if sid == BROADCAST_ID and len(params) >= 3:
                    address, size = params[0], params[1]
                    listed = [s for s in params[2:] if self._present(s)]
                    if listed:
                        self._update(now)
                    for s in listed:  # each answers in the order the instruction lists it
                        data = bytes(self._tables[s][address:address + size]).ljust(size, b"\x00")
                        self._reply(s, data, replies)
            elif instruction == INST_SYNC_WRITE:
                if sid == BROADCAST_ID and len(params) >= 2 and params[1] > 0:
                    address, size = params[0], params[1]
                    body = params[2:]
                    for i in range(0, len(body) - size, size + 1):
                        s = body[i]
                        if self._present(s):
                            self._write(s, address, body[i + 1:i + 1 + size])
                    self._update(now)
            # other instructions (RESET, RECOVERY...) are not emulated: no answer
            delays = [self._tables[s][ADDR_RETURN_DELAY] * 2e-6 for s, _ in replies]
        if self.wire_timing:
            # the bus carries this transaction after the previous one: the instruction's bytes,
            # then each status packet in turn
            start = max(t_rx, self._bus_free)
            wait = start - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t = start + nbytes * self._byte_time
            for (_, packet), delay in zip(replies, delays):
                t += delay + len(packet) * self._byte_time
            self._bus_free = t
            remaining = t - time.monotonic()
            if replies and remaining > SHORT_WIRE_S:
                time.sleep(remaining)
        if replies and self._late[1] > 0:
            with self._lock:
                delay, left = self._late
                self._late = (delay, left - 1)
            time.sleep(delay)  # in the I/O thread: the bus serves nothing else meanwhile
        with self._lock:
            prefix, self._prefix = self._prefix, b""
        if prefix or replies:
            self._send(prefix + b"".join(p for _, p in replies))
            self.stats.replies += len(replies)

    def _send(self, data: bytes) -> None:
        if self._master is None:
            return
        try:
            os.write(self._master, data)
        except BlockingIOError:
            pass  # nobody reads the port and its buffer is full: the bytes are lost, as on a wire
        except OSError as err:
            if err.errno != errno.EIO:
                raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Emulated STS3215 servo bus on a pseudo-terminal "
                                                 "(first-order servo model).")
    parser.add_argument("--link", default=None, help="stable symlink to the pty (e.g. /tmp/so101_bus)")
    parser.add_argument("--ids", default=",".join(map(str, SERVO_IDS)), help="servo ids, comma separated")
    parser.add_argument("--baudrate", type=int, default=1_000_000)
    parser.add_argument("--no-wire-timing", action="store_true", help="answer at once")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[emulator] %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    bus = EmulatedServoBus(ids=[int(i) for i in args.ids.split(",")], baudrate=args.baudrate,
                           wire_timing=not args.no_wire_timing, link_path=args.link)
    with bus:
        print(f"[emulator] ready on {bus.port}" + (f" (link {bus.link_path})" if bus.link_path else ""),
              flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
