"""Joint space <-> motor space: any nonzero gain, against hand-computed values and the power balance."""

from __future__ import annotations

import numpy as np
import pytest

from simrl.deploy.buses.base import MotorReadings
from simrl.deploy.calibration import Calibration
from simrl.errors import SimrlError

# A direction-flipping 2:1 drive (say, a servo gripper's travel onto the model's finger range) and a plain one.
CALIBRATION = Calibration(joints=("finger", "wrist"), gain=np.array([-0.5, 2.0]), offset=np.array([-0.2, 0.1]))


def readings(position: list[float], velocity: list[float], torque: list[float]) -> MotorReadings:
    n = len(position)
    return MotorReadings(np.array(position), np.array(velocity), np.array(torque), np.ones(n, bool), np.ones(n, bool), ("",) * n, 0.0)


def test_a_reading_in_joint_space_by_hand() -> None:
    # finger: -0.5 * (0.8 - -0.2) = -0.5 rad; 2 rad/s -> -1 rad/s; 1 N·m at the motor is -2 N·m at the joint.
    # wrist: 2 * (0.6 - 0.1) = 1.0 rad; 3 rad/s -> 6 rad/s; 4 N·m -> 2 N·m.
    joint = CALIBRATION.to_joint(readings([0.8, 0.6], [2.0, 3.0], [1.0, 4.0]))
    np.testing.assert_allclose(joint.position, [-0.5, 1.0])
    np.testing.assert_allclose(joint.velocity, [-1.0, 6.0])
    np.testing.assert_allclose(joint.torque, [-2.0, 2.0])
    # The drive neither makes nor loses power: torque x velocity is the same on both sides.
    np.testing.assert_allclose(joint.torque * joint.velocity, [1.0 * 2.0, 4.0 * 3.0])


def test_a_joint_command_in_motor_space_by_hand() -> None:
    # finger: -0.5 / -0.5 + -0.2 = 0.8 rad; kp 8 N·m/rad at the joint is 8 * 0.25 = 2 at the motor, kd 2 -> 0.5.
    # wrist: 1.0 / 2 + 0.1 = 0.6 rad; kp 10 -> 40, kd 1 -> 4.
    command = CALIBRATION.to_motor(np.array([-0.5, 1.0]), np.array([8.0, 10.0]), np.array([2.0, 1.0]), 0.5)
    np.testing.assert_allclose(command.position, [0.8, 0.6])
    np.testing.assert_allclose(command.kp, [2.0, 40.0])
    np.testing.assert_allclose(command.kd, [0.5, 4.0])
    np.testing.assert_array_equal(command.effort, [0.5, 0.5])  # a share of torque: the same on both sides


def test_a_sign_calibration_is_exact_both_ways() -> None:
    """gain ±1 (a Damiao config's sign) changes no bit: the frames are those of the sign calibration."""
    flip = Calibration(joints=("a", "b"), gain=np.array([-1.0, 1.0]), offset=np.array([0.3, -0.1]))
    joints, kp = np.array([0.123456789, -1.987654321]), np.array([230.0, 30.0])
    command = flip.to_motor(joints, kp, np.array([2.7, 1.5]))
    np.testing.assert_array_equal(command.position, [-0.123456789 + 0.3, -1.987654321 - 0.1])
    np.testing.assert_array_equal(command.kp, kp)
    np.testing.assert_array_equal(flip.to_joint(readings(list(command.position), [1.0, 1.0], [5.0, 5.0])).torque, [-5.0, 5.0])


@pytest.mark.parametrize("gain", [0.0, float("nan")])
def test_a_gain_that_cannot_be_inverted_is_refused_naming_the_joint(gain: float) -> None:
    with pytest.raises(SimrlError, match=r"calibration gain of b \(.*\): allowed: a finite nonzero number") as error:
        Calibration(joints=("a", "b"), gain=np.array([1.0, gain]), offset=np.zeros(2))
    assert "\n" not in str(error.value)
