"""The Franka FR3 model (robots/fr3), what is particular to it: forward kinematics against
Franka's published DH table and the Franka Hand's TCP.

What every arm must satisfy (holding home, servo steps, goal box, Euler stability) is in
test_robot_models.py; MJX vs MuJoCo C parity in test_physics.py."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from tests.robot_checks import rotation_angle, set_arm

pytestmark = pytest.mark.parametrize("robot", ["fr3"], indirect=True)  # conftest's session fixture

# Franka's DH parameters (Craig / modified convention), from "Robot and interface
# specifications" (https://frankaemika.github.io/docs/control_parameters.html), and the
# Franka Hand's TCP: rotated -45 deg about the flange z axis, 0.1034 m along it.
DH_A = [0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088]
DH_D = [0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0]
DH_ALPHA = [0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2]
FLANGE_D = 0.107
HAND_YAW = -np.pi / 4
TCP_Z = 0.1034


def _craig(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    """Rot_x(alpha) Trans_x(a) Rot_z(theta) Trans_z(d)."""
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def dh_tcp(q: np.ndarray) -> np.ndarray:
    """World pose (4x4) of the hand TCP from the DH table alone."""
    pose = np.eye(4)
    for a, d, alpha, theta in zip(DH_A, DH_D, DH_ALPHA, q):
        pose = pose @ _craig(a, d, alpha, theta)
    pose = pose @ _craig(0.0, FLANGE_D, 0.0, 0.0)
    pose = pose @ _craig(0.0, TCP_Z, 0.0, HAND_YAW)  # Rot_z then Trans_z: same axis, order irrelevant
    return pose


@pytest.mark.parametrize(
    "q",
    [
        [0.0, 0.0, 0.0, -1.5708, 0.0, 1.5708, -0.7853],
        [0.6, -0.5, 0.4, -2.1, 0.7, 2.3, 0.5],
        [-1.2, 0.8, -0.6, -1.0, -1.4, 1.1, 2.0],
    ],
)
def test_forward_kinematics_matches_dh(robot, q):
    data = mujoco.MjData(robot.model)
    set_arm(robot, data, np.array(q))
    mujoco.mj_kinematics(robot.model, data)
    ref = dh_tcp(np.array(q))
    err = np.linalg.norm(data.site_xpos[robot.ee_site_id] - ref[:3, 3])
    assert err < 0.01, f"ee {data.site_xpos[robot.ee_site_id]} vs DH {ref[:3, 3]} ({err * 1000:.1f} mm)"
    # The orientation follows from the same table; a wrong hand yaw or joint sign shows here.
    angle = rotation_angle(data.site_xmat[robot.ee_site_id].reshape(3, 3), ref[:3, :3])
    assert angle < 0.01, f"ee orientation off by {angle:.3f} rad"
