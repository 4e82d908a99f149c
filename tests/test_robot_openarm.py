"""The OpenArm v2 right-arm model (robots/openarm), what is particular to it: the maker's
joint names, motor torque limits and masses, forward kinematics against the maker's
kinematic table, its zero pose hanging down beside the post, and a home inside its goal box.

What every arm must satisfy (holding home, servo steps, goal box, Euler stability) is in
test_robot_models.py; MJX vs MuJoCo C parity in test_physics.py."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from tests.robot_checks import data_at, parallel_chain_pose, rotation_angle, set_arm

pytestmark = pytest.mark.parametrize("robot", ["openarm"], indirect=True)  # conftest's session fixture

# The maker's kinematics, typed in from the project's shared robot notes (ROBOTS.md) (facts read from the MJCF in
# PyPI `openarm-mujoco` 2.3.0, v2/openarm_bimanual.xml, right arm): per joint the child
# body's position in its parent and the joint axis; every body frame is parallel to its
# parent at zero. base_link sits at (0, -0.031, 0) from the torso centre; ee_base_link's
# origin is the control point.
TORSO_TO_BASE = np.array([0.0, -0.031, 0.0])
CHAIN = [  # (pos in parent, axis) for joint1 ... joint7
    ((0.0, -0.0625, 0.0), (0.0, -1.0, 0.0)),
    ((0.0, -0.06, 0.0), (-1.0, 0.0, 0.0)),
    ((0.0, 0.0, -0.06625), (0.0, 0.0, -1.0)),
    ((0.0, 0.0, -0.15375), (0.0, -1.0, 0.0)),
    ((0.0, 0.0, -0.0955), (0.0, 0.0, -1.0)),
    ((0.0, 0.0, -0.1205), (0.0, 1.0, 0.0)),
    ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
]
# simrl's mount (robot.xml): the torso centre at world (0, 0, 0.6), unrotated.
WORLD_TO_TORSO = np.array([0.0, 0.0, 0.6])

# Motor per arm joint and its torque limit (N m): enactic/openarm_can, lerobot openarm_follower.
TORQUE_LIMIT = [40.0, 40.0, 27.0, 27.0, 7.0, 7.0, 7.0]


def table_ee(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World position and rotation of ee_base_link from the table and the mount alone."""
    return parallel_chain_pose(WORLD_TO_TORSO + TORSO_TO_BASE, CHAIN, q)


def test_maker_parameters(robot):
    model = robot.model
    assert robot.config.arm_joints == [f"joint{i}" for i in range(1, 8)]
    assert robot.config.gripper_joints == ["finger_joint1"]
    np.testing.assert_allclose(model.actuator_forcerange[robot.arm_actuators, 1], TORQUE_LIMIT)
    # Every body carries its own published mass (sum of the table's masses, fingers included).
    assert model.body_mass.sum() == pytest.approx(1.143 + 1.142 + 0.2775 + 1.074 + 0.635 + 0.616 + 0.475 + 0.528 + 0.126 + 0.114)
    # The home pose respects the finger mirror constraint.
    assert robot.home_qpos[model.joint("finger_joint2").qposadr[0]] == robot.home_qpos[model.joint("finger_joint1").qposadr[0]]


@pytest.mark.parametrize(
    "q",
    [
        [0.0] * 7,  # hanging straight down
        [0.3, 0.0, 0.0, 1.4, 0.0, 0.5, 0.0],  # home
        [1.1, 0.6, -0.9, 1.9, 1.2, -0.6, -1.3],
    ],
)
def test_forward_kinematics_matches_table(robot, q):
    data = mujoco.MjData(robot.model)
    set_arm(robot, data, np.array(q))
    mujoco.mj_kinematics(robot.model, data)
    ref_pos, ref_rot = table_ee(np.array(q))
    err = np.linalg.norm(data.site_xpos[robot.ee_site_id] - ref_pos)
    assert err < 0.01, f"ee {data.site_xpos[robot.ee_site_id]} vs table {ref_pos} ({err * 1000:.1f} mm)"
    # ee is the wrist centre (joints 6 and 7 intersect there), so its position ignores
    # joints 5-7; the orientation catches a wrong wrist axis or sign.
    angle = rotation_angle(data.site_xmat[robot.ee_site_id].reshape(3, 3), ref_rot)
    assert angle < 0.01, f"ee orientation off by {angle:.3f} rad"


def test_zero_pose_hangs_down_beside_post(robot):
    """At the maker's zero the arm hangs straight down from the shoulder, clear of the table."""
    model, data = robot.model, mujoco.MjData(robot.model)
    set_arm(robot, data, np.zeros(7))
    data.qpos[:] = 0.0
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.site_xpos[robot.ee_site_id], [0.0, -0.1535, 0.6 - 0.436], atol=1e-9)
    assert data.ncon == 0


def test_home_is_inside_the_goal_box(robot):
    ee = data_at(robot).site_xpos[robot.ee_site_id]
    box = robot.config.goal_workspace
    assert np.all(ee > box.low) and np.all(ee < box.high), f"home ee {ee} is outside the goal box"
