"""Emergency torque off for the SO-101's servos: ``python -m hilserl_ros.hardware.torque_off --port PORT``.

The hardware node turns torque off when it shuts down or meets a fault. When it dies without
doing so (SIGKILL, a crash, the machine's OOM killer), the STS3215 servos keep holding their
last goal with full torque: the arm stays stiff, and if a goal was in flight, keeps pushing.
The project launcher and the launch file run this command after such a death. So it must
work when nothing else does:

- no ROS import (it must run when the ROS installation is what broke), no calibration (it
  writes one register, the same for every servo), only the Feetech SDK and pyserial;
- fast: one broadcast packet first (ID 0xFE, no reply by protocol, reaches every servo at
  once, well under a millisecond of wire time), then one write and one read-back per servo
  with a short reply timeout, to report which servos confirmed;
- it does not give up on a servo that does not answer: the broadcast already went out, so the
  exit status is 0 whenever the write reached the port; the servos that did not confirm are
  named (cable, power, ID?). It exits non-zero, with the reason, only when the port cannot be
  opened or written at all.

It does not take the port's exclusive lock as the driver does: when a driver still holds the
port (hung rather than dead), turning torque off matters more than not interleaving with it.

``torque_off()`` is the same as a function (tests, the hardware node's best-effort torque off
after a failed reconnection).
"""
from __future__ import annotations

import argparse
import fcntl
import sys
import termios
import time

from scservo_sdk import COMM_RX_CORRUPT, COMM_RX_TIMEOUT, COMM_SUCCESS, PacketHandler, PortHandler

from hilserl_ros.hardware.bus import JOINT_NAMES, SERVO_IDS

ADDR_TORQUE_ENABLE = 40  # STS3215 control table, 1 byte: 0 off, 1 on (hilserl_ros.hardware.feetech)
BROADCAST_ID = 0xFE
# The SDK's own reply timeout (~34 ms) is sized for a 16 ms USB latency timer; a servo answers
# within a fraction of a millisecond, so 35 ms per reply is ample and keeps a dead bus quick.
DEFAULT_TIMEOUT_S = 0.035


class PortUnavailable(OSError):
    """The port could not be opened or written: nothing reached the servos."""


def _joint(servo_id: int) -> str:
    return dict(zip(SERVO_IDS, JOINT_NAMES)).get(servo_id, "?")


def _receive(ph: PacketHandler, port: PortHandler, timeout_s: float) -> tuple[list, int]:
    """One status packet (or a timeout / corrupt result) within ``timeout_s``."""
    port.setPacketTimeoutMillis(timeout_s * 1000.0)
    return ph.rxPacket(port)


def _confirm(ph: PacketHandler, port: PortHandler, sid: int, timeout_s: float) -> tuple[bool, str]:
    """Write Torque_Enable=0 to one servo and read it back: (confirmed, what happened)."""
    port.ser.reset_input_buffer()
    if ph.write1ByteTxOnly(port, sid, ADDR_TORQUE_ENABLE, 0) != COMM_SUCCESS:
        raise PortUnavailable(f"write to servo {sid} did not go out")
    # Consume the write's acknowledgement: it carries the servo's ID like the read-back's reply
    # and would be taken for it. No acknowledgement is fine (Response_Status_Level 0 servos
    # answer reads only): the read-back decides.
    _receive(ph, port, timeout_s)
    port.is_using = False
    port.ser.reset_input_buffer()
    if ph.read1ByteTx(port, sid, ADDR_TORQUE_ENABLE) != COMM_SUCCESS:
        port.is_using = False
        raise PortUnavailable(f"read of servo {sid} did not go out")
    port.setPacketTimeoutMillis(timeout_s * 1000.0)  # read1ByteTx set the SDK's longer default
    data, result, _ = ph.readRx(port, sid, 1)
    port.is_using = False
    if result != COMM_SUCCESS:
        return False, {COMM_RX_TIMEOUT: "no reply", COMM_RX_CORRUPT: "corrupt reply (bad checksum)"}.get(
            result, f"no valid reply ({ph.getTxRxResult(result)})")
    if len(data) != 1:
        return False, "malformed reply"
    if data[0] != 0:
        return False, f"still reads Torque_Enable={data[0]}"
    return True, "torque off (confirmed)"


def torque_off(port: str, baudrate: int = 1_000_000, timeout: float = DEFAULT_TIMEOUT_S,
               ids: tuple[int, ...] = SERVO_IDS, confirm: bool = True, retries: int = 1) -> dict:
    """Write Torque_Enable=0 to every servo on ``port``: broadcast, then (``confirm``) per servo
    with a read-back, ``retries`` extra attempts for a servo that does not confirm.

    Returns ``{"port", "baudrate", "broadcast": True, "confirmed": [ids], "unconfirmed": {id:
    reason}, "port_locked": bool, "seconds": float}``. Raises :class:`PortUnavailable` when
    the port cannot be opened or written (nothing reached the servos)."""
    start = time.monotonic()
    handler = PortHandler(port)
    try:
        opened = handler.setBaudRate(int(baudrate))  # opens the port at that rate
    except (OSError, termios.error) as err:  # serial.SerialException is an OSError
        raise PortUnavailable(f"cannot open {port}: {err}") from None
    if not opened:
        raise PortUnavailable(f"cannot open {port}: baud rate {baudrate} is not one the Feetech SDK supports")
    result: dict = {"port": port, "baudrate": int(baudrate), "broadcast": False, "confirmed": [],
                    "unconfirmed": {}, "port_locked": False}
    try:
        try:
            fcntl.flock(handler.ser.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handler.ser.fileno(), fcntl.LOCK_UN)
        except OSError:
            result["port_locked"] = True  # a driver still holds it: write anyway (module docstring)
        # a short blocking read slice instead of the SDK's non-blocking spin: wakes on the first byte
        handler.ser.timeout = 0.002
        ph = PacketHandler(0)  # protocol_end 0: STS, little endian
        if ph.write1ByteTxOnly(handler, BROADCAST_ID, ADDR_TORQUE_ENABLE, 0) != COMM_SUCCESS:
            raise PortUnavailable(f"the broadcast torque-off write on {port} did not go out")
        handler.ser.flush()  # on the wire before anything else can go wrong
        result["broadcast"] = True
        if confirm:
            for sid in ids:
                for _ in range(retries + 1):
                    ok, why = _confirm(ph, handler, sid, timeout)
                    if ok:
                        break
                if ok:
                    result["confirmed"].append(sid)
                else:
                    result["unconfirmed"][sid] = why
    except (OSError, termios.error) as err:
        if result["broadcast"]:  # the broadcast reached the port; the port died during the read-backs
            for sid in ids:
                if sid not in result["confirmed"]:
                    result["unconfirmed"].setdefault(sid, f"port failed during the read-back ({err})")
        else:
            raise PortUnavailable(f"cannot write to {port}: {err}") from None
    finally:
        try:
            handler.closePort()
        except (OSError, termios.error):
            pass  # the device is already gone
    result["seconds"] = time.monotonic() - start
    return result


def describe(result: dict, ids: tuple[int, ...] = SERVO_IDS) -> list[str]:
    """The report, one line per servo and a summary."""
    lines = [f"torque off: broadcast Torque_Enable=0 sent on {result['port']} at {result['baudrate']} baud"
             + (" (the port is locked by another process: a driver still running? written anyway)"
                if result["port_locked"] else "")]
    for sid in ids:
        if sid in result["confirmed"]:
            lines.append(f"  servo {sid} ({_joint(sid)}): torque off (confirmed)")
        elif sid in result["unconfirmed"]:
            lines.append(f"  servo {sid} ({_joint(sid)}): NOT CONFIRMED: {result['unconfirmed'][sid]} "
                         "(check its cable, power and ID)")
    missing = [f"{sid} ({_joint(sid)})" for sid in ids if sid in result["unconfirmed"]]
    summary = f"torque off: {len(result['confirmed'])}/{len(ids)} servos confirmed"
    lines.append(summary + (f"; not confirmed: {', '.join(missing)}" if missing else "")
                 + f" ({result['seconds'] * 1000:.0f} ms)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hilserl_ros.hardware.torque_off",
        description="Turn torque off on every servo of the SO-101 (broadcast, then per-servo read-back). "
                    "Exit 0 when the write went out (servos that did not confirm are named), 1 when the "
                    "port cannot be opened or written.")
    parser.add_argument("--port", required=True, help="serial port of the Feetech bus (e.g. /dev/ttyACM0)")
    parser.add_argument("--baudrate", type=int, default=1_000_000, help="bus baud rate (default 1000000)")
    parser.add_argument("--ids", default=",".join(map(str, SERVO_IDS)),
                        help="servo IDs to confirm, comma separated (the broadcast reaches all)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds to wait for each reply (default {DEFAULT_TIMEOUT_S})")
    args = parser.parse_args(argv)
    try:
        ids = tuple(int(i) for i in args.ids.split(",") if i.strip())
    except ValueError:
        parser.error(f"--ids must be integers separated by commas, got {args.ids!r}")
    try:
        result = torque_off(args.port, args.baudrate, args.timeout, ids=ids)
    except PortUnavailable as err:
        print(f"torque off FAILED: {err}; the servos may still hold torque", file=sys.stderr, flush=True)
        return 1
    for line in describe(result, ids):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
