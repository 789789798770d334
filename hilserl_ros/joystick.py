"""Gamepad -> intervention mapping (no ROS), and the Linux joystick device reader.

Default layout is an Xbox-style pad as joy_node reports it (axes: 0 left X, 1 left Y, 2 LT,
3 right X, 4 right Y, 5 RT; buttons: 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB): hold RB (deadman) to take
over; left stick moves the gripper in the horizontal plane (up = forward +x, left = +y, REP-103),
right stick vertical moves it up/down; LB closes the gripper, LT pressed opens it; A = success,
B = failure, X = re-record, Y = start the next episode.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np

JS_EVENT = struct.Struct("<IhBB")  # time (ms), value, type, number  (linux/joystick.h)
JS_BUTTON, JS_AXIS, JS_INIT = 0x01, 0x02, 0x80


@dataclass
class JoyMapping:
    axis_x: int = 1
    axis_y: int = 0
    axis_z: int = 4
    sign_x: float = 1.0
    sign_y: float = 1.0
    sign_z: float = 1.0
    deadzone: float = 0.1
    scale: float = 1.0
    deadman_button: int = 5
    close_button: int = 4
    open_axis: int = 2  # trigger: pressed when below open_threshold (joy_node: 1 released, -1 pressed)
    open_threshold: float = 0.0
    success_button: int = 0
    failure_button: int = 1
    rerecord_button: int = 2
    start_button: int = 3
    event_buttons: dict = field(default_factory=dict)

    def __post_init__(self):
        self.event_buttons = {"success": self.success_button, "failure": self.failure_button,
                              "rerecord": self.rerecord_button, "start": self.start_button}


def _axis(axes, index: int) -> float:
    return float(axes[index]) if 0 <= index < len(axes) else 0.0


def _button(buttons, index: int) -> bool:
    return 0 <= index < len(buttons) and bool(buttons[index])


def deadzone(value: float, zone: float) -> float:
    """0 inside the zone, rescaled so the output still spans [-1, 1] outside it."""
    if abs(value) <= zone:
        return 0.0
    return float(np.sign(value) * (abs(value) - zone) / (1.0 - zone))


def map_joy(axes, buttons, m: JoyMapping) -> tuple[bool, np.ndarray]:
    """(deadman held, normalised action [dx, dy, dz, gripper])."""
    active = _button(buttons, m.deadman_button)
    move = np.array([m.sign_x * deadzone(_axis(axes, m.axis_x), m.deadzone),
                     m.sign_y * deadzone(_axis(axes, m.axis_y), m.deadzone),
                     m.sign_z * deadzone(_axis(axes, m.axis_z), m.deadzone)]) * m.scale
    gripper = 0.0
    if _button(buttons, m.close_button):
        gripper = -1.0
    elif 0 <= m.open_axis < len(axes) and _axis(axes, m.open_axis) < m.open_threshold:
        gripper = 1.0
    return active, np.concatenate([np.clip(move, -1, 1), [gripper]]).astype(np.float32)


def pressed(previous, current, index: int) -> bool:
    """Rising edge of a button."""
    return _button(current, index) and not _button(previous, index)


class JoystickDevice:
    """Reads the Linux joystick API (/dev/input/jsN): 8-byte events, axes scaled to [-1, 1]."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None
        self.axes: list[float] = []
        self.buttons: list[int] = []

    def open(self) -> None:
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def reset(self) -> None:
        """Every axis and button back to 0 (their count kept): the state of a pad nobody touches.
        After the device is lost, its last state (a deadman held) must not outlive it."""
        self.axes = [0.0] * len(self.axes)
        self.buttons = [0] * len(self.buttons)

    def poll(self) -> bool:
        """Apply every pending event; True if anything changed. Raises OSError when the
        device is gone (unplugged)."""
        changed = False
        while True:
            try:
                data = os.read(self.fd, JS_EVENT.size * 64)
            except BlockingIOError:
                return changed
            if not data:
                raise OSError("joystick device closed")
            for offset in range(0, len(data) - JS_EVENT.size + 1, JS_EVENT.size):
                _, value, kind, number = JS_EVENT.unpack_from(data, offset)
                kind &= ~JS_INIT
                if kind == JS_AXIS:
                    self.axes.extend([0.0] * (number + 1 - len(self.axes)))
                    self.axes[number] = max(-1.0, value / 32767.0)
                    changed = True
                elif kind == JS_BUTTON:
                    self.buttons.extend([0] * (number + 1 - len(self.buttons)))
                    self.buttons[number] = 1 if value else 0
                    changed = True
