"""Joint space ↔ motor space: each motor's direction sign and zero offset.

A bus speaks motor shaft angles; the policy, the kinematics and the joint limits
speak the robot model's joint angles. ``joint = sign * (motor - offset)``, so
``motor = sign * joint + offset``; velocities and torques only flip with the
sign. Keeping this here lets one bus class serve any arm of its motor family
(LeRobot keeps calibration apart from its buses for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simrl.deploy.buses.base import MotorCommand, MotorReadings
from simrl.deploy.buses.damiao import DamiaoMotor
from simrl.deploy.config import DeployConfig


@dataclass(frozen=True)
class JointState:
    """One tick's measurement in joint space, arrays of shape (n_motors,) in motor order."""

    position: np.ndarray
    velocity: np.ndarray
    torque: np.ndarray
    fresh: np.ndarray  # bool
    enabled: np.ndarray  # bool, the motor says its torque is on
    fault: tuple[str, ...]  # "" or the reason the bus decoded, per motor


@dataclass(frozen=True)
class Calibration:
    """Signs and offsets of the motors, in bus order."""

    joints: tuple[str, ...]
    sign: np.ndarray  # (n,) +1 or -1
    offset: np.ndarray  # (n,) rad

    @classmethod
    def from_config(cls, config: DeployConfig) -> "Calibration":
        return cls(
            joints=tuple(m.joint for m in config.motors),
            sign=np.array([m.sign for m in config.motors], dtype=np.float64),
            offset=np.array([m.offset for m in config.motors], dtype=np.float64),
        )

    def to_joint(self, readings: MotorReadings) -> JointState:
        """A bus reply in joint space."""
        return JointState(
            position=self.sign * (readings.position - self.offset),
            velocity=self.sign * readings.velocity,
            torque=self.sign * readings.torque,
            fresh=readings.fresh.copy(),
            enabled=readings.enabled.copy(),
            fault=readings.fault,
        )

    def to_motor(self, position: np.ndarray, kp: np.ndarray, kd: np.ndarray, effort: np.ndarray | float = 1.0) -> MotorCommand:
        """Hold joint targets ``position`` with gains ``kp``/``kd`` and ``effort``: a motor-space impedance command, no feed-forward."""
        return MotorCommand.hold(self.sign * np.asarray(position, np.float64) + self.offset, kp, kd, effort)


def damiao_motors(config: DeployConfig) -> list[DamiaoMotor]:
    """The config's motors as the Damiao bus names them: by the joint each drives."""
    return [DamiaoMotor(m.joint, m.can_id, m.master_id, m.model) for m in config.motors]
