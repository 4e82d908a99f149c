"""Joint space ↔ motor space: each motor's gain and zero offset.

A bus speaks motor shaft angles; the policy, the kinematics and the joint limits
speak the robot model's joint angles. ``joint = gain * (motor - offset)``, so
``motor = joint / gain + offset``, with any nonzero gain: a direction sign
(±1, a Damiao config's ``sign``) or a ratio, as when a servo gripper's travel
maps onto the model's finger range. The rest follows from the same map and
from power being the same on both sides: velocities scale by ``gain``, torques
by ``1 / gain``, and impedance gains (torque per angle) by ``gain**2`` from
joint to motor. Keeping this here lets one bus class serve any arm of its motor
family (LeRobot keeps calibration apart from its buses for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simrl.deploy.buses.base import MotorCommand, MotorReadings
from simrl.deploy.config import DeployConfig
from simrl.errors import SimrlError
from simrl.robots import Robot


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
    """Gains and offsets of the motors, in bus order: ``joint = gain * (motor - offset)``."""

    joints: tuple[str, ...]
    gain: np.ndarray  # (n,) joint rad per motor rad, nonzero (±1: a direction sign)
    offset: np.ndarray  # (n,) motor rad at the joint's zero

    def __post_init__(self) -> None:
        bad = [f"{joint} ({gain})" for joint, gain in zip(self.joints, self.gain) if not (np.isfinite(gain) and gain != 0)]
        if bad:
            raise SimrlError(f"calibration gain of {', '.join(bad)}: allowed: a finite nonzero number (joint rad per motor rad)")

    @classmethod
    def from_config(cls, config: DeployConfig, robot: Robot) -> "Calibration":
        """The deploy file's calibration, as its motor family gives it (``BusSettings.joint_calibration``):
        each motor's ``sign`` and ``offset``, or (a servo arm: Feetech, Dynamixel) its LeRobot calibration file."""
        gain, offset = config.bus.joint_calibration(config.file, config.motors, robot)
        return cls(joints=tuple(m.joint for m in config.motors), gain=gain, offset=offset)

    def to_joint(self, readings: MotorReadings) -> JointState:
        """A bus reply in joint space."""
        return JointState(
            position=self.gain * (readings.position - self.offset),
            velocity=self.gain * readings.velocity,
            torque=readings.torque / self.gain,
            fresh=readings.fresh.copy(),
            enabled=readings.enabled.copy(),
            fault=readings.fault,
        )

    def to_motor(self, position: np.ndarray, kp: np.ndarray, kd: np.ndarray, effort: np.ndarray | float = 1.0) -> MotorCommand:
        """Hold joint targets ``position`` with joint-space gains ``kp``/``kd`` and ``effort``: a motor-space command, no feed-forward."""
        stiffness = self.gain**2  # torque per angle: one gain for the torque, one for the angle
        motor = np.asarray(position, np.float64) / self.gain + self.offset
        return MotorCommand.hold(motor, np.asarray(kp, np.float64) * stiffness, np.asarray(kd, np.float64) * stiffness, effort)

