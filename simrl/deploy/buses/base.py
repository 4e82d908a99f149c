"""What the real-time bridge needs from a motor bus, whatever the wire.

A bus speaks in *motor space*: each motor's own shaft angle, velocity and
torque, in the order of its ``motor_names``. Calibration (zero offsets and
direction signs) is the bridge's job, so one bus class serves every arm that
uses its motor family (LeRobot's layering: abstract bus -> vendor bus).

Every motor family this project drives takes an impedance ("MIT") command —
``tau = kp (q_des - q) + kd (dq_des - dq) + tau_ff`` — and answers each command
with its measured state. The bridge uses two exchanges per control tick: a
``read`` at the deadline (every motor's state, no new set point), then, once the
next command is computed from that fresh state, an ``exchange`` that sends it
at once; so a command acts about one inference time after the state it came
from, not a whole period later (the training env has no such delay). A motor
whose reply does not arrive in time is reported as not fresh; deciding what
that means (hold, then stop) is the bridge's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simrl.errors import SimrlError


class BusError(SimrlError):
    """The bus itself failed: the interface vanished, a send failed, the port closed."""


@dataclass(frozen=True)
class MotorCommand:
    """One impedance command per motor, arrays of shape (n,) in motor space (rad, rad/s, N·m, N·m/rad, N·m·s/rad)."""

    position: np.ndarray
    velocity: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    torque: np.ndarray

    @classmethod
    def hold(cls, position: np.ndarray, kp: np.ndarray, kd: np.ndarray) -> "MotorCommand":
        """Stay at ``position`` with the given gains and no feed-forward."""
        zeros = np.zeros_like(position, dtype=np.float64)
        return cls(np.asarray(position, np.float64), zeros, np.asarray(kp, np.float64), np.asarray(kd, np.float64), zeros)


@dataclass(frozen=True)
class MotorReadings:
    """Each motor's latest reply, arrays of shape (n,) in motor space.

    ``fresh[i]`` is False when motor i did not answer this exchange; its other
    entries then repeat the last reply received (NaN before any). ``status`` is
    the motor's own state code (Damiao: 0 disabled, 1 enabled, 8+ faults; -1 no
    reply yet).
    """

    position: np.ndarray
    velocity: np.ndarray
    torque: np.ndarray
    fresh: np.ndarray  # bool
    status: np.ndarray  # int
    stamp: float  # time.monotonic() when the exchange finished


class MotorBus(Protocol):
    """A connected set of motors (``motor_names`` in command order)."""

    motor_names: tuple[str, ...]

    def open(self) -> None:
        """Connect to the wire; raises ``BusError`` naming the interface and channel if it cannot."""

    def enable(self) -> MotorReadings:
        """Switch every motor to torque-on (MIT mode) and return their first replies."""

    def read(self) -> MotorReadings:
        """Ask every motor for its state without changing its set point; replies that arrive within the reply timeout.

        One try with the per-exchange reply timeout (not the setup timeout and
        retries): it runs on every tick, so a late motor is reported as not
        fresh instead of delaying the tick.
        """

    def exchange(self, command: MotorCommand) -> MotorReadings:
        """Send one command to every motor and collect the replies that arrive within the reply timeout."""

    def disable(self) -> MotorReadings:
        """Switch every motor's torque off; returns the replies (status 0 confirms)."""

    def close(self) -> None:
        """Release the wire; safe to call twice."""
