"""The xp forward kinematics and Jacobian against MuJoCo's own, on every shipped arm."""

from __future__ import annotations

import jax.numpy as jnp
import mujoco
import numpy as np

from simrl.kinematics import KinematicChain, ee_jacobian, ee_position
from simrl.robots import Robot


def _chain(robot: Robot) -> KinematicChain:
    return KinematicChain.from_model(robot.model, robot.ee_site_id, robot.arm_joint_ids)


def test_fk_and_jacobian_match_mujoco(robot: Robot) -> None:
    chain = _chain(robot)
    model, data = robot.model, mujoco.MjData(robot.model)
    lo, hi = robot.arm_ranges.T
    rng = np.random.default_rng(1)
    for q in rng.uniform(lo, hi, size=(20, robot.n_arm)):
        data.qpos[:] = robot.home_qpos
        data.qpos[robot.arm_qpos_adr] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        jac = np.zeros((3, model.nv))
        mujoco.mj_jacSite(model, data, jac, None, robot.ee_site_id)
        ee, our_jac = ee_jacobian(np, chain, q)
        np.testing.assert_allclose(ee, data.site_xpos[robot.ee_site_id], atol=1e-12)
        np.testing.assert_allclose(our_jac, jac[:, robot.arm_dof_adr], atol=1e-12)


def test_jax_and_numpy_paths_agree_batched(robot: Robot) -> None:
    chain = _chain(robot)
    lo, hi = robot.arm_ranges.T
    q = np.random.default_rng(2).uniform(lo, hi, size=(64, robot.n_arm))
    np.testing.assert_allclose(np.asarray(ee_position(jnp, chain, jnp.asarray(q, jnp.float32))), ee_position(np, chain, q), atol=1e-5)
