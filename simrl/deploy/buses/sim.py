"""A ``MotorBus`` straight onto a ``RealityPlant``, no wire: for testing the loop faster than real time.

Each ``exchange`` hands the command to the plant, advances the plant by one
control period and answers with what the motors then measure (lockstep); a
``read`` answers without time passing. The bridge's tick (read, compute, send)
thus becomes the training env's order: the observation, then targets that act
for one period, then the next observation. A loop run on this bus sees the
env's timing exactly, and a test of the loop's logic takes milliseconds per
tick instead of a period.
Replies dropped by the plant (its reality's drop rate, ``silence``) come back
not fresh, as on a wire.
"""

from __future__ import annotations

import time

import numpy as np

from simrl.deploy.buses.base import BusError, MotorCommand, MotorReadings
from simrl.deploy.emulation.reality import RealityPlant


class SimBus:
    """Motors ``motor_names`` (one per plant motor, in order), stepping ``plant`` by ``period`` s per exchange."""

    def __init__(self, plant: RealityPlant, motor_names: tuple[str, ...], period: float) -> None:
        if len(motor_names) != plant.num_motors:
            raise BusError(f"sim bus got {len(motor_names)} motor names for a plant of {plant.num_motors} motors")
        self.motor_names = tuple(motor_names)
        self.plant = plant
        self.period = period
        n = plant.num_motors
        self._enabled = np.zeros(n, dtype=bool)
        self._position = np.full(n, np.nan)
        self._velocity = np.full(n, np.nan)
        self._torque = np.full(n, np.nan)
        self._open = False

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def enable(self) -> MotorReadings:
        """Torque on for every motor; answers without time passing."""
        return self._switch(True)

    def disable(self) -> MotorReadings:
        """Torque off for every motor; answers without time passing."""
        return self._switch(False)

    def read(self) -> MotorReadings:
        """Every motor's state now, no set point changed, no time passing."""
        self._require_open()
        return self._reply()

    def exchange(self, command: MotorCommand) -> MotorReadings:
        """Set every enabled motor's MIT command, advance one period, reply.

        The plant's motors are MIT motors, so ``effort`` scales kp with kd kept,
        as on the Damiao bus.
        """
        self._require_open()
        for i in range(self.plant.num_motors):
            if self._enabled[i]:
                kp = command.kp[i] * command.effort[i]
                values = (command.position[i], command.velocity[i], kp, command.kd[i], command.torque[i])
                self.plant.set_command(i, *(float(v) for v in values))
        self.plant.advance(self.period)
        return self._reply()

    def _switch(self, enabled: bool) -> MotorReadings:
        self._require_open()
        for i in range(self.plant.num_motors):
            self.plant.set_enabled(i, enabled)
        self._enabled[:] = enabled
        return self._reply()

    def _require_open(self) -> None:
        if not self._open:
            raise BusError("sim bus is not open; call open() first")

    def _reply(self) -> MotorReadings:
        n = self.plant.num_motors
        fresh = np.array([not self.plant.drops_reply(i) for i in range(n)])
        for i in np.flatnonzero(fresh):
            sample = self.plant.sample(i)
            self._position[i], self._velocity[i], self._torque[i] = sample.position, sample.velocity, sample.torque
        return MotorReadings(
            position=self._position.copy(),
            velocity=self._velocity.copy(),
            torque=self._torque.copy(),
            fresh=fresh,
            enabled=self._enabled.copy(),
            fault=("",) * n,  # the plant models no fault
            stamp=time.monotonic(),
        )
