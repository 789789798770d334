"""Calibration (ticks <-> radians, files, validation) and the Feetech driver through the
unmodified Feetech SDK against the emulated bus: reads, writes, retries, faults, cable pull."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from hilserl_ros.hardware.bus import (JOINT_NAMES, BusError, CorruptReply, PortLost, ServoFault,
                                      ServoNotResponding)
from hilserl_ros.hardware.calibration import (RAD_PER_TICK, Calibration, CalibrationError, JointCalibration,
                                              default_urdf, urdf_joint_limits)
from hilserl_ros.hardware.emulator import ADDR_GOAL_POSITION, EmulatedServoBus, ServoBackend, status_packet
from hilserl_ros.hardware.feetech import FeetechArmBus

LEROBOT = {
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1452, "range_min": 812, "range_max": 3296},
    "shoulder_lift": {"id": 2, "drive_mode": 0, "homing_offset": 1007, "range_min": 841, "range_max": 3213},
    "elbow_flex": {"id": 3, "drive_mode": 0, "homing_offset": -1079, "range_min": 887, "range_max": 3080},
    "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": 1167, "range_min": 869, "range_max": 3203},
    "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": -1987, "range_min": 146, "range_max": 3925},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 1303, "range_min": 2030, "range_max": 3480},
}


# ====================================================================== calibration
def test_default_calibration_is_the_urdf_with_zero_at_mid_turn():
    cal = Calibration.default()
    assert list(cal) == list(JOINT_NAMES) and cal.servo_ids == (1, 2, 3, 4, 5, 6)
    assert np.allclose(cal.ticks_to_radians([2048] * 6), 0.0)
    assert list(cal.radians_to_ticks(np.zeros(6))) == [2048] * 6
    urdf = urdf_joint_limits(default_urdf())
    lower, upper = cal.limits()
    for i, joint in enumerate(JOINT_NAMES):
        lo, hi = urdf[joint]
        # inside the URDF's limits, by less than one tick
        assert lo <= lower[i] < lo + RAD_PER_TICK and hi - RAD_PER_TICK < upper[i] <= hi, joint
    assert lower[5] == pytest.approx(-0.1745, abs=0.002) and upper[5] == pytest.approx(1.745, abs=0.002)


@pytest.mark.parametrize("source", ["default", "lerobot", "inverted"])
def test_ticks_radians_ticks_round_trip(source):
    cal = {"default": Calibration.default, "lerobot": lambda: Calibration.from_dict(LEROBOT),
           "inverted": lambda: Calibration.from_dict({j: {**v, "drive_mode": 1} for j, v in LEROBOT.items()})}[source]()
    lo = np.array([c.range_min for c in cal.values()])
    hi = np.array([c.range_max for c in cal.values()])
    for ticks in np.linspace(lo, hi, 97).round().astype(int):
        rad = cal.ticks_to_radians(ticks)
        assert np.array_equal(cal.radians_to_ticks(rad), ticks)
        for joint, r, t in zip(cal, rad, ticks):
            assert cal[joint].to_ticks(r) == t


def test_lerobot_json_import(tmp_path):
    path = tmp_path / "so101_follower.json"
    path.write_text(json.dumps(LEROBOT))
    cal = Calibration.from_lerobot_json(str(path))
    pan = cal["shoulder_pan"]
    assert (pan.servo_id, pan.homing_offset, pan.range_min, pan.range_max, pan.drive_mode) == (1, -1452, 812, 3296, 0)
    assert pan.mid == 2054.0  # new calibration: zero in the middle of the range
    assert pan.to_radians(2054 + 1024) == pytest.approx(math.pi / 2)
    lower, upper = cal.limits()
    assert lower[0] == pytest.approx(-(3296 - 812) / 2 * RAD_PER_TICK)
    assert upper[0] == pytest.approx(-lower[0])


def test_drive_mode_inverts_direction_and_keeps_limits_ordered():
    cal = Calibration.from_dict({j: {**v, "drive_mode": 1 if j == "elbow_flex" else 0} for j, v in LEROBOT.items()})
    elbow = cal["elbow_flex"]
    assert elbow.to_radians(elbow.mid + 100) == pytest.approx(-100 * RAD_PER_TICK)
    assert elbow.lower < 0 < elbow.upper
    assert cal.speed_to_radians([100] * 6)[2] == pytest.approx(-100 * RAD_PER_TICK)
    assert elbow.to_ticks(0.5) < elbow.mid


def test_targets_are_clamped_to_the_range():
    cal = Calibration.default()
    lower, upper = cal.limits()
    ticks = cal.radians_to_ticks(upper + 1.0)
    assert list(ticks) == [c.range_max for c in cal.values()]
    assert list(cal.radians_to_ticks(lower - 1.0)) == [c.range_min for c in cal.values()]
    assert np.allclose(cal.clamp(np.full(6, 10.0)), upper)
    assert cal["gripper"].clamp(-3.0) == pytest.approx(lower[5])


def test_yaml_round_trip_is_plain_data(tmp_path):
    cal = Calibration.from_dict(LEROBOT, "lerobot")
    path = tmp_path / "cal.yaml"
    cal.save(str(path))
    text = path.read_text()
    assert "!!python" not in text and "format: hilserl_ros/so101-calibration" in text
    assert Calibration.load(str(path)) == cal
    nominal = tmp_path / "nominal.yaml"
    Calibration.default().save(str(nominal))
    assert Calibration.load(str(nominal)) == Calibration.default()  # explicit zero survives


@pytest.mark.parametrize("change, words", [
    ({"elbow_flex": {"range_min": 3000, "range_max": 2000}}, ["elbow_flex", "range_min 3000", "below range_max"]),
    ({"wrist_flex": {"range_max": 4096}}, ["wrist_flex", "range_max", "0..4095"]),
    ({"gripper": {"range_min": -1}}, ["gripper", "range_min"]),
    ({"shoulder_pan": {"id": 2}}, ["servo ids [2]"]),
    ({"shoulder_lift": {"drive_mode": 2}}, ["shoulder_lift", "drive_mode"]),
    ({"wrist_roll": {"homing_offset": 3000}}, ["wrist_roll", "homing_offset"]),
    ({"wrist_roll": {"range_min": "low"}}, ["wrist_roll", "range_min must be an integer"]),
])
def test_validation_errors_name_the_joint_and_field(change, words):
    data = json.loads(json.dumps(LEROBOT))
    for joint, fields in change.items():
        data[joint].update(fields)
    with pytest.raises(CalibrationError) as err:
        Calibration.from_dict(data, "my.json")
    for word in words:
        assert word in str(err.value)


def test_missing_and_unknown_joints_are_refused():
    data = dict(LEROBOT)
    del data["gripper"]
    data["elbow"] = LEROBOT["elbow_flex"]
    with pytest.raises(CalibrationError, match=r"missing joints \['gripper'\].*unknown joints \['elbow'\]"):
        Calibration.from_dict(data)
    with pytest.raises(CalibrationError, match="missing"):
        Calibration.from_dict({j: {k: v for k, v in c.items() if k != "range_max"} for j, c in LEROBOT.items()})
    with pytest.raises(CalibrationError, match="range_min 10 must be below"):
        JointCalibration(1, 0, 10, 10)


def test_bad_files_are_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        Calibration.from_lerobot_json(str(bad))
    other = tmp_path / "other.yaml"
    other.write_text("joints: {}\n")
    with pytest.raises(CalibrationError, match="not a calibration file"):
        Calibration.load(str(other))
    with pytest.raises(FileNotFoundError):
        Calibration.load(str(tmp_path / "absent.yaml"))


# ====================================================================== driver on the emulator
@pytest.fixture
def emu(tmp_path):
    with EmulatedServoBus(link_path=str(tmp_path / "so101_bus")) as bus:
        yield bus
    assert bus.stats.internal_errors == 0


@pytest.fixture
def arm(emu):
    bus = FeetechArmBus(emu.link_path, Calibration.default())
    bus.connect()
    yield bus
    bus.close()


def registers(emu, address, size=1):
    return [emu.read_register(s, address, size) for s in range(1, 7)]


def wait_until(fn, timeout=30.0, period=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(period)
    return False


def test_connect_and_read(arm):
    before = time.monotonic()
    r = arm.read()
    after = time.monotonic()
    assert np.allclose(r.position, 0.0) and np.allclose(r.velocity, 0.0) and np.allclose(r.load, 0.0)
    assert np.allclose(r.voltage, 12.0) and np.allclose(r.temperature, 30.0)
    assert before <= r.stamp <= after  # monotonic time, taken during this read
    assert arm.stats.transactions[1] == 2 and arm.stats.error_rate(1) == 0.0  # ping + read


def test_read_is_one_sync_read(emu, arm):
    before = dict(emu.stats.instructions)
    for _ in range(5):
        arm.read()
    after = emu.stats.instructions
    assert after[0x82] - before.get(0x82, 0) == 5
    assert sum(after.values()) - sum(before.values()) == 5


def test_decoding_of_signed_registers(tmp_path):
    class Static(ServoBackend):
        def update(self, tables, now):
            pass

    with EmulatedServoBus(backend=Static(), link_path=str(tmp_path / "bus")) as emu:
        emu.write_register(2, 56, 2048 + 512, 2)  # position
        emu.write_register(2, 58, 0x8000 | 300, 2)  # speed -300 ticks/s
        emu.write_register(2, 60, 0x400 | 250, 2)  # load -25 %
        emu.write_register(2, 62, 118)  # 11.8 V
        emu.write_register(2, 63, 41)  # 41 C
        with FeetechArmBus(emu.link_path, Calibration.default()) as arm:
            r = arm.read()
    assert r.position[1] == pytest.approx(512 * RAD_PER_TICK)
    assert r.velocity[1] == pytest.approx(-300 * RAD_PER_TICK)
    assert r.load[1] == pytest.approx(-0.25)
    assert r.voltage[1] == pytest.approx(11.8) and r.temperature[1] == 41.0


def test_targets_are_reached(arm):
    target = np.array([0.5, -0.8, 0.6, 0.3, -1.0, 1.2])
    arm.set_torque(True)
    arm.write_positions(target)
    assert wait_until(lambda: np.allclose(arm.read().position, target, atol=0.002)), arm.read().position
    assert wait_until(lambda: np.allclose(arm.read().velocity, 0.0))  # settled, not creeping
    assert np.allclose(arm.read().position, arm.calibration.ticks_to_radians(arm.calibration.radians_to_ticks(target)))


def test_writes_are_clamped_to_the_calibrated_range(emu, arm):
    arm.write_positions(np.full(6, 10.0))
    cal = Calibration.default()
    # a sync write has no reply (as on the real bus): wait for the emulator to have applied it
    assert wait_until(lambda: registers(emu, ADDR_GOAL_POSITION, 2) == [c.range_max for c in cal.values()])
    with pytest.raises(ValueError, match="finite"):
        arm.write_positions([0, 0, 0, 0, 0, float("nan")])
    with pytest.raises(ValueError, match="6 joint positions"):
        arm.write_positions([0.0] * 5)


def test_torque_off_holds_position(emu, arm):
    arm.set_torque(True)
    arm.write_positions(np.full(6, 0.4))
    assert wait_until(lambda: np.allclose(arm.read().position, 0.4, atol=0.005))
    arm.set_torque(False)
    assert wait_until(lambda: registers(emu, 40) == [0] * 6)
    arm.write_positions(np.full(6, -0.4))
    goal = [int(t) for t in arm.calibration.radians_to_ticks(np.full(6, -0.4))]
    assert wait_until(lambda: registers(emu, ADDR_GOAL_POSITION, 2) == goal)  # served (a write without reply)
    time.sleep(0.3)  # time for a move to show
    assert np.allclose(arm.read().position, 0.4, atol=0.005)


def test_torque_on_does_not_jump_to_a_stale_goal(emu, arm):
    arm.write_positions(np.full(6, 1.0))  # torque off: nothing moves
    arm.set_torque(True)
    assert wait_until(lambda: registers(emu, 40) == [1] * 6)  # a write without reply: wait until it is served
    time.sleep(0.3)  # time for a jump to show
    assert np.allclose(arm.read().position, 0.0, atol=0.005)


def test_set_acceleration(emu, arm):
    arm.set_acceleration(30)
    assert wait_until(lambda: registers(emu, 41) == [30] * 6)
    arm.set_acceleration([1, 2, 3, 4, 5, 6])
    assert wait_until(lambda: registers(emu, 41) == [1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError):
        arm.set_acceleration(300)


def test_missing_servo_names_the_joint(emu, arm):
    emu.remove_servo(3)
    with pytest.raises(ServoNotResponding) as err:
        arm.read()
    assert err.value.servo_id == 3 and err.value.joint == "elbow_flex"
    assert "servo 3 (elbow_flex)" in str(err.value) and "after 3 retries" in str(err.value)
    assert arm.stats.retries[3] == 3 and arm.stats.errors[3] == 1 and arm.stats.errors[4] == 0
    emu.restore_servo(3)
    assert np.allclose(arm.read().position, 0.0)  # the bus recovers by itself


def test_missing_servo_at_connect(emu):
    emu.remove_servo(6)
    bus = FeetechArmBus(emu.link_path, Calibration.default(), retries=1)
    with pytest.raises(ServoNotResponding, match=r"servo 6 \(gripper\).*missing: 6 \(gripper\)"):
        bus.connect()
    assert not bus.connected
    for sid in range(1, 7):
        emu.remove_servo(sid)
    with pytest.raises(ServoNotResponding, match="no servo answered"):
        bus.connect()


def test_one_corrupt_reply_is_retried(emu, arm):
    emu.corrupt_replies(2, 1)
    r = arm.read()
    assert np.allclose(r.position, 0.0)
    assert arm.stats.retries[2] == 1 and arm.stats.errors[2] == 0
    assert emu.stats.corrupted_replies == 1


def test_always_corrupt_raises_corrupt_reply(emu, arm):
    emu.corrupt_replies(5, 100)
    with pytest.raises(CorruptReply) as err:
        arm.read()
    assert err.value.servo_id == 5 and err.value.joint == "wrist_roll" and "checksum" in str(err.value)
    assert arm.stats.retries[5] == 3 and arm.stats.errors[5] == 1
    assert arm.stats.error_rate(5) == pytest.approx(1 / 2)  # ping ok, read failed


def test_one_dropped_reply_is_retried(emu, arm):
    emu.drop_replies(1, 1)
    arm.read()
    assert arm.stats.retries[1] == 1 and arm.stats.errors[1] == 0


def test_a_reply_that_comes_late_is_never_taken_for_a_later_read(emu):
    """A sync read that gave up (the servos, or the host, slower than the packet timeout) gets
    its reply afterwards. Taken for the next read's, every read from then on would return the
    state of the read before under a fresh stamp (the protocol has no sequence numbers): the
    graph's observations lagged the arm by half a control period on a loaded machine."""
    arm = FeetechArmBus(emu.link_path, Calibration.default(), retries=0, rx_timeout_ms=30)
    arm.connect()
    try:
        def put(ticks):  # shoulder_pan, by hand (torque is off)
            emu.backend.set_position(1, 2048 + ticks)
            return ticks * RAD_PER_TICK

        was = put(400)
        assert arm.read().position[0] == pytest.approx(was, abs=1e-6)
        # the late reply is in the input buffer before the next read is sent
        emu.delay_replies(0.1)
        with pytest.raises(ServoNotResponding):
            arm.read()
        now = put(-400)
        time.sleep(0.3)
        assert arm.read().position[0] == pytest.approx(now, abs=1e-6)
        # two reads give up in a row; their late replies come while the next read waits for its
        # own (or before it is sent, on a slow host: then they are discarded unread)
        emu.delay_replies(0.1, count=2)
        for _ in range(2):
            with pytest.raises(ServoNotResponding):
                arm.read()
        now = put(200)
        arm.rx_timeout_ms = 1000
        assert arm.read().position[0] == pytest.approx(now, abs=1e-6)
        assert arm.stats.stale_replies <= 12  # at most one per servo and late read, all skipped
        now = put(-200)
        assert [arm.read().position[0] for _ in range(3)] == pytest.approx([now] * 3, abs=1e-6)  # no lasting lag
    finally:
        arm.close()


def test_replies_that_answer_no_request_of_this_transaction_are_refused_and_counted(emu, arm):
    """What reaches the driver while it waits for its reply and is not that reply (another
    servo's, another length's, a status-only packet) is skipped and counted, never used; the
    SDK alone would take some of them, and index a status-only one (IndexError)."""
    emu.backend.set_position(1, 2100)
    stale = [status_packet(1, 0, bytes([0x34, 0x12] + [0] * 7)),  # a length the read did not ask for
             status_packet(9, 0, bytes([0x34, 0x12] + [0] * 6)),  # no such servo on this bus
             status_packet(1, 0, b"")]  # a ping's or a write's acknowledgement
    emu.inject(b"".join(stale), with_next_reply=True)
    assert arm.read().position[0] == pytest.approx(52 * RAD_PER_TICK)
    assert arm.stats.stale_replies == 3
    emu.inject(b"".join(stale), with_next_reply=True)
    assert arm.read_register(1, 56, 2) == 2100  # a READ of 2 bytes: none of them is its reply either
    assert arm.stats.stale_replies == 6
    assert arm.stats.errors[1] == 0 and arm.stats.retries[1] == 0


def test_always_dropped_raises_not_responding(emu):
    arm = FeetechArmBus(emu.link_path, Calibration.default(), retries=2, rx_timeout_ms=10)
    arm.connect()
    emu.drop_replies(4, 100)
    with pytest.raises(ServoNotResponding) as err:
        arm.read()
    assert err.value.servo_id == 4 and err.value.joint == "wrist_flex"
    assert arm.stats.retries[4] == 2 and arm.stats.errors[4] == 1
    arm.close()


def test_overheat_raises_servo_fault(emu, arm):
    arm.set_torque(False)
    emu.overheat(2, temperature_c=84)
    with pytest.raises(ServoFault) as err:
        arm.read()
    assert err.value.servo_id == 2 and err.value.joint == "shoulder_lift"
    assert "overheat" in str(err.value) and "84 C" in str(err.value)
    assert err.value.reading.temperature[1] == 84.0 and err.value.faults == {2: ["overheat"]}
    with pytest.raises(ServoFault):
        arm.set_torque(True)  # never energise a faulted servo
    time.sleep(0.05)
    assert registers(emu, 40) == [0] * 6
    arm.set_torque(False)  # turning torque off always works
    emu.clear_overheat(2)
    assert arm.read().temperature[1] < 70


def test_port_lost_and_reconnect(emu, arm):
    arm.read()
    emu.close_port()
    with pytest.raises(PortLost, match="failed"):
        arm.read()
    assert not arm.connected
    with pytest.raises(BusError, match="not connected"):
        arm.write_positions(np.zeros(6))
    with pytest.raises(PortLost, match="cannot open"):
        arm.connect()  # still unplugged
    emu.reopen_port()
    arm.connect()  # same object, same link path
    assert np.allclose(arm.read().position, 0.0)
    arm.close()
    with FeetechArmBus(emu.link_path, Calibration.default()) as fresh:  # or a new driver
        assert np.allclose(fresh.read().voltage, 12.0)


def test_port_lost_during_write(emu, arm):
    emu.close_port()
    with pytest.raises(PortLost):
        arm.write_positions(np.zeros(6))
    arm.close()  # closing a lost port is fine


def test_homing_offsets_are_checked_and_can_be_written(emu):
    lerobot = Calibration.from_dict(LEROBOT, "so101_follower.json")
    with pytest.raises(BusError, match=r"servo 1 \(shoulder_pan\).*Homing_Offset in the servo is 0 .* -1452"):
        FeetechArmBus(emu.link_path, lerobot).connect()
    with FeetechArmBus(emu.link_path, lerobot, check_homing=False) as arm:
        arm.write_calibration()
    assert emu.read_register(1, 31, 2) == 0x800 | 1452  # sign-magnitude, bit 11
    assert emu.read_register(2, 31, 2) == 1007
    assert emu.read_register(1, 9, 2) == 812 and emu.read_register(1, 11, 2) == 3296
    assert emu.read_register(1, 55) == 1  # locked again
    with FeetechArmBus(emu.link_path, lerobot) as arm:
        arm.read()


def test_wrong_model_is_refused(emu):
    emu.write_register(4, 3, 1234, 2)
    with pytest.raises(BusError, match=r"servo 4 .*model number 1234"):
        FeetechArmBus(emu.link_path, Calibration.default()).connect()


def test_a_second_driver_on_the_same_port_is_refused(emu, arm):
    with pytest.raises(PortLost, match="in use by another process"):
        FeetechArmBus(emu.link_path, Calibration.default()).connect()
    arm.close()
    with FeetechArmBus(emu.link_path, Calibration.default()) as other:
        other.read()


def test_absent_port_and_unconnected_use(tmp_path):
    bus = FeetechArmBus(str(tmp_path / "ttyNOPE"), Calibration.default())
    with pytest.raises(PortLost, match="cannot open"):
        bus.connect()
    with pytest.raises(BusError, match="not connected"):
        bus.read()
    bus.close()
