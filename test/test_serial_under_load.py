"""The serial line on a loaded machine (issue 25): the Feetech SDK's own probe, as a user's
script runs it, and the driver, against the emulated bus in a process of its own (as the graph
runs it) while busy processes load every core.

The servos' Present_Position says when it was read and by which servo: ``(ms % 4096) << 3 |
id``, ms being CLOCK_MONOTONIC (shared by all processes) in milliseconds. A reply read between
sending a request and receiving its answer is this request's; an earlier time means a stale
reply (one that answered an earlier request, late)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from scservo_sdk import COMM_SUCCESS, GroupSyncRead, PacketHandler, PortHandler

from hilserl_ros.hardware.bus import SERVO_IDS, BusError
from hilserl_ros.hardware.calibration import RAD_PER_TICK, Calibration
from hilserl_ros.hardware.feetech import FeetechArmBus

pytestmark = pytest.mark.slow

BUSY = """
import numpy as np
x = np.random.rand(200, 200)
while True:
    x = (x @ x) % 1.0
    sum(range(20000))
"""

# The emulator with a backend stamping each read; it serves until its stdin closes.
EMULATOR = """
import sys, time
from hilserl_ros.hardware.emulator import EmulatedServoBus, put_u16

class Clock:
    def update(self, tables, now):
        ms = int(now * 1000) % 4096
        for sid, table in tables.items():
            put_u16(table, 56, ms << 3 | sid)

with EmulatedServoBus(backend=Clock(), link_path=sys.argv[1]) as bus:
    print(bus.port, flush=True)
    sys.stdin.read()
"""

TRANSACTIONS = 3000
ATTEMPTS = 10  # a user's script retries a failed transaction this many times
LOADERS = 3  # with the test and the emulator: load 5 on this project's 2-core machines


def stamp_ms() -> int:
    return int(time.monotonic() * 1000)


def fresh(value: int, sid: int, sent_ms: int, received_ms: int) -> bool:
    """Whether ``value`` is servo ``sid``'s state read between the two times."""
    assert value & 7 == sid, f"servo {sid} answered with another servo's data ({value & 7})"
    return (((value >> 3) - sent_ms) % 4096) <= received_ms - sent_ms


@pytest.fixture
def loaded_bus():
    loaders = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(LOADERS)]
    link = os.path.join(tempfile.mkdtemp(prefix="serial_load_"), "bus")
    emulator = subprocess.Popen([sys.executable, "-c", EMULATOR, link], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert emulator.stdout.readline(), "the emulator did not start"
        yield link
    finally:
        emulator.stdin.close()
        try:
            emulator.wait(10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()
        for proc in loaders:
            proc.kill()
            proc.wait()
        os.rmdir(os.path.dirname(link))
    assert emulator.returncode == 0


def test_the_sdk_probe_and_the_driver_on_a_loaded_machine(loaded_bus):
    # --- the SDK's own probe, as a user's script: ping each servo, then sync reads of
    # Present_Position with a READ now and then. A real bus also answers late now and then: the
    # script retries, after letting the late bytes come and dropping them (the SDK never does).
    port, ph = PortHandler(loaded_bus), PacketHandler(0)
    assert port.openPort()
    group = GroupSyncRead(port, ph, 56, 2)
    for sid in SERVO_IDS:
        group.addParam(sid)
    attempts = failures = stale = 0

    def transact(fn):
        nonlocal attempts, failures
        for _ in range(ATTEMPTS):
            attempts += 1
            sent = stamp_ms()
            result = fn()
            if result == COMM_SUCCESS:
                return sent, stamp_ms()
            failures += 1
            time.sleep(0.1)
            port.ser.reset_input_buffer()
        pytest.fail(f"a transaction failed {ATTEMPTS} times in a row ({failures} of {attempts} attempts failed)")

    try:
        for sid in SERVO_IDS:
            transact(lambda: ph.ping(port, sid)[1])
        for i in range(TRANSACTIONS):
            sid = SERVO_IDS[i % len(SERVO_IDS)]
            if i % 10 == 0:
                value = []
                sent, received = transact(lambda: (value.append(ph.read2ByteTxRx(port, sid, 56)), value[-1][1])[1])
                stale += not fresh(value[-1][0], sid, sent, received)
            sent, received = transact(group.txRxPacket)
            stale += sum(not fresh(group.getData(s, 56, 2), s, sent, received) for s in SERVO_IDS)
    finally:
        port.closePort()
    # late replies happen under load, but not often, and only they leave stale data behind (the
    # emulator sends nothing that answers no request); the SDK takes what it finds
    assert failures <= attempts / 4, f"{failures} of {attempts} attempts failed"
    assert stale <= len(SERVO_IDS) * failures, f"{stale} stale values after {failures} failed attempts"

    # --- the driver on the same bus and load: never a stale value, whatever came late
    calibration = Calibration.default()
    errors = 0
    with FeetechArmBus(loaded_bus, calibration, check_homing=False) as arm:
        for _ in range(TRANSACTIONS):
            sent = stamp_ms()
            try:
                position = arm.read().position
            except BusError:  # four late transactions in a row: counted, and the next read goes on
                errors += 1
                continue
            received = stamp_ms()
            ticks = np.rint(position / RAD_PER_TICK).astype(int) + 2048
            for sid, value in zip(SERVO_IDS, ticks):
                assert fresh(int(value), sid, sent, received), f"servo {sid}: a stale reply was used"
        stats = arm.stats
    assert errors <= TRANSACTIONS / 20, f"{errors} of {TRANSACTIONS} reads failed after retries ({stats})"
    assert sum(stats.retries.values()) <= TRANSACTIONS, stats
