"""The emulated STS3215 bus at the byte level: hand-built instruction packets over pyserial, the
exact status bytes back, fault injection, cable pull/replug, the first-order servo model and
the backend contract. No SDK and no ROS here (test_feetech.py drives it through the SDK)."""
from __future__ import annotations

import os
import threading
import time

import pytest
import serial

from hilserl_ros.hardware import emulator as emulator_module
from hilserl_ros.hardware.emulator import (ADDR_GOAL_POSITION, ADDR_PRESENT_POSITION, EmulatedServoBus,
                                           FirstOrderServoModel, ServoBackend, default_control_table)

TIMEOUT = 30.0  # a loaded machine may serve a packet late; a wait ends as soon as it is served


def eventually(predicate, timeout: float = TIMEOUT, period: float = 0.005):
    """``predicate()`` once it holds (what a write without reply leads to, once served);
    its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(period)
    return value


def chk(body) -> int:
    """Checksum as the protocol defines it, written out here independently of the emulator."""
    return (~sum(body)) & 0xFF


def packet(sid: int, instruction: int, *params: int) -> bytes:
    body = [sid, len(params) + 2, instruction, *params]
    return bytes([0xFF, 0xFF, *body, chk(body)])


def recv(ser: serial.Serial, n: int, timeout: float = TIMEOUT) -> bytes:
    """Exactly n bytes, or what arrived before the deadline."""
    out, deadline = bytearray(), time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += ser.read(n - len(out))
    return bytes(out)


def silence(ser: serial.Serial, wait: float = 0.1) -> bytes:
    time.sleep(wait)
    return ser.read(4096)


def statuses(data: bytes) -> list[tuple[int, int, bytes, bool]]:
    """[(id, error, params, checksum_ok)] of consecutive status packets."""
    out, i = [], 0
    while i < len(data):
        assert data[i:i + 2] == b"\xff\xff", f"no header at byte {i}: {data.hex(' ')}"
        sid, length, error = data[i + 2], data[i + 3], data[i + 4]
        end = i + 4 + length
        out.append((sid, error, data[i + 5:end - 1], chk(data[i + 2:end - 1]) == data[end - 1]))
        i = end
    return out


def u16(lo: int, hi: int) -> int:
    return lo | hi << 8


@pytest.fixture
def emu(tmp_path):
    bus = EmulatedServoBus(link_path=str(tmp_path / "bus"))
    with bus:
        yield bus
    assert bus.stats.internal_errors == 0
    assert not any(t.name == "sts3215-emulator" and t.is_alive() for t in threading.enumerate())


@pytest.fixture
def ser(emu):
    port = serial.Serial(emu.link_path, 1_000_000, timeout=0.05)
    yield port
    port.close()


# ---------------------------------------------------------------------- protocol
def test_ping_gets_the_exact_status_packet(ser):
    ser.write(packet(1, 0x01))
    assert recv(ser, 6) == bytes([0xFF, 0xFF, 0x01, 0x02, 0x00, 0xFC])  # ~(1+2+0) = 0xFC
    ser.write(packet(6, 0x01))
    assert recv(ser, 6) == bytes([0xFF, 0xFF, 0x06, 0x02, 0x00, 0xF7])


def test_ping_of_an_unknown_id_gets_nothing(ser):
    ser.write(packet(9, 0x01))
    assert silence(ser) == b""


def test_read_returns_the_control_table(ser):
    ser.write(packet(3, 0x02, 3, 2))  # model number, 2 bytes
    reply = recv(ser, 8)
    assert reply == bytes([0xFF, 0xFF, 3, 4, 0, 0x09, 0x03, chk([3, 4, 0, 0x09, 0x03])])
    assert u16(0x09, 0x03) == 777  # STS3215
    ser.write(packet(2, 0x02, 56, 8))  # the state block
    [(sid, error, params, ok)] = statuses(recv(ser, 14))
    assert (sid, error, ok) == (2, 0, True)
    assert u16(params[0], params[1]) == 2048 and params[6] == 120 and params[7] == 30  # mid, 12.0 V, 30 C


def test_write_updates_the_register_and_acknowledges(emu, ser):
    ser.write(packet(2, 0x03, 42, 0x00, 0x0C))  # goal 3072
    assert recv(ser, 6) == bytes([0xFF, 0xFF, 2, 2, 0, chk([2, 2, 0])])
    assert emu.read_register(2, ADDR_GOAL_POSITION, 2) == 3072
    ser.write(packet(2, 0x02, 42, 2))
    assert statuses(recv(ser, 8))[0][2] == bytes([0x00, 0x0C])


def test_writes_to_read_only_registers_are_ignored(emu, ser):
    ser.write(packet(1, 0x03, 3, 0x34, 0x12))  # model number
    recv(ser, 6)
    assert emu.read_register(1, 3, 2) == 777


def test_bad_checksum_is_dropped_then_the_bus_resynchronises(emu, ser):
    bad = bytearray(packet(1, 0x01))
    bad[-1] ^= 0x55
    ser.write(bytes(bad))
    assert silence(ser) == b""
    assert eventually(lambda: emu.stats.bad_checksums >= 1) and emu.stats.bad_checksums == 1
    ser.write(b"\x00\x13\xff" + packet(1, 0x01))  # line noise before a good packet
    assert recv(ser, 6) == bytes([0xFF, 0xFF, 1, 2, 0, 0xFC])


def test_a_packet_split_across_writes_is_assembled(ser, monkeypatch):
    # the emulator drops a half packet idle for 20 ms; a loaded machine may take longer than
    # that to run this test's second write: only the assembling is tested here
    monkeypatch.setattr(emulator_module, "PARTIAL_PACKET_TIMEOUT_S", 30.0)
    whole = packet(4, 0x01)
    ser.write(whole[:3])
    ser.flush()
    time.sleep(0.005)
    ser.write(whole[3:])
    assert recv(ser, 6) == bytes([0xFF, 0xFF, 4, 2, 0, chk([4, 2, 0])])


def test_sync_read_answers_in_the_listed_order(ser):
    ser.write(packet(0xFE, 0x82, 56, 8, 3, 1, 5))
    replies = statuses(recv(ser, 3 * 14))
    assert [r[0] for r in replies] == [3, 1, 5]
    assert all(ok and error == 0 and len(params) == 8 for _, error, params, ok in replies)


def test_sync_write_applies_to_each_servo_without_reply(emu, ser):
    params = [42, 2]
    for sid, goal in zip(range(1, 7), (1000, 1100, 1200, 1300, 1400, 1500)):
        params += [sid, goal & 0xFF, goal >> 8]
    ser.write(packet(0xFE, 0x83, *params))
    assert silence(ser) == b""
    goals = lambda: [emu.read_register(s, ADDR_GOAL_POSITION, 2) for s in range(1, 7)]  # noqa: E731
    assert eventually(lambda: goals() == [1000, 1100, 1200, 1300, 1400, 1500]), goals()


def test_broadcast_write_applies_to_all_without_reply(emu, ser):
    ser.write(packet(0xFE, 0x03, 41, 20))
    assert silence(ser) == b""
    assert eventually(lambda: all(emu.read_register(s, 41) == 20 for s in range(1, 7)))


def test_reg_write_waits_for_action(emu, ser):
    ser.write(packet(5, 0x04, 41, 7))
    recv(ser, 6)
    assert emu.read_register(5, 41) == 0
    ser.write(packet(0xFE, 0x05))
    assert silence(ser, 0.05) == b""
    assert eventually(lambda: emu.read_register(5, 41) == 7)


def test_response_level_zero_silences_writes_but_not_reads(emu, ser):
    emu.write_register(1, 8, 0)
    ser.write(packet(1, 0x03, 41, 3))
    assert silence(ser) == b""
    assert eventually(lambda: emu.read_register(1, 41) == 3)
    ser.write(packet(1, 0x01))
    assert recv(ser, 6)[:3] == b"\xff\xff\x01"


def test_wire_timing_is_at_least_the_bytes_at_1mbps(ser):
    n = 30
    request = packet(0xFE, 0x82, 56, 8, 1, 2, 3, 4, 5, 6)
    start = time.perf_counter()
    for _ in range(n):
        ser.write(request)
        assert len(recv(ser, 6 * 14)) == 84
    elapsed = time.perf_counter() - start
    wire = (len(request) + 6 * 14) * 10 / 1e6  # 98 bytes, 10 bits each
    # each instruction waits for the wire time of the one before (the last's is charged to the next)
    assert elapsed >= (n - 1) * wire, f"{elapsed * 1e6 / n:.0f} us per sync read, wire needs {wire * 1e6:.0f} us"


class _SleepRecorder:
    """The emulator's ``time`` module, recording what it sleeps (and otherwise the real one)."""

    def __init__(self):
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        time.sleep(seconds)

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.mark.parametrize("wire_timing", [False, True], ids=["no_wire_timing", "wire_timed_control"])
def test_without_wire_timing_it_answers_at_once(monkeypatch, wire_timing):
    # what the emulator waits for, not the wall clock, which a loaded machine stretches: at
    # 1200 baud the 98 bytes would take 817 ms on the wire (the wire-timed case shows the
    # recorder sees that wait)
    recorder = _SleepRecorder()
    monkeypatch.setattr(emulator_module, "time", recorder)
    with EmulatedServoBus(wire_timing=wire_timing, baudrate=1200) as emu:
        with serial.Serial(emu.port, 1200, timeout=0.05) as ser:
            ser.write(packet(0xFE, 0x82, 56, 8, 1, 2, 3, 4, 5, 6))
            assert len(recv(ser, 84)) == 84
    waited = sum(recorder.slept)
    if wire_timing:
        assert waited > 0.1, recorder.slept  # the recorder sees the wire's wait (less any delay in serving it)
    else:
        assert waited < 0.4, recorder.slept


def test_a_short_reply_costs_no_second_wake_up(monkeypatch):
    # at 1 Mbps a reply's wire time is under a millisecond: sleeping for it would cost a wake-up,
    # tens of milliseconds on a loaded machine; it is charged to the next instruction instead
    recorder = _SleepRecorder()
    monkeypatch.setattr(emulator_module, "time", recorder)
    with EmulatedServoBus() as emu:
        with serial.Serial(emu.port, 1_000_000, timeout=0.05) as ser:
            ser.write(packet(0xFE, 0x82, 56, 8, 1, 2, 3, 4, 5, 6))
            assert len(recv(ser, 84)) == 84
    assert recorder.slept == []


# ---------------------------------------------------------------------- faults
def test_injected_bytes_reach_the_client(emu, ser):
    stale = bytes([0xFF, 0xFF, 2, 2, 0, chk([2, 2, 0])])
    emu.inject(stale)
    assert recv(ser, 6) == stale
    emu.inject(stale, with_next_reply=True)  # held until the next answer, and sent just before it
    assert silence(ser, 0.05) == b""
    ser.write(packet(1, 0x01))
    assert recv(ser, 12) == stale + bytes([0xFF, 0xFF, 1, 2, 0, 0xFC])


def test_dropped_reply_leaves_the_others(emu, ser):
    emu.drop_replies(2, 1)
    ser.write(packet(0xFE, 0x82, 56, 8, 1, 2, 3))
    assert [r[0] for r in statuses(recv(ser, 28))] == [1, 3]
    assert silence(ser, 0.02) == b""
    ser.write(packet(2, 0x01))  # only the next reply was dropped
    assert recv(ser, 6)[2] == 2


def test_corrupted_reply_has_a_wrong_checksum(emu, ser):
    emu.corrupt_replies(3, 2)
    for _ in range(2):
        ser.write(packet(3, 0x01))
        [(sid, _, _, ok)] = statuses(recv(ser, 6))
        assert sid == 3 and not ok
    ser.write(packet(3, 0x01))
    assert statuses(recv(ser, 6))[0][3]


def test_removed_servo_is_silent_until_restored(emu, ser):
    emu.remove_servo(4)
    ser.write(packet(4, 0x01))
    assert silence(ser) == b""
    ser.write(packet(4, 0x03, 41, 9))  # nor does it execute
    assert silence(ser) == b""
    assert emu.read_register(4, 41) == 0
    emu.restore_servo(4)
    ser.write(packet(4, 0x01))
    assert recv(ser, 6)[2] == 4


def test_overheat_sets_the_error_bit_and_the_temperature(emu, ser):
    emu.overheat(5, temperature_c=82)
    ser.write(packet(5, 0x02, 63, 1))
    [(sid, error, params, ok)] = statuses(recv(ser, 7))
    assert (sid, error & 0x04, params[0], ok) == (5, 0x04, 82, True)
    ser.write(packet(1, 0x01))
    assert recv(ser, 6)[4] == 0  # the others are fine
    emu.clear_overheat(5)
    ser.write(packet(5, 0x02, 63, 1))
    [(_, error, params, _)] = statuses(recv(ser, 7))
    assert error == 0 and params[0] < 70


def test_temperature_over_the_servo_limit_sets_overheat_by_itself(emu, ser):
    emu.write_register(1, 13, 25)  # Max_Temperature_Limit below the 30 C it reads
    ser.write(packet(1, 0x01))
    assert recv(ser, 6)[4] == 0x04


def test_cable_pull_and_replug(emu, ser):
    emu.close_port()
    assert not os.path.lexists(emu.link_path)  # the device vanished, like /dev/ttyUSB0
    assert not emu.port_open
    with pytest.raises(serial.SerialException):
        ser.write(packet(1, 0x01))
        recv(ser, 6)
    emu.reopen_port()
    assert os.path.realpath(emu.link_path) == emu.port
    with serial.Serial(emu.link_path, 1_000_000, timeout=0.05) as again:
        again.write(packet(1, 0x01))
        assert recv(again, 6) == bytes([0xFF, 0xFF, 1, 2, 0, 0xFC])


def test_stop_ends_the_thread_and_removes_the_link(tmp_path):
    emu = EmulatedServoBus(link_path=str(tmp_path / "bus")).start()
    with serial.Serial(emu.link_path, 1_000_000, timeout=0.05) as ser:
        ser.write(packet(1, 0x01))
        assert len(recv(ser, 6)) == 6
        emu.stop()
        assert not os.path.lexists(tmp_path / "bus")
        assert not any(t.name == "sts3215-emulator" and t.is_alive() for t in threading.enumerate())
        with pytest.raises(serial.SerialException):
            ser.write(packet(1, 0x01))
            recv(ser, 6)
    emu.stop()  # idempotent


def test_refuses_to_replace_a_regular_file(tmp_path):
    path = tmp_path / "precious"
    path.write_text("data")
    with pytest.raises(FileExistsError):
        EmulatedServoBus(link_path=str(path)).start()
    assert path.read_text() == "data"


# ---------------------------------------------------------------------- backends
def test_backend_is_called_before_reads_and_after_writes():
    calls = []

    class Recorder(ServoBackend):
        def update(self, tables, now):
            calls.append((sorted(tables), tables[1][41], now))
            tables[1][63] = 55  # what the backend writes is what is read

    with EmulatedServoBus(backend=Recorder(), wire_timing=False) as emu:
        with serial.Serial(emu.port, 1_000_000, timeout=0.05) as ser:
            ser.write(packet(1, 0x03, 41, 12))
            recv(ser, 6)
            assert calls and calls[-1][1] == 12  # saw the write
            n = len(calls)
            ser.write(packet(1, 0x02, 63, 1))
            assert statuses(recv(ser, 7))[0][2] == bytes([55])
            assert len(calls) == n + 1
    assert calls[0][0] == [1, 2, 3, 4, 5, 6]
    assert all(b[2] >= a[2] for a, b in zip(calls, calls[1:]))  # monotonic time


def test_a_failing_backend_does_not_kill_the_bus():
    class Broken(ServoBackend):
        def update(self, tables, now):
            raise RuntimeError("physics exploded")

    with EmulatedServoBus(backend=Broken(), wire_timing=False) as emu:
        with serial.Serial(emu.port, 1_000_000, timeout=0.05) as ser:
            ser.write(packet(2, 0x01))
            assert recv(ser, 6)[2] == 2
        assert emu.stats.backend_errors >= 1


def _tables():
    return {sid: default_control_table(sid) for sid in (1, 2)}


def test_model_moves_toward_the_goal_at_most_at_max_speed():
    model, tables = FirstOrderServoModel(max_speed=1000.0, time_constant=0.05), _tables()
    model.update(tables, 0.0)
    tables[1][40] = 1
    tables[1][ADDR_GOAL_POSITION:ADDR_GOAL_POSITION + 2] = (3048).to_bytes(2, "little")
    model.update(tables, 0.1)
    moved = u16(*tables[1][ADDR_PRESENT_POSITION:ADDR_PRESENT_POSITION + 2]) - 2048
    assert 90 <= moved <= 100  # speed-limited: 1000 ticks/s for 0.1 s
    assert u16(*tables[1][58:60]) == 1000  # present speed
    assert tables[1][66] == 1  # moving
    assert u16(*tables[1][60:62]) > 0 and not tables[1][61] & 0x04  # positive load
    model.update(tables, 3.0)
    assert u16(*tables[1][ADDR_PRESENT_POSITION:ADDR_PRESENT_POSITION + 2]) == 3048
    assert tables[1][66] == 0 and u16(*tables[1][60:62]) == 0
    assert u16(*tables[2][ADDR_PRESENT_POSITION:ADDR_PRESENT_POSITION + 2]) == 2048  # torque off: held


def test_model_holds_with_torque_off_and_clamps_to_angle_limits():
    model, tables = FirstOrderServoModel(), _tables()
    tables[1][ADDR_GOAL_POSITION:ADDR_GOAL_POSITION + 2] = (100).to_bytes(2, "little")
    model.update(tables, 0.0)
    model.update(tables, 1.0)
    assert u16(*tables[1][ADDR_PRESENT_POSITION:ADDR_PRESENT_POSITION + 2]) == 2048
    tables[1][40] = 1
    tables[1][9:11] = (1500).to_bytes(2, "little")  # Min_Angle_Limit
    model.update(tables, 5.0)
    assert u16(*tables[1][ADDR_PRESENT_POSITION:ADDR_PRESENT_POSITION + 2]) == 1500


def test_model_load_heats_the_servo():
    model = FirstOrderServoModel(max_speed=1.0, thermal_time_constant=10.0)  # too slow to catch up
    tables = _tables()
    model.update(tables, 0.0)
    tables[1][40] = 1
    tables[1][ADDR_GOAL_POSITION:ADDR_GOAL_POSITION + 2] = (1000).to_bytes(2, "little")
    model.update(tables, 20.0)
    load = u16(*tables[1][60:62])
    assert load & 0x400 and (load & 0x3FF) == 1000  # full load, negative (goal below)
    assert tables[1][63] > 60 and tables[2][63] == 30
    assert tables[1][62] < tables[2][62]  # supply sags under load
