"""The ROBOTIS OMX model (robots/omx), what is particular to it: forward kinematics against the
maker's URDF chain, the maker's joint limits and CAD masses, the servos' data-sheet torques and the
gains LeRobot writes, and the coupled gripper jaws.

What every arm must satisfy (holding home, servo steps, goal box, Euler stability) is in
test_robot_models.py; MJX vs MuJoCo C parity in test_physics.py."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from tests.robot_checks import data_at, parallel_chain_pose, rotation_angle, set_arm

pytestmark = pytest.mark.parametrize("robot", ["omx"], indirect=True)  # conftest's session fixture

# The maker's chain, typed in from ROBOTIS-GIT/open_manipulator
# open_manipulator_description/urdf/omx_f/omx_f_arm.urdf.xacro: per joint (origin xyz in the parent
# link, axis); every joint has rpy 0, so all frames are parallel at zero. link0 is the world frame.
CHAIN = [
    ((-0.01125, 0.0, 0.034), (0.0, 0.0, 1.0)),  # joint1 = shoulder_pan
    ((0.0, 0.0, 0.0635), (0.0, 1.0, 0.0)),  # joint2 = shoulder_lift
    ((0.0415, 0.0, 0.11315), (0.0, 1.0, 0.0)),  # joint3 = elbow_flex
    ((0.162, 0.0, 0.0), (0.0, 1.0, 0.0)),  # joint4 = wrist_flex
    ((0.0287, 0.0, 0.0), (1.0, 0.0, 0.0)),  # joint5 = wrist_roll
]
# urdf/omx_f/omx_f.urdf.xacro: end_effector_joint, link5 -> end_effector_link.
TCP_IN_LINK5 = np.array([0.09193, -0.0016, 0.0])

# ROBOTIS' servo limits (ros2_control/omx_f.ros2_control.xacro, Min/Max Position Limit, ticks) on ids
# 12 and 13; 0 rad is tick 2048 and a turn is 4096 ticks (dynamixel_hardware_interface xl430_w250.model).
TICK_LIMITS = {"shoulder_lift": (830, 3129), "elbow_flex": (1024, 3140)}

# CAD masses (kg) of link0 ... link7, the same URDF.
MASSES = {
    "base": 0.22389051,
    "shoulder": 0.065987041,
    "upper_arm": 0.087221471,
    "forearm": 0.083759129,
    "wrist": 0.029975063,
    "gripper": 0.043810887,
    "jaw_motor": 0.012090677,
    "jaw_gear": 0.012090677,
}


def test_maker_limits_and_masses(robot):
    model = robot.model
    assert robot.config.arm_joints == ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]
    assert robot.config.gripper_joints == ["gripper"]
    for joint, ticks in TICK_LIMITS.items():
        np.testing.assert_allclose(model.joint(joint).range, (np.array(ticks) - 2048) * 2 * np.pi / 4096, atol=1e-6)
    # The other arm joints may turn through one encoder turn (LeRobot's range 0 ... 4095).
    for joint in ("shoulder_pan", "wrist_flex", "wrist_roll"):
        np.testing.assert_allclose(model.joint(joint).range, (-np.pi, np.pi), atol=1e-5)
    # gripper range of the maker's MJCF (robotis_mujoco_menagerie robotis_omx/omx.xml): 0 closed, 1 open
    np.testing.assert_allclose(model.joint("gripper").range, (-0.2, 1.0))
    for body, mass in MASSES.items():
        assert model.body(body).mass[0] == pytest.approx(mass)
    assert float(model.body_mass.sum()) == pytest.approx(sum(MASSES.values()))


def test_servo_torques_and_gains(robot):
    model = robot.model
    limit = {a: model.actuator(a).forcerange[1] for a in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")}
    # e-manual stall torques: XL430-W250 1.5 N m at 12 V (ids 11-13), XL330-M288 0.52 N m at 5 V (14, 15) ...
    assert [limit[a] for a in ("shoulder_pan", "shoulder_lift", "elbow_flex")] == [1.5, 1.5, 1.5]
    assert [limit[a] for a in ("wrist_flex", "wrist_roll")] == [0.52, 0.52]
    # ... and the gripper's current limit (ROBOTIS: 600 mA) at the XL330's 0.52 N m per 1.47 A.
    assert limit["gripper"] == pytest.approx(0.600 * 0.52 / 1.47, rel=2e-3)
    # LeRobot writes Position P 1500 / D 600 on elbow_flex; the other XL430s keep the factory 640 / 4000.
    kp = {a: model.actuator(a).gainprm[0] for a in limit}
    kv = {a: -model.actuator(a).biasprm[2] for a in limit}
    assert kp["elbow_flex"] / kp["shoulder_lift"] == pytest.approx(1500 / 640, rel=2e-3)
    assert kv["elbow_flex"] / kv["shoulder_lift"] == pytest.approx(600 / 4000, rel=2e-3)
    assert kp["shoulder_pan"] == kp["shoulder_lift"] and kv["shoulder_pan"] == kv["shoulder_lift"]
    # The XL330s' factory D gain is 0.
    assert kv["wrist_flex"] == kv["wrist_roll"] == kv["gripper"] == 0.0


def test_zero_pose_tcp_is_hand_computed(robot):
    """At zero the upper arm stands vertical and the forearm points along +x: the TCP is the sum of the offsets."""
    data = data_at(robot, np.zeros(5))
    x = -0.01125 + 0.0415 + 0.162 + 0.0287 + 0.09193
    z = 0.034 + 0.0635 + 0.11315
    np.testing.assert_allclose(data.site_xpos[robot.ee_site_id], [x, -0.0016, z], atol=1e-9)


@pytest.mark.parametrize(
    "q",
    [
        [0.0, -1.57, 1.57, 1.57, 0.0],  # the maker's "home" group state (omx_f.srdf)
        [0.7, 0.4, 0.5, -0.6, 1.3],
        [-2.0, -1.2, 1.4, 2.2, -2.8],
    ],
)
def test_forward_kinematics_matches_urdf_chain(robot, q):
    data = mujoco.MjData(robot.model)
    set_arm(robot, data, np.array(q))
    mujoco.mj_kinematics(robot.model, data)
    pos, rot = parallel_chain_pose(np.zeros(3), CHAIN, q)
    ref = pos + rot @ TCP_IN_LINK5
    err = np.linalg.norm(data.site_xpos[robot.ee_site_id] - ref)
    assert err < 1e-3, f"ee {data.site_xpos[robot.ee_site_id]} vs URDF {ref} ({err * 1000:.2f} mm)"
    # The TCP frame is parallel to link5: a wrong wrist axis or sign shows in its orientation.
    angle = rotation_angle(data.site_xmat[robot.ee_site_id].reshape(3, 3), rot)
    assert angle < 1e-3, f"ee orientation off by {angle:.4f} rad"


def test_jaws_turn_opposite_ways(robot):
    """The geared jaw follows the motorized one mirrored (URDF mimic -1): opening moves both tips apart."""
    model, data = robot.model, data_at(robot)
    grip = model.actuator("gripper").id
    data.ctrl[grip] = 0.8
    for _ in range(round(1.0 / model.opt.timestep)):
        mujoco.mj_step(model, data)
    q = data.qpos[model.joint("gripper").qposadr[0]]
    mirror = data.qpos[model.joint("gripper_mirror").qposadr[0]]
    assert q > 0.6 and mirror == pytest.approx(-q, abs=1e-3)
    # jaw tips (capsule ends) move apart along the gripper's y axis
    rot = data.xmat[model.body("gripper").id].reshape(3, 3)
    tips = [rot.T @ (data.xpos[model.body(b).id] + data.xmat[model.body(b).id].reshape(3, 3) @ [0.062, 0, 0]) for b in ("jaw_motor", "jaw_gear")]
    assert tips[0][1] - tips[1][1] > 0.06
