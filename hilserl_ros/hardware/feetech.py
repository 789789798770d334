"""The SO-101's Feetech STS3215 bus through the Feetech SDK (``scservo_sdk``, unmodified; no ROS).

One :meth:`FeetechArmBus.read` is one SYNC_READ of the 8 bytes at address 56 (Present_Position,
Present_Speed, Present_Load, Present_Voltage, Present_Temperature) from all six servos: 14
bytes out, 6 x 14 bytes back, under 1 ms of wire time at 1 Mbps. Each
:meth:`~FeetechArmBus.write_positions`, :meth:`~FeetechArmBus.set_torque` and
:meth:`~FeetechArmBus.set_acceleration` is one SYNC_WRITE (no reply, by protocol).

How the SDK is used, and why:

- The SDK's ``GroupSyncRead.rxPacket`` drops the status byte of each servo's reply, and after a
  failure it leaves the previous cycle's data in place for the servos it did not reach. So
  read() sends the SYNC_READ with the SDK's ``txPacket`` and collects the replies itself with
  the SDK's ``rxPacket`` (header search, checksum), servo by servo in the listed order: it knows
  which servo failed, never returns stale data, and sees fault bits (overheat, overload,
  voltage...) in the same transaction, at no extra cost. Single reads, writes and pings are
  built the same way, with the checks below.
- A reply that comes after its transaction gave up (a servo or a host slower than the packet
  timeout; on the real arm the USB adapter's latency timer; a loaded machine's emulator) must
  never be taken for a later transaction's: the protocol has no sequence numbers, the SDK's
  ``clearPort`` flushes only the output, and a stale reply of the same servo passes every
  check. Once that happened, every later read would return the state of one read before, under
  a fresh stamp, for good (the SDK alone does exactly that, and its ``ping`` and
  ``read2ByteTxRx`` index a stale reply of the wrong length: IndexError). So each transaction
  first discards what waits in the input buffer, and takes only a packet of the servo it asked
  and of the length it asked for; anything else is counted in ``stats.stale_replies`` and
  skipped. A failed transaction leaves its unanswered (servo, length) pairs outstanding for
  ``STALE_HORIZON_S``, and a read then asks for 1 to 3 bytes more than it needs, a length no
  outstanding reply has: a late reply can never pass for a later one. Status-only replies (ping,
  write acknowledgement) cannot vary their length, and carry no data: a late one can pass for a
  later one's (taking the first for the late one instead would refuse every retry after a lost
  one), which says only that the servo is there; connect() reads each model number after its
  ping, and a write's effect is seen in what is read.
- The SDK opens the port non-blocking (pyserial ``timeout=0``) and spins on it while it waits
  for a reply: a whole core at any read rate (measured: 1.0 core at 770 reads/s against the
  emulator, same rate). A short blocking read slice (``poll_wait_s``) wakes on the first byte
  instead (0.15 core at the same rate). The SDK's own packet timeout still decides when a
  servo is missing.
- Serial errors (the SDK does not catch them) become :class:`PortLost`; the SDK's result codes
  become :class:`ServoNotResponding` (no status packet) or :class:`CorruptReply` (bad checksum,
  truncated), naming the servo and joint, after ``retries`` retries counted in :attr:`stats`.
"""
from __future__ import annotations

import fcntl
import math
import termios
import threading
import time

import numpy as np
from scservo_sdk import (COMM_RX_CORRUPT, COMM_RX_FAIL, COMM_RX_TIMEOUT, COMM_SUCCESS, COMM_TX_FAIL,
                         GroupSyncWrite, PacketHandler, PortHandler)
from scservo_sdk.protocol_packet_handler import PKT_ERROR, PKT_ID, PKT_LENGTH, PKT_PARAMETER0
from scservo_sdk.scservo_def import BROADCAST_ID, INST_PING, INST_READ, INST_SYNC_READ, INST_WRITE

from hilserl_ros.hardware.bus import (ArmBus, BusError, BusStats, CorruptReply, JointReading, PortLost,
                                      ServoFault, ServoNotResponding)
from hilserl_ros.hardware.calibration import Calibration, MAX_HOMING_OFFSET

# STS3215 control table
ADDR_MODEL_NUMBER = 3
ADDR_MIN_ANGLE_LIMIT, ADDR_MAX_ANGLE_LIMIT = 9, 11
ADDR_HOMING_OFFSET = 31  # 2 bytes, sign-magnitude, sign bit 11
ADDR_TORQUE_ENABLE, ADDR_ACCELERATION, ADDR_GOAL_POSITION = 40, 41, 42
ADDR_LOCK = 55
ADDR_PRESENT_POSITION = 56
STATE_LENGTH = 8  # position 2, speed 2, load 2, voltage 1, temperature 1
STS3215_MODEL = 777
# Unanswered requests younger than this may still be answered (a loaded host has answered 0.26 s
# late); older ones are taken as lost, as a dropped reply on a real bus never comes.
STALE_HORIZON_S = 2.0
EXTRA_READ_BYTES = 3  # a read may ask for up to this many bytes more, to tell late replies apart

FAULT_BITS = ((0x01, "input voltage"), (0x02, "angle sensor"), (0x04, "overheat"), (0x08, "overcurrent"),
              (0x20, "overload"))


def fault_names(bits: int) -> list[str]:
    names = [name for bit, name in FAULT_BITS if bits & bit]
    unknown = bits & ~sum(bit for bit, _ in FAULT_BITS)
    return names + ([f"unknown bits 0x{unknown:02x}"] if unknown else [])


def _sign_magnitude(raw: np.ndarray, sign_bit: int) -> np.ndarray:
    magnitude = raw & ((1 << sign_bit) - 1)
    return np.where(raw & (1 << sign_bit), -magnitude, magnitude)


class FeetechArmBus(ArmBus):
    """The six STS3215 servos of an SO-101 on one serial port (real adapter or emulator pty).

    ``retries``: extra attempts of a failed transaction before it raises. ``rx_timeout_ms``:
    how long a sync read waits for all replies (None = the SDK's packet timeout, about 35 ms,
    sized for a 16 ms USB latency timer). ``check_homing``: at connect, compare each servo's
    Homing_Offset with the calibration's and refuse a mismatch (a calibration file of another
    arm would otherwise put every joint somewhere else than it reads). ``expected_model``: the
    model number a ping must report (None = any). ``poll_wait_s``: blocking read slice while
    waiting for a reply (None = the SDK's non-blocking spin). Not thread-safe across processes;
    within a process calls are serialised by a lock.
    """

    def __init__(self, port: str, calibration: Calibration, baudrate: int = 1_000_000, retries: int = 3,
                 rx_timeout_ms: float | None = None, check_homing: bool = True,
                 expected_model: int | None = STS3215_MODEL, poll_wait_s: float | None = 0.002):
        if not isinstance(calibration, Calibration):
            raise TypeError(f"calibration must be a Calibration, got {type(calibration).__name__}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.port = port
        self.calibration = calibration
        self.baudrate = int(baudrate)
        self.retries = int(retries)
        self.rx_timeout_ms = rx_timeout_ms
        self.check_homing = check_homing
        self.expected_model = expected_model
        self.poll_wait_s = poll_wait_s
        self.joint_names = tuple(calibration)
        self.ids = calibration.servo_ids
        self._joint = dict(zip(self.ids, self.joint_names))
        self._signs = calibration.signs
        self._stats = BusStats({s: 0 for s in self.ids}, {s: 0 for s in self.ids}, {s: 0 for s in self.ids})
        self._lock = threading.RLock()
        self._port: PortHandler | None = None
        self._ph = None
        self._connected = False
        self._raw = [[0] * STATE_LENGTH for _ in self.ids]  # last sync read, one row per servo
        self._status = [0] * len(self.ids)  # status (error) byte of each servo's last reply
        self._stamp = 0.0
        # (servo id, data length) -> when a request that such a reply would answer went unanswered
        self._outstanding: dict[tuple[int, int], float] = {}
        # After a failed sync read the later servos' replies may still be arriving: wait their
        # wire time plus a margin, then flush, so the retry starts on an empty buffer (replies
        # later than that are told apart by their length, see the module's docstring).
        reply_bytes = len(self.ids) * (6 + STATE_LENGTH)
        self._settle_s = reply_bytes * 10.0 / self.baudrate + 0.001

    # ------------------------------------------------------------------ life cycle
    @property
    def stats(self) -> BusStats:
        return self._stats

    @property
    def connected(self) -> bool:
        return self._connected

    def __enter__(self) -> "FeetechArmBus":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        """Open the port and ping every servo; may be called again to reconnect."""
        with self._lock:
            self._release()
            port = PortHandler(self.port)
            try:
                opened = port.setBaudRate(self.baudrate)  # opens the port at that rate
            except (OSError, termios.error) as err:  # serial.SerialException is an OSError
                raise PortLost(f"cannot open {self.port}: {err}") from None
            if not opened:
                raise BusError(f"baud rate {self.baudrate} is not one the Feetech SDK supports")
            try:  # two drivers on one bus interleave packets: refuse to be the second
                fcntl.flock(port.ser.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                port.closePort()
                raise PortLost(f"{self.port} is in use by another process (another driver on this bus?)") from None
            if self.poll_wait_s is not None:
                port.ser.timeout = self.poll_wait_s
            self._port, self._ph = port, PacketHandler(0)  # protocol_end 0: STS, little endian
            try:
                self._ping_all()
                if self.check_homing:
                    self._verify_homing()
            except (OSError, termios.error) as err:
                raise self._port_lost(err, "connect") from None
            except BusError:
                self._release()
                raise
            self._goal = GroupSyncWrite(port, self._ph, ADDR_GOAL_POSITION, 2)
            self._torque = GroupSyncWrite(port, self._ph, ADDR_TORQUE_ENABLE, 1)
            self._acceleration = GroupSyncWrite(port, self._ph, ADDR_ACCELERATION, 1)
            for sid in self.ids:
                self._goal.addParam(sid, [0, 0])
                self._torque.addParam(sid, [0])
                self._acceleration.addParam(sid, [0])
            self._connected = True

    def close(self) -> None:
        """Release the port (torque is left as it is: turn it off first if that is wanted)."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        self._connected = False
        port, self._port = self._port, None
        if port is not None and port.ser is not None:
            try:
                port.closePort()
            except (OSError, termios.error):
                pass  # the device is already gone

    def _require(self) -> None:
        if not self._connected:
            raise BusError(f"not connected to {self.port} (call connect())")

    def _port_lost(self, err: Exception, what: str) -> PortLost:
        self._release()
        return PortLost(f"{what}: port {self.port} failed ({err}); adapter unplugged or reset?")

    def _error(self, result: int, sid: int, what: str) -> BusError:
        joint = self._joint.get(sid)
        if result == COMM_RX_CORRUPT:
            return CorruptReply(f"{what}: corrupt status packet (bad checksum or length)", sid, joint)
        if result in (COMM_RX_TIMEOUT, COMM_RX_FAIL):
            return ServoNotResponding(f"{what}: no status packet", sid, joint)
        if result == COMM_TX_FAIL:
            return self._port_lost(RuntimeError("short write"), what)
        return BusError(f"{what}: {self._ph.getTxRxResult(result)}", sid, joint)

    def _flush_after_failure(self) -> None:
        self._port.is_using = False
        time.sleep(self._settle_s)
        self._port.ser.reset_input_buffer()

    # ------------------------------------------------------------------ transactions
    def _read_length(self, sids, size: int) -> int:
        """The data length a read of ``size`` bytes from ``sids`` asks for: ``size``, or up to
        EXTRA_READ_BYTES more where an unanswered request to one of them asked for it (its late
        reply must not pass for this one's); all taken: the one unanswered the longest."""
        now = time.monotonic()
        for key in [k for k, at in self._outstanding.items() if now - at > STALE_HORIZON_S]:
            del self._outstanding[key]
        best, best_at = size, math.inf
        for length in range(size, size + EXTRA_READ_BYTES + 1):
            latest = max(self._outstanding.get((sid, length), -math.inf) for sid in sids)
            if latest == -math.inf:
                return length
            if latest < best_at:
                best, best_at = length, latest
        return best

    def _unanswered(self, sids, length: int) -> None:
        now = time.monotonic()
        for sid in sids:
            self._outstanding[(sid, length)] = now

    def _send(self, sid: int, instruction: int, params=()) -> int:
        """One instruction packet (the SDK's txPacket), after discarding what waits in the input:
        it answered an earlier transaction, late."""
        port = self._port
        port.ser.reset_input_buffer()
        result = self._ph.txPacket(port, [0, 0, sid, len(params) + 2, instruction, *params, 0])
        if result != COMM_SUCCESS:
            port.is_using = False
            if result == COMM_TX_FAIL:
                raise OSError("short write on the serial port")
        return result

    def _receive(self, sid: int, length: int, listed=()) -> tuple[list, int, int]:
        """Servo ``sid``'s status packet with ``length`` data bytes, before the packet timeout:
        (data, SDK result, status byte). Other packets are skipped (the SDK's rxPacket has
        checked their checksum): those of the other ``listed`` servos of a sync read with
        this length, as the SDK's readRx does; any other is not this request's and is counted
        in stats.stale_replies."""
        while True:
            packet, result = self._ph.rxPacket(self._port)
            if result != COMM_SUCCESS:
                return [], result, 0
            if packet[PKT_LENGTH] == length + 2:
                if packet[PKT_ID] == sid:
                    return packet[PKT_PARAMETER0:PKT_PARAMETER0 + length], COMM_SUCCESS, packet[PKT_ERROR]
                if packet[PKT_ID] in listed:
                    continue
            self._stats.stale_replies += 1

    def _read_once(self, sid: int, address: int, size: int) -> tuple[int, int]:
        """(value, SDK result) of one READ of ``size`` bytes."""
        length = self._read_length((sid,), size)
        result = self._send(sid, INST_READ, [address, length])
        if result != COMM_SUCCESS:
            return 0, result
        self._port.setPacketTimeout(length + 6)
        data, result, _ = self._receive(sid, length)
        if result != COMM_SUCCESS:
            self._unanswered((sid,), length)
            return 0, result
        return int.from_bytes(bytes(data[:size]), "little"), result

    def _status_once(self, sid: int, instruction: int, params=()) -> tuple[int, int]:
        """(SDK result, status byte) of one instruction answered by a status-only packet."""
        result = self._send(sid, instruction, params)
        if result != COMM_SUCCESS:
            return result, 0
        self._port.setPacketTimeout(6)
        _, result, error = self._receive(sid, 0)
        return result, error

    # ------------------------------------------------------------------ connect checks
    def _ping_all(self) -> None:
        stats = self._stats
        missing: list[tuple[int, int]] = []
        for sid in self.ids:
            stats.transactions[sid] += 1
            for attempt in range(self.retries + 1):
                result, error = self._status_once(sid, INST_PING)
                if result == COMM_SUCCESS:
                    break
                if attempt < self.retries:
                    stats.retries[sid] += 1
                    self._flush_after_failure()
            if result != COMM_SUCCESS:
                stats.errors[sid] += 1
                missing.append((sid, result))
                continue
            if self.expected_model is not None:
                model = self.read_register(sid, ADDR_MODEL_NUMBER, 2)
                if model != self.expected_model:
                    raise BusError(f"model number {model} where an STS3215 ({self.expected_model}) was expected",
                                   sid, self._joint[sid])
            if error:
                raise ServoFault(f"{', '.join(fault_names(error))} (status error 0x{error:02x}) at connect",
                                 sid, self._joint[sid])
        if not missing:
            return
        sid, result = missing[0]
        if len(missing) == len(self.ids):
            what = (f"no servo answered a ping on {self.port} at {self.baudrate} baud "
                    f"(is the arm powered, the port and baud rate right?)")
        else:
            others = ", ".join(f"{s} ({self._joint[s]})" for s, _ in missing)
            what = f"no reply to ping (missing: {others}; check the servo's cable and ID)"
        raise self._error(result, sid, what)

    def _verify_homing(self) -> None:
        for sid, joint in zip(self.ids, self.joint_names):
            raw = self.read_register(sid, ADDR_HOMING_OFFSET, 2)
            offset = -(raw & 0x7FF) if raw & 0x800 else raw & 0x7FF
            expected = self.calibration[joint].homing_offset
            if offset != expected:
                raise BusError(f"Homing_Offset in the servo is {offset} but the calibration "
                               f"({self.calibration.source}) says {expected}: wrong calibration file for "
                               f"this arm? (write_calibration() stores the calibration's in the servos)",
                               sid, joint)

    # ------------------------------------------------------------------ reads
    def read(self) -> JointReading:
        with self._lock:
            self._read_state()
            return self._decode()

    def _read_state(self) -> None:
        """One sync read into self._raw/self._status, with retries; raises on failure."""
        self._require()
        stats = self._stats
        for sid in self.ids:
            stats.transactions[sid] += 1
        attempt = 0
        while True:
            try:
                failed, result = self._sync_read_once()
                if failed is None:
                    self._stamp = time.monotonic()
                    return
                sid = self.ids[failed]
                if attempt >= self.retries:
                    stats.errors[sid] += 1
                    what = "sync read" + (f" (after {self.retries} retries)" if self.retries else "")
                    raise self._error(result, sid, what)
                attempt += 1
                stats.retries[sid] += 1
                self._flush_after_failure()
            except (OSError, termios.error) as err:
                raise self._port_lost(err, "sync read") from None

    def _sync_read_once(self) -> tuple[int | None, int]:
        """(index of the first servo without a valid reply or None, SDK result code)."""
        port, ids = self._port, self.ids
        length = self._read_length(ids, STATE_LENGTH)
        result = self._send(BROADCAST_ID, INST_SYNC_READ, [ADDR_PRESENT_POSITION, length, *ids])
        if result != COMM_SUCCESS:
            return 0, result
        if self.rx_timeout_ms is not None:
            port.setPacketTimeoutMillis(self.rx_timeout_ms)
        else:
            port.setPacketTimeout((6 + length) * len(ids))  # what the SDK's syncReadTx sets
        raw, status = self._raw, self._status
        for i, sid in enumerate(ids):
            data, result, error = self._receive(sid, length, ids)
            if result != COMM_SUCCESS:
                self._unanswered(ids[i:], length)
                return i, result
            raw[i] = data[:STATE_LENGTH]
            status[i] = error
        return None, COMM_SUCCESS

    def _decode(self) -> JointReading:
        raw = np.array(self._raw, dtype=np.int64)
        cal = self.calibration
        ticks = _sign_magnitude(raw[:, 0] | raw[:, 1] << 8, 15)
        speed = _sign_magnitude(raw[:, 2] | raw[:, 3] << 8, 15)
        load = _sign_magnitude(raw[:, 4] | raw[:, 5] << 8, 10)
        reading = JointReading(position=cal.ticks_to_radians(ticks), velocity=cal.speed_to_radians(speed),
                               load=self._signs * np.clip(load / 1000.0, -1.0, 1.0),
                               temperature=raw[:, 7].astype(float), voltage=raw[:, 6] * 0.1, stamp=self._stamp)
        if any(self._status):
            faults = {sid: fault_names(bits) for sid, bits in zip(self.ids, self._status) if bits}
            i = next(i for i, bits in enumerate(self._status) if bits)
            sid, bits = self.ids[i], self._status[i]
            more = [f"{s} ({self._joint[s]}): {', '.join(n)}" for s, n in faults.items() if s != sid]
            err = ServoFault(f"{', '.join(fault_names(bits))} (status error 0x{bits:02x}), temperature "
                             f"{reading.temperature[i]:.0f} C, voltage {reading.voltage[i]:.1f} V, load "
                             f"{reading.load[i]:+.2f}" + (f"; also {'; '.join(more)}" if more else ""),
                             sid, self._joint[sid])
            err.reading, err.faults = reading, faults  # the data is still good: let the caller use it
            raise err
        return reading

    def read_register(self, servo_id: int, address: int, size: int = 1) -> int:
        """Unsigned value of a register (1, 2 or 4 bytes), with retries. Status fault bits are
        not raised here: this is how one inspects a faulted servo."""
        with self._lock:
            if self._port is None:
                raise BusError(f"not connected to {self.port} (call connect())")
            what = f"read of {size} bytes at address {address}"
            try:
                for attempt in range(self.retries + 1):
                    value, result = self._read_once(servo_id, address, size)
                    if result == COMM_SUCCESS:
                        return value
                    if attempt < self.retries:
                        self._stats.retries[servo_id] = self._stats.retries.get(servo_id, 0) + 1
                        self._flush_after_failure()
            except (OSError, termios.error) as err:
                raise self._port_lost(err, what) from None
            self._stats.errors[servo_id] = self._stats.errors.get(servo_id, 0) + 1
            raise self._error(result, servo_id, what)

    def write_register(self, servo_id: int, address: int, value: int, size: int = 1) -> None:
        """Write a register (1 or 2 bytes) and wait for the servo's acknowledgement."""
        with self._lock:
            if self._port is None:
                raise BusError(f"not connected to {self.port} (call connect())")
            what = f"write of {size} bytes at address {address}"
            data = list(int(value).to_bytes(size, "little"))
            try:
                for attempt in range(self.retries + 1):
                    result, _ = self._status_once(servo_id, INST_WRITE, [address, *data])
                    if result == COMM_SUCCESS:
                        return
                    if attempt < self.retries:
                        self._stats.retries[servo_id] = self._stats.retries.get(servo_id, 0) + 1
                        self._flush_after_failure()
            except (OSError, termios.error) as err:
                raise self._port_lost(err, what) from None
            self._stats.errors[servo_id] = self._stats.errors.get(servo_id, 0) + 1
            raise self._error(result, servo_id, what)

    # ------------------------------------------------------------------ writes
    def _sync_write(self, group: GroupSyncWrite, values, what: str) -> None:
        self._require()
        for sid, data in zip(self.ids, values):
            group.changeParam(sid, data)
        try:
            result = group.txPacket()
        except (OSError, termios.error) as err:
            raise self._port_lost(err, what) from None
        if result != COMM_SUCCESS:
            self._port.is_using = False
            if result == COMM_TX_FAIL:
                raise self._port_lost(RuntimeError("short write"), what)
            raise BusError(f"{what}: {self._ph.getTxRxResult(result)}")

    def write_positions(self, positions) -> None:
        """Goal positions (rad, JOINT_NAMES order), clamped to the calibrated ranges; one sync write."""
        positions = np.asarray(positions, dtype=float)
        if positions.shape != (len(self.ids),):
            raise ValueError(f"expected {len(self.ids)} joint positions, got shape {positions.shape}")
        if not np.all(np.isfinite(positions)):
            raise ValueError(f"joint positions must be finite, got {positions.tolist()}")
        ticks = self.calibration.radians_to_ticks(positions)
        with self._lock:
            self._sync_write(self._goal, [[int(t) & 0xFF, int(t) >> 8] for t in ticks], "goal position write")

    def set_torque(self, enabled: bool, hold: bool = True) -> None:
        """Torque on or off for all servos (one sync write). Turning it on with ``hold`` first
        sets each goal to where the servo is (one sync read and write), so nothing jumps to a
        stale goal; a servo fault then raises and torque stays off. Turning it off never reads."""
        with self._lock:
            if enabled and hold:
                self._read_state()
                self._decode()  # raises ServoFault: never energise a faulted servo
                self._sync_write(self._goal, [row[:2] for row in self._raw], "goal position write")
            self._sync_write(self._torque, [[1 if enabled else 0]] * len(self.ids), "torque write")

    def set_acceleration(self, value) -> None:
        """Acceleration register (0..254, x100 ticks/s^2; 0 = the servo's maximum): one value for
        all servos or one per joint."""
        values = np.broadcast_to(np.asarray(value), (len(self.ids),))
        if not np.all((values >= 0) & (values <= 254) & (values == np.round(values))):
            raise ValueError(f"acceleration must be integers in 0..254, got {value!r}")
        with self._lock:
            self._sync_write(self._acceleration, [[int(v)] for v in values], "acceleration write")

    def write_calibration(self) -> None:
        """Store the calibration's homing offsets and ranges (as angle limits) in the servos'
        EEPROM, torque off. What LeRobot's calibration does after measuring the ranges."""
        with self._lock:
            self._require()
            self.set_torque(False)
            for sid, joint in zip(self.ids, self.joint_names):
                cal = self.calibration[joint]
                offset = min(abs(cal.homing_offset), MAX_HOMING_OFFSET) | (0x800 if cal.homing_offset < 0 else 0)
                self.write_register(sid, ADDR_LOCK, 0)  # unlock: EEPROM writes persist
                self.write_register(sid, ADDR_HOMING_OFFSET, offset, 2)
                self.write_register(sid, ADDR_MIN_ANGLE_LIMIT, cal.range_min, 2)
                self.write_register(sid, ADDR_MAX_ANGLE_LIMIT, cal.range_max, 2)
                self.write_register(sid, ADDR_LOCK, 1)
