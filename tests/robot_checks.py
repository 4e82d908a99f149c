"""Helpers shared by the robot-model tests (test_robot_models.py and the per-arm files)."""

from __future__ import annotations

import mujoco
import numpy as np

from simrl.robots import Robot


def set_arm(robot: Robot, data: mujoco.MjData, arm_q=None) -> None:
    """Home pose and home targets, the arm joints at ``arm_q`` (home if None), at rest."""
    data.qpos[:] = robot.home_qpos
    if arm_q is not None:
        data.qpos[robot.arm_qpos_adr] = arm_q
    data.qvel[:] = 0.0
    data.ctrl[:] = robot.home_ctrl


def data_at(robot: Robot, arm_q=None) -> mujoco.MjData:
    """Fresh MjData set by ``set_arm`` and run through mj_forward."""
    data = mujoco.MjData(robot.model)
    set_arm(robot, data, arm_q)
    mujoco.mj_forward(robot.model, data)
    return data


def rotation_angle(rot: np.ndarray, ref: np.ndarray) -> float:
    """Angle (rad) of the rotation between two 3x3 rotation matrices."""
    return float(np.arccos(np.clip((np.trace(rot.T @ ref) - 1) / 2, -1, 1)))


def solve_ik(robot: Robot, data: mujoco.MjData, goal, iterations: int = 200, damping: float = 0.02, max_step: float = 0.3) -> float:
    """Damped-least-squares position IK on the arm joints from home, inside the joint limits.

    Returns the remaining distance (m) from the ee site to ``goal``.
    """
    m = robot.model
    lo, hi = robot.arm_ranges.T
    q = robot.home_qpos.copy()
    jacp = np.zeros((3, m.nv))
    for _ in range(iterations):
        data.qpos[:] = q
        mujoco.mj_kinematics(m, data)
        mujoco.mj_comPos(m, data)
        err = goal - data.site_xpos[robot.ee_site_id]
        if np.linalg.norm(err) < 1e-4:
            break
        mujoco.mj_jacSite(m, data, jacp, None, robot.ee_site_id)
        jac = jacp[:, robot.arm_dof_adr]
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping**2 * np.eye(3), err)
        dq *= min(1.0, max_step / max(np.abs(dq).max(), 1e-12))  # at most max_step rad per iteration
        q[robot.arm_qpos_adr] = np.clip(q[robot.arm_qpos_adr] + dq, lo, hi)
    data.qpos[:] = q
    mujoco.mj_kinematics(m, data)
    return float(np.linalg.norm(goal - data.site_xpos[robot.ee_site_id]))


def axis_angle(axis, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix: ``angle`` (rad) about ``axis`` (normalised here)."""
    k = np.asarray(axis, dtype=float)
    k = k / np.linalg.norm(k)
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def parallel_chain_pose(origin, chain, q) -> tuple[np.ndarray, np.ndarray]:
    """World position and rotation of the last frame of a published serial chain, with plain numpy.

    ``chain`` lists (offset of the joint's frame in its parent's, joint axis in that frame) from base
    to tip, the layout of a URDF / MJCF whose frames are all parallel at zero; ``origin`` is the world
    position of the first parent frame (unrotated).
    """
    pos = np.asarray(origin, dtype=float)
    rot = np.eye(3)
    for (offset, axis), angle in zip(chain, q):
        pos = pos + rot @ np.asarray(offset, dtype=float)
        rot = rot @ axis_angle(axis, angle)
    return pos, rot
