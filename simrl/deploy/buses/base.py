"""What the real-time bridge needs from a motor bus, whatever the wire.

A bus speaks in *motor space*: each motor's own shaft angle, velocity and
torque, in the order of its ``motor_names``. Calibration (zero offsets and
gains, ``simrl.deploy.calibration``) is the bridge's job, so one bus class serves every arm that
uses its motor family (LeRobot's layering: abstract bus -> vendor bus).

Two kinds of motor fit the same ``MotorCommand``. A torque ("MIT") motor
(Damiao) runs ``tau = kp (q_des - q) + kd (dq_des - dq) + tau_ff`` from every
field. A position servo (Feetech, Dynamixel) closes its own loop with the gains
in its control table: it takes ``position`` and ignores the impedance fields.
Both honour ``effort``, the share of each motor's torque the bus may use: 1
while running; the bridge's safe stop ramps it to 0 before ``disable``, and each
bus maps it onto what its motors have (Damiao: kp scaled down with kd kept, so
the arm settles under damping; Feetech: the RAM Torque_Limit, never the
EEPROM gains; Dynamixel: Goal PWM). Readings carry decoded values (``enabled``,
a ``fault`` reason), never a vendor's codes.

The bridge uses two exchanges per control tick: a ``read`` at the deadline
(every motor's state, no new set point), then, once the next command is
computed from that fresh state, an ``exchange`` that sends it at once; so a
command acts about one inference time after the state it came from, not a whole
period later (the training env has no such delay). A motor whose reply does not
arrive in time is reported as not fresh; deciding what that means (hold, then
stop) is the bridge's job.
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
    effort: np.ndarray  # share of each motor's torque the bus may use, 0..1 (1 while running; the safe stop ramps it to 0)

    @classmethod
    def hold(cls, position: np.ndarray, kp: np.ndarray, kd: np.ndarray, effort: float | np.ndarray = 1.0) -> "MotorCommand":
        """Stay at ``position`` with the given gains, no feed-forward, and ``effort`` of the motors' torque."""
        position = np.asarray(position, np.float64)
        zeros = np.zeros_like(position)
        share = np.broadcast_to(np.asarray(effort, np.float64), position.shape).copy()
        return cls(position, zeros, np.asarray(kp, np.float64), np.asarray(kd, np.float64), zeros, share)


@dataclass(frozen=True)
class MotorReadings:
    """Each motor's latest reply, arrays of shape (n,) in motor space.

    ``fresh[i]`` is False when motor i did not answer this exchange; its other
    entries then repeat the last reply received (NaN before any, ``enabled``
    False, no fault). ``enabled[i]`` is the motor's own report that its torque
    is on; ``fault[i]`` is "" for a healthy motor, else the reason decoded at the
    bus ("over-current", "overload", "input voltage"), which the bridge stops on
    and logs as it is.
    """

    position: np.ndarray
    velocity: np.ndarray
    torque: np.ndarray
    fresh: np.ndarray  # bool
    enabled: np.ndarray  # bool
    fault: tuple[str, ...]  # "" or the reason, per motor
    stamp: float  # time.monotonic() when the exchange finished


class MotorBus(Protocol):
    """A connected set of motors (``motor_names`` in command order)."""

    motor_names: tuple[str, ...]

    def open(self) -> None:
        """Connect to the wire; raises ``BusError`` naming the interface and channel if it cannot."""

    def enable(self) -> MotorReadings:
        """Configure the motors as the arm expects (mode, gains, limits), switch their torque on, return their first replies."""

    def read(self) -> MotorReadings:
        """Ask every motor for its state without changing its set point; replies that arrive within the reply timeout.

        One try with the per-exchange reply timeout (not the setup timeout and
        retries): it runs on every tick, so a late motor is reported as not
        fresh instead of delaying the tick.
        """

    def exchange(self, command: MotorCommand) -> MotorReadings:
        """Send one command to every motor and collect the replies that arrive within the reply timeout."""

    def disable(self) -> MotorReadings:
        """Switch every motor's torque off; returns the replies (``enabled`` False confirms)."""

    def close(self) -> None:
        """Release the wire; safe to call twice."""
