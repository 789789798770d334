"""Servo calibration of the SO-101: raw STS3215 ticks <-> joint radians (no ROS).

A joint's calibration is the servo's ID, the homing offset stored in the servo's EEPROM, the
range of ticks (as the servo reports them, offset applied) the joint may use, the drive mode
(1 = the servo turns the other way than the joint) and the tick of the joint's zero:

    rad = sign * (ticks - zero) * 2*pi / 4096        sign = -1 if drive_mode == 1 else +1

By default ``zero`` is the middle of the range, ``(range_min + range_max) / 2``: LeRobot's "new
calibration" convention, which its calibration JSON files follow. The nominal calibration
derived from the URDF (:meth:`Calibration.default`, used for the simulated arm) puts every
joint's zero at tick 2048 and its range at the URDF limits; there the zero is explicit because
two joints' URDF ranges are not centred on zero (gripper -0.17..1.75 rad, wrist_roll
-2.74..2.84 rad), so the middle of the range is not 0 rad for them.

Files: our own YAML (:meth:`Calibration.save`/:meth:`Calibration.load`) and LeRobot's
calibration JSON (:meth:`Calibration.from_lerobot_json`). Both are plain data; every value is
validated on load with an error that names the file, the joint and the field.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import yaml

from hilserl_ros.hardware.bus import JOINT_NAMES, SERVO_IDS

TICKS_PER_TURN = 4096
MAX_TICK = TICKS_PER_TURN - 1
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_TURN
NOMINAL_ZERO = 2048  # tick of 0 rad in the nominal (URDF) calibration: half a turn
MAX_HOMING_OFFSET = 2047  # Homing_Offset is sign-magnitude with the sign in bit 11
YAML_FORMAT = "hilserl_ros/so101-calibration"
YAML_VERSION = 1


class CalibrationError(ValueError):
    """A calibration that cannot be used: missing joints, out-of-range values, bad files."""


def _int_field(name: str, value, low: int, high: int) -> int:
    # bool is an int subclass: "range_min: true" is a typo, not a tick
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise CalibrationError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not low <= value <= high:
        raise CalibrationError(f"{name} = {value} is outside {low}..{high}")
    return value


@dataclass(frozen=True)
class JointCalibration:
    """One joint's servo calibration (ticks as the servo reports them, homing offset applied)."""

    servo_id: int
    homing_offset: int
    range_min: int
    range_max: int
    drive_mode: int = 0
    zero: float | None = None  # tick of 0 rad; None = middle of the range (LeRobot convention)

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise numpy/float ints once, here
        set_(self, "servo_id", _int_field("id", self.servo_id, 0, 253))
        set_(self, "homing_offset", _int_field("homing_offset", self.homing_offset,
                                               -MAX_HOMING_OFFSET, MAX_HOMING_OFFSET))
        set_(self, "range_min", _int_field("range_min", self.range_min, 0, MAX_TICK))
        set_(self, "range_max", _int_field("range_max", self.range_max, 0, MAX_TICK))
        set_(self, "drive_mode", _int_field("drive_mode", self.drive_mode, 0, 1))
        if self.range_min >= self.range_max:
            raise CalibrationError(f"range_min {self.range_min} must be below range_max {self.range_max}")
        if self.zero is not None:
            if isinstance(self.zero, bool) or not isinstance(self.zero, (int, float, np.number)) \
                    or not 0 <= float(self.zero) <= MAX_TICK:
                raise CalibrationError(f"zero must be a tick in 0..{MAX_TICK}, got {self.zero!r}")
            set_(self, "zero", float(self.zero))

    @property
    def mid(self) -> float:
        """Tick of the joint's zero (0 rad)."""
        return self.zero if self.zero is not None else (self.range_min + self.range_max) / 2.0

    @property
    def sign(self) -> float:
        return -1.0 if self.drive_mode == 1 else 1.0

    def to_radians(self, ticks):
        return self.sign * (np.asarray(ticks, float) - self.mid) * RAD_PER_TICK

    def to_ticks(self, radians) -> int:
        """Goal tick for a joint angle, clamped to the calibrated range."""
        ticks = self.mid + self.sign * float(radians) / RAD_PER_TICK
        return int(min(max(round(ticks), self.range_min), self.range_max))

    @property
    def lower(self) -> float:
        return float(min(self.to_radians(self.range_min), self.to_radians(self.range_max)))

    @property
    def upper(self) -> float:
        return float(max(self.to_radians(self.range_min), self.to_radians(self.range_max)))

    def clamp(self, radians: float) -> float:
        return min(max(float(radians), self.lower), self.upper)

    def to_dict(self) -> dict:
        out = {"id": self.servo_id, "drive_mode": self.drive_mode, "homing_offset": self.homing_offset,
               "range_min": self.range_min, "range_max": self.range_max}
        if self.zero is not None:
            out["zero"] = self.zero
        return out


class Calibration(Mapping):
    """Joint name -> :class:`JointCalibration` for the six SO-101 joints, in JOINT_NAMES order.

    The array methods take and return one value per joint in that order; they are what the
    driver's hot path uses (precomputed, vectorised).
    """

    def __init__(self, joints: Mapping[str, JointCalibration], source: str = "calibration"):
        self.source = source
        missing = [j for j in JOINT_NAMES if j not in joints]
        unknown = [j for j in joints if j not in JOINT_NAMES]
        if missing or unknown:
            parts = ([f"missing joints {missing}"] if missing else []) + \
                    ([f"unknown joints {unknown}"] if unknown else [])
            raise CalibrationError(f"{source}: {'; '.join(parts)} (expected exactly {list(JOINT_NAMES)})")
        for joint in JOINT_NAMES:
            if not isinstance(joints[joint], JointCalibration):
                raise CalibrationError(f"{source}: joint '{joint}' is not a JointCalibration")
        self._joints = {j: joints[j] for j in JOINT_NAMES}
        ids = [c.servo_id for c in self._joints.values()]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise CalibrationError(f"{source}: servo ids {dupes} are used by more than one joint")
        cals = list(self._joints.values())
        self._mid = np.array([c.mid for c in cals])
        self._sign = np.array([c.sign for c in cals])
        self._range_min = np.array([c.range_min for c in cals])
        self._range_max = np.array([c.range_max for c in cals])
        self._lower = np.array([c.lower for c in cals])
        self._upper = np.array([c.upper for c in cals])

    # ------------------------------------------------------------------ mapping
    def __getitem__(self, joint: str) -> JointCalibration:
        return self._joints[joint]

    def __iter__(self) -> Iterator[str]:
        return iter(self._joints)

    def __len__(self) -> int:
        return len(self._joints)

    def __eq__(self, other) -> bool:
        return isinstance(other, Calibration) and self._joints == other._joints

    def __repr__(self) -> str:
        return f"Calibration({self.source!r}, {self._joints!r})"

    @property
    def servo_ids(self) -> tuple[int, ...]:
        return tuple(c.servo_id for c in self._joints.values())

    @property
    def signs(self) -> np.ndarray:
        """+1/-1 per joint: -1 where the servo turns against the joint (drive_mode 1)."""
        return self._sign.copy()

    # ------------------------------------------------------------------ conversions (arrays)
    def ticks_to_radians(self, ticks) -> np.ndarray:
        """Present positions (ticks, one per joint) -> joint angles (rad)."""
        return self._sign * (np.asarray(ticks, float) - self._mid) * RAD_PER_TICK

    def radians_to_ticks(self, radians) -> np.ndarray:
        """Joint angles (rad) -> goal ticks, clamped to each joint's calibrated range."""
        ticks = np.rint(self._mid + self._sign * np.asarray(radians, float) / RAD_PER_TICK)
        return np.clip(ticks, self._range_min, self._range_max).astype(np.int64)

    def speed_to_radians(self, ticks_per_s) -> np.ndarray:
        """Signed speeds (ticks/s) -> joint velocities (rad/s)."""
        return self._sign * np.asarray(ticks_per_s, float) * RAD_PER_TICK

    def limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) joint limits in radians, from range_min/range_max."""
        return self._lower.copy(), self._upper.copy()

    def clamp(self, radians) -> np.ndarray:
        return np.clip(np.asarray(radians, float), self._lower, self._upper)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, joints: Mapping, source: str = "calibration") -> "Calibration":
        """From {joint: {id, homing_offset, range_min, range_max, drive_mode[, zero]}}."""
        if not isinstance(joints, Mapping):
            raise CalibrationError(f"{source}: expected a mapping of joint names, got {type(joints).__name__}")
        out = {}
        for joint, entry in joints.items():
            if not isinstance(entry, Mapping):
                raise CalibrationError(f"{source}: joint '{joint}': expected a mapping, got {entry!r}")
            needed = ("id", "homing_offset", "range_min", "range_max")
            absent = [k for k in needed if k not in entry]
            if absent:
                raise CalibrationError(f"{source}: joint '{joint}': missing {absent}")
            extra = set(entry) - set(needed) - {"drive_mode", "zero"}
            if extra:
                raise CalibrationError(f"{source}: joint '{joint}': unknown fields {sorted(extra)}")
            try:
                out[joint] = JointCalibration(entry["id"], entry["homing_offset"], entry["range_min"],
                                              entry["range_max"], entry.get("drive_mode", 0), entry.get("zero"))
            except CalibrationError as err:
                raise CalibrationError(f"{source}: joint '{joint}': {err}") from None
        return cls(out, source)

    def to_dict(self) -> dict:
        return {joint: cal.to_dict() for joint, cal in self._joints.items()}

    @classmethod
    def default(cls) -> "Calibration":
        """Nominal calibration: 2048 ticks = 0 rad, ranges at the URDF joint limits."""
        return cls.from_urdf()

    @classmethod
    def from_urdf(cls, path: str | None = None, ids=SERVO_IDS) -> "Calibration":
        """Nominal calibration from a URDF's joint limits (zero at tick 2048, no homing offset).

        Ranges are rounded inwards, so the calibrated limits never exceed the URDF's.
        """
        path = path or default_urdf()
        limits = urdf_joint_limits(path)
        joints = {}
        for joint, sid in zip(JOINT_NAMES, ids):
            if joint not in limits:
                raise CalibrationError(f"{path}: no revolute joint '{joint}' with limits")
            lower, upper = limits[joint]
            try:
                joints[joint] = JointCalibration(
                    sid, 0, math.ceil(NOMINAL_ZERO + lower / RAD_PER_TICK - 1e-9),
                    math.floor(NOMINAL_ZERO + upper / RAD_PER_TICK + 1e-9), 0, NOMINAL_ZERO)
            except CalibrationError as err:
                raise CalibrationError(f"{path}: joint '{joint}' limits {lower}..{upper} rad: {err}") from None
        return cls(joints, f"nominal ({os.path.basename(path)})")

    @classmethod
    def from_lerobot_json(cls, path: str) -> "Calibration":
        """LeRobot's SO-101 calibration JSON ({joint: {id, drive_mode, homing_offset, range_min,
        range_max}}); zero = middle of each range, as LeRobot normalises."""
        try:
            with open(path) as fh:
                data = json.load(fh)
        except json.JSONDecodeError as err:
            raise CalibrationError(f"{path}: not valid JSON: {err}") from None
        return cls.from_dict(data, path)

    @classmethod
    def load(cls, path: str) -> "Calibration":
        """Our YAML format (see :meth:`save`)."""
        try:
            with open(path) as fh:
                data = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise CalibrationError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, Mapping) or data.get("format") != YAML_FORMAT:
            raise CalibrationError(f"{path}: not a calibration file (expected 'format: {YAML_FORMAT}')")
        if data.get("version") != YAML_VERSION:
            raise CalibrationError(f"{path}: unsupported version {data.get('version')!r} (this code reads "
                                   f"{YAML_VERSION})")
        return cls.from_dict(data.get("joints"), path)

    def save(self, path: str) -> None:
        """Write our YAML format atomically (a crash never leaves half a calibration)."""
        payload = {"format": YAML_FORMAT, "version": YAML_VERSION,
                   "units": "ticks (4096 per turn); rad = sign * (ticks - zero) * 2pi/4096, "
                            "zero = middle of the range unless given, sign = -1 if drive_mode is 1",
                   "joints": self.to_dict()}
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".calibration-", suffix=".yaml")
        try:
            with os.fdopen(fd, "w") as fh:
                yaml.safe_dump(payload, fh, sort_keys=False)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.source = path


def default_urdf() -> str:
    """urdf/so101.urdf of the source checkout, else of the installed package."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(here, "urdf", "so101.urdf")
    if os.path.isfile(path):
        return path
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory("hilserl_ros"), "urdf", "so101.urdf")


def urdf_joint_limits(path: str) -> dict[str, tuple[float, float]]:
    """{joint: (lower, upper)} of a URDF's revolute joints, in radians."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise CalibrationError(f"{path}: not valid XML: {err}") from None
    out = {}
    for joint in root.iter("joint"):
        limit = joint.find("limit")
        if joint.get("type") == "revolute" and limit is not None:
            out[joint.get("name")] = (float(limit.get("lower")), float(limit.get("upper")))
    return out
