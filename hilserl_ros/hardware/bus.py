"""What the hardware interface node needs from an arm, whatever drives it.

The real arm and the simulated arm are both reached through :class:`ArmBus`: the Feetech
STS3215 bus (hilserl_ros.hardware.feetech) on a serial port, which is the real USB adapter,
or a pseudo-terminal served by the emulator (hilserl_ros.hardware.emulator) backed by a simple
servo model or by the MuJoCo arm. Units at this interface are SI (REP-103): radians, rad/s,
degrees Celsius, volts; load is the servo's signed load as a fraction of its maximum.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

JOINT_NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
SERVO_IDS = (1, 2, 3, 4, 5, 6)


class BusError(Exception):
    """A communication fault. ``servo_id``/``joint`` name the servo when one is to blame."""

    def __init__(self, message: str, servo_id: int | None = None, joint: str | None = None):
        where = f"servo {servo_id} ({joint})" if servo_id is not None else "bus"
        super().__init__(f"{where}: {message}")
        self.servo_id, self.joint, self.reason = servo_id, joint, message


class ServoNotResponding(BusError):
    """No status packet came back from a servo (after retries)."""


class CorruptReply(BusError):
    """A status packet came back with a bad checksum or malformed (after retries)."""


class PortLost(BusError):
    """The serial port cannot be opened or disappeared (cable pulled)."""


class ServoFault(BusError):
    """A servo reports a fault in its status byte (overheat, overload, voltage...)."""


@dataclass
class JointReading:
    position: np.ndarray  # rad, one per joint in JOINT_NAMES order
    velocity: np.ndarray  # rad/s
    load: np.ndarray  # signed fraction of maximum load, [-1, 1]
    temperature: np.ndarray  # degrees Celsius
    voltage: np.ndarray  # volts
    stamp: float  # time.monotonic() of the read


@dataclass
class BusStats:
    """Per-servo communication health, for /diagnostics."""

    transactions: dict[int, int] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)  # failed transactions (after retries)
    retries: dict[int, int] = field(default_factory=dict)
    stale_replies: int = 0  # late replies to an earlier transaction, recognised and skipped

    def error_rate(self, servo_id: int) -> float:
        n = self.transactions.get(servo_id, 0)
        return self.errors.get(servo_id, 0) / n if n else 0.0


class ArmBus:
    """Interface of an arm's servo bus (all methods may raise :class:`BusError`)."""

    joint_names: tuple[str, ...] = JOINT_NAMES

    def connect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def read(self) -> JointReading:
        """Position, velocity, load, temperature and voltage of every joint (one sync read each)."""
        raise NotImplementedError

    def write_positions(self, positions: np.ndarray) -> None:
        """Goal positions (rad) for every joint, in one sync write."""
        raise NotImplementedError

    def set_torque(self, enabled: bool) -> None:
        raise NotImplementedError

    @property
    def stats(self) -> BusStats:
        raise NotImplementedError
