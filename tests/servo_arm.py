"""What the Feetech and Dynamixel calibration tests share: posing the emulated arm, and a user walking `simrl calibrate`."""

from __future__ import annotations

import subprocess
import time

import numpy as np

from simrl.deploy.emulation.reality import RealityPlant
from tests.test_deploy import TIMEOUT, read_line

# Every motor but wrist_roll (full turn, no stops) is swept; the gripper (5) is held half open at the middle pose.
SWEPT = (0, 1, 2, 3, 5)
MIDDLE_POSE = {i: 0.0 for i in range(5)} | {5: 0.78540}


def place(plant: RealityPlant, pose: dict[int, float]) -> None:
    """Put motors (index -> angle, rad) where a user's hands would, the servos' torque off."""
    for motor, angle in pose.items():
        plant.place(motor, angle)


def walk_through_calibrate(command: list[str], plant: RealityPlant, ranges: np.ndarray) -> tuple[int, str, str]:
    """Run ``simrl calibrate`` as a user: the middle pose, Enter, each swept joint to both stops, Enter.

    ``ranges``: (n, 2) joint stops the user reaches. Returns the exit status, stdout and stderr.
    """
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as user:
        assert "middle of its range of motion" in read_line(user.stdout, TIMEOUT)
        place(plant, MIDDLE_POSE)  # the user poses the arm, then presses Enter
        user.stdin.write("\n")  # type: ignore[union-attr]
        user.stdin.flush()  # type: ignore[union-attr]
        assert "through its whole range" in read_line(user.stdout, TIMEOUT)
        for i in SWEPT:
            for end in (0, 1):
                place(plant, {i: ranges[i, end]})
                time.sleep(0.35)  # several polls at each stop
        out, err = user.communicate("\n", timeout=TIMEOUT)
    return user.returncode, out, err
