"""The SO-101 model (robots/so101), what is particular to it: its published joint
ranges, masses and servo torque, forward kinematics against the published table, and a
home TCP in front of the base above the table.

What every arm must satisfy (holding home, servo steps, goal box, Euler stability) is in
test_robot_models.py; MJX vs MuJoCo C parity in test_physics.py.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from tests.robot_checks import data_at

pytestmark = pytest.mark.parametrize("robot", ["so101"], indirect=True)  # conftest's session fixture

# Published kinematics of the SO-101, TheRobotStudio/SO-ARM100
# Simulation/SO101/so101_new_calib.xml (tabulated in the project's shared robot notes (ROBOTS.md)):
# (joint, body pos in parent [m], body quat in parent [w, x, y, z]); every joint
# rotates about its body's local z axis; the base frame is the world frame.
SO101_CHAIN = [
    ("shoulder_pan", (0.0388353, 0.0, 0.0624), (0.0, 0.0, -1.0, 0.0)),
    ("shoulder_lift", (-0.0303992, -0.0182778, -0.0542), (0.5, -0.5, -0.5, -0.5)),
    ("elbow_flex", (-0.11257, -0.028, 0.0), (0.7071, 0.0, 0.0, 0.7071)),
    ("wrist_flex", (-0.1349, 0.0052, 0.0), (0.7071, 0.0, 0.0, -0.7071)),
    ("wrist_roll", (0.0, -0.0611, 0.0181), (0.0172, -0.0172, 0.7069, 0.7069)),
]
TCP_IN_GRIPPER = (-0.0079, -0.0002, -0.0981)  # tool centre point, gripper body frame
PUBLISHED_RANGES = {
    "shoulder_pan": (-1.91986, 1.91986),
    "shoulder_lift": (-1.74533, 1.74533),
    "elbow_flex": (-1.69, 1.69),
    "wrist_flex": (-1.65806, 1.65806),
    "wrist_roll": (-2.74385, 2.84121),
    "gripper": (-0.17453, 1.74533),
}


def _homogeneous(pos, quat) -> np.ndarray:
    """4x4 transform from a translation and a (w, x, y, z) quaternion (normalised here)."""
    w, x, y, z = np.asarray(quat, dtype=float) / np.linalg.norm(quat)
    t = np.eye(4)
    t[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    t[:3, 3] = pos
    return t


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    t = np.eye(4)
    t[:2, :2] = [[c, -s], [s, c]]
    return t


def _published_tcp(arm_q: dict[str, float]) -> np.ndarray:
    """World position of the TCP from the published table alone (no MuJoCo)."""
    t = np.eye(4)
    for joint, pos, quat in SO101_CHAIN:
        t = t @ _homogeneous(pos, quat) @ _rot_z(arm_q[joint])
    return (t @ np.array([*TCP_IN_GRIPPER, 1.0]))[:3]


# --------------------------------------------------------------- published data


def test_published_parameters(robot):
    m = robot.model
    for joint, (lo, hi) in PUBLISHED_RANGES.items():
        np.testing.assert_allclose(m.joint(joint).range, (lo, hi), atol=1e-6)
    # published link masses (kg)
    masses = {"base": 0.147, "shoulder": 0.100, "upper_arm": 0.103, "lower_arm": 0.104, "wrist": 0.079, "gripper": 0.087, "moving_jaw": 0.012}
    for body, mass in masses.items():
        assert m.body(body).mass[0] == pytest.approx(mass)
    assert float(m.body_mass.sum()) == pytest.approx(sum(masses.values()))
    # STS3215 stall torque on every servo
    np.testing.assert_allclose(m.actuator_forcerange, np.tile([-3.35, 3.35], (6, 1)))


# ------------------------------------------------------------------ kinematics


@pytest.mark.parametrize(
    "pose",
    [
        "home",
        {"shoulder_pan": 0.0, "shoulder_lift": 0.0, "elbow_flex": 0.0, "wrist_flex": 0.0, "wrist_roll": 0.0},
        {"shoulder_pan": 0.8, "shoulder_lift": 0.6, "elbow_flex": -0.9, "wrist_flex": -0.5, "wrist_roll": 1.5},
    ],
)
def test_forward_kinematics_matches_published_table(robot, pose):
    m = robot.model
    if pose == "home":
        pose = {j: robot.config.home[j] for j in robot.config.arm_joints}
    data = mujoco.MjData(m)
    data.qpos[:] = robot.home_qpos
    for joint, value in pose.items():
        data.qpos[m.joint(joint).qposadr[0]] = value
    mujoco.mj_kinematics(m, data)
    expected = _published_tcp(pose)
    # The spec asks for 1 cm; both sides use the same published numbers, so they agree far closer.
    np.testing.assert_allclose(data.site_xpos[robot.ee_site_id], expected, atol=1e-3)


def test_home_tcp_is_in_front_and_above_the_table(robot):
    data = data_at(robot)
    tcp = data.site_xpos[robot.ee_site_id]
    assert tcp[0] > 0.15 and abs(tcp[1]) < 0.05 and tcp[2] > 0.10
