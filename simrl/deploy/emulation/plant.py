"""The physical side of a set of motors, as a bus emulator drives it.

An emulator decodes wire frames and calls a ``MotorPlant``; the plant is the
arm and its motors (a MuJoCo simulation with a hidden "reality", see
``simrl.deploy.emulation.reality``). Keeping the two apart lets one plant sit behind any
motor family's emulator, and lets the ``sim`` bus drive a plant with no wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class MotorSample:
    """What one motor's encoder and current sensor report now (motor space)."""

    position: float  # rad
    velocity: float  # rad/s
    torque: float  # N·m, the torque the motor is applying


class MotorPlant(Protocol):
    """Motors ``0 .. num_motors-1`` driving a simulated arm."""

    num_motors: int

    def set_enabled(self, motor: int, enabled: bool) -> None:
        """Torque on (the MIT law acts) or off (the joint is free)."""

    def set_command(self, motor: int, position: float, velocity: float, kp: float, kd: float, torque: float) -> None:
        """The motor's new MIT-law set point; takes effect after the reality's command latency."""

    def set_torque_limit(self, motor: int, share: float) -> None:
        """Cap the motor's torque at ``share`` (0..1) of its rated limit, as a servo's Torque_Limit register does."""

    def set_deadband(self, motor: int, radians: float) -> None:
        """A position error within ``radians`` drives no torque (a servo's dead zone); 0 for a torque motor."""

    def sample(self, motor: int) -> MotorSample:
        """The motor's measured state (with the reality's encoder noise and resolution)."""

    def drops_reply(self, motor: int) -> bool:
        """Whether this reply is lost on the wire (the reality's reply drop rate, or a motor made silent)."""
