"""Servo bus figure: sync reads per second of all six servos, through the real Feetech SDK
(FeetechArmBus.read()), against the emulated STS3215 bus with 1 Mbps wire timing.

    python bench/world_bus.py            (bench/world.py calls measure_sync_read_rate)

By default the emulator runs in a process of its own, as in the graph (the sim node serves the
bus, the hardware node reads it), so the driver and the servos do not share an interpreter.
The wire limit is what 1 Mbps allows for the bytes of one read: the SYNC_READ instruction
(8 + 6 bytes) and six 14-byte status packets, 10 bits a byte.
"""
from __future__ import annotations

import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from hilserl_ros.hardware.bus import SERVO_IDS  # noqa: E402
from hilserl_ros.hardware.calibration import Calibration  # noqa: E402
from hilserl_ros.hardware.emulator import EmulatedServoBus  # noqa: E402
from hilserl_ros.hardware.feetech import STATE_LENGTH, FeetechArmBus  # noqa: E402

BAUDRATE = 1_000_000
WINDOW_S = 0.25  # rates are taken per window; median/min/max over windows


def sync_read_bytes(servos: int = len(SERVO_IDS), length: int = STATE_LENGTH) -> int:
    instruction = 8 + servos  # FF FF FE LEN 82 ADDR LEN ids... CHK
    return instruction + servos * (6 + length)  # each reply: FF FF ID LEN ERR data... CHK


def _start_emulator_process(link: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "hilserl_ros.hardware.emulator", "--link", link],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([proc.stdout], [], [], 20.0)
    line = proc.stdout.readline() if ready else ""
    if "ready" not in line:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise RuntimeError(f"emulator process did not start: {line!r} {err[-2000:]}")
    return proc


def measure_sync_read_rate(seconds: float = 3.0, separate_process: bool = True) -> dict:
    """FeetechArmBus.read() back to back for ``seconds`` against the emulator (1 Mbps wire timing).

    Returns reads_per_s (median over 0.25 s windows), min, max, bytes_per_read, wire_limit_hz,
    and the read latency percentiles and the reader's CPU use."""
    tmp = tempfile.mkdtemp(prefix="hilserl-bench-bus-")
    link = os.path.join(tmp, "so101_bus")
    proc = emu = None
    try:
        if separate_process:
            proc = _start_emulator_process(link)
        else:
            emu = EmulatedServoBus(baudrate=BAUDRATE, wire_timing=True, link_path=link).start()
        with FeetechArmBus(link, Calibration.default(), baudrate=BAUDRATE) as bus:
            for _ in range(50):  # warm-up
                bus.read()
            stamps, rates = [], []
            cpu0, start = time.process_time(), time.perf_counter()
            window_start, window_reads = start, 0
            while True:
                bus.read()
                now = time.perf_counter()
                stamps.append(now)
                window_reads += 1
                if now - window_start >= WINDOW_S:
                    rates.append(window_reads / (now - window_start))
                    window_start, window_reads = now, 0
                if now - start >= seconds:
                    break
            wall, cpu = now - start, time.process_time() - cpu0
            stats = bus.stats
    finally:
        if emu is not None:
            emu.stop()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    gaps = sorted((b - a) * 1e3 for a, b in zip([start] + stamps, stamps))
    n = sync_read_bytes()
    return {"reads_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
            "bytes_per_read": n, "wire_limit_hz": BAUDRATE / (10.0 * n),
            "latency_ms_p50": gaps[len(gaps) // 2], "latency_ms_p99": gaps[int(len(gaps) * 0.99)],
            "reader_cpu_cores": cpu / wall, "reads": len(stamps), "windows": len(rates),
            "retries": sum(stats.retries.values()), "errors": sum(stats.errors.values()),
            "emulator": "separate process" if separate_process else "thread in the reader's process",
            "baudrate": BAUDRATE}


def main() -> int:
    for separate in (True, False):
        r = measure_sync_read_rate(3.0, separate_process=separate)
        print(f"[bench] servo sync read, 6 servos x {STATE_LENGTH} bytes, 1 Mbps wire timing, emulator in a "
              f"{r['emulator']}: {r['reads_per_s']:.0f} reads/s (min {r['min']:.0f}, max {r['max']:.0f}); "
              f"latency p50 {r['latency_ms_p50']:.2f} ms, p99 {r['latency_ms_p99']:.2f} ms; reader CPU "
              f"{r['reader_cpu_cores']:.2f} cores; {r['bytes_per_read']} bytes/read, wire limit "
              f"{r['wire_limit_hz']:.0f} Hz; retries {r['retries']}, errors {r['errors']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
