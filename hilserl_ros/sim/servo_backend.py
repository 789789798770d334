"""The MuJoCo arm behind the emulated STS3215 bus.

The emulator (hilserl_ros.hardware.emulator) keeps each servo's control table and calls
:meth:`MujocoServoBackend.update` before it answers a read and after a write. Here the goal
and torque registers become the MuJoCo position actuators' targets and gains, and the present
position, speed and load registers are filled from the physics, in the nominal calibration
(2048 ticks = 0 rad, 4096 ticks a turn; Calibration.default()) that the hardware node uses for
a simulated arm.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from hilserl_ros.hardware.bus import SERVO_IDS
from hilserl_ros.hardware.calibration import Calibration
from hilserl_ros.hardware.emulator import get_u16, put_u16, sign_magnitude
from hilserl_ros.sim.world import SO101World

TICKS_PER_RAD = 4096 / (2 * math.pi)
ADDR_TORQUE, ADDR_GOAL, ADDR_POSITION, ADDR_SPEED, ADDR_LOAD, ADDR_VOLTAGE, ADDR_TEMPERATURE = 40, 42, 56, 58, 60, 62, 63


class MujocoServoBackend:
    """Servo backend whose six servos are the simulated SO-101's joints (ids 1-6 in order)."""

    def __init__(self, world: SO101World, ids=SERVO_IDS, voltage: float = 12.0, ambient_c: float = 32.0):
        self.world = world
        self.ids = tuple(ids)
        self.calibration = Calibration.default()
        self.voltage_register = int(round(voltage * 10))
        self.ambient_c = ambient_c
        self._reset_goals = True  # the first update writes the arm's pose into the goal registers
        self._torque = np.zeros(len(self.ids), bool)
        self._lock = threading.Lock()
        self.on_torque = None  # called with the servos' torque flags whenever they change (the bus's thread)

    def after_reset(self) -> None:
        """The world was reset: goal registers must follow the new pose, not yank it back."""
        with self._lock:
            self._reset_goals = True

    def update(self, tables: dict[int, bytearray], now: float) -> None:
        with self._lock:
            reset, self._reset_goals = self._reset_goals, False
        q, dq, load = self.world.joint_state()
        cal = self.calibration
        if reset:
            for sid, ticks in zip(self.ids, cal.radians_to_ticks(self.world.joint_targets())):
                put_u16(tables[sid], ADDR_GOAL, int(ticks))
        torque = np.array([tables[sid][ADDR_TORQUE] == 1 for sid in self.ids])
        goals = np.array([get_u16(tables[sid], ADDR_GOAL) for sid in self.ids], float)
        if not np.array_equal(torque, self._torque):
            self.world.set_torque(torque)
            self._torque = torque
            if self.on_torque is not None:
                self.on_torque(torque)
        self.world.set_joint_targets(np.where(torque, cal.ticks_to_radians(goals), q))
        position = np.clip(np.rint(2048 + q * TICKS_PER_RAD), 0, 4095).astype(int)  # unclamped by range
        for i, sid in enumerate(self.ids):
            table = tables[sid]
            put_u16(table, ADDR_POSITION, int(position[i]))
            put_u16(table, ADDR_SPEED, sign_magnitude(int(round(dq[i] * TICKS_PER_RAD)), 15))
            put_u16(table, ADDR_LOAD, sign_magnitude(int(round(load[i] * 1000)), 10))
            table[ADDR_VOLTAGE] = self.voltage_register
            table[ADDR_TEMPERATURE] = int(round(self.ambient_c + 10 * min(abs(load[i]), 1.0)))
