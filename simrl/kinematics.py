"""Forward kinematics and the end-effector Jacobian, written once for numpy and jax.numpy.

Why not ask MuJoCo? Two reasons. ``mujoco.rollout`` returns states, not
positions, and its sensor data lags one physics step (see MEASURED.md), so the
training env computes the end effector from the returned joint positions. And
the robot-side computer must build the same observation without JAX: every
function here takes the array module as ``xp`` so training (``jax.numpy``) and
deployment (``numpy``) run the same lines.

The chain is read from the compiled MjModel (body offsets, joint anchors and
axes), so it matches MuJoCo's own ``mj_kinematics`` by construction; tests check
it to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from simrl.errors import SimrlError


def _quat_to_mat(quat: np.ndarray) -> np.ndarray:
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    return mat.reshape(3, 3)


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


@dataclass(frozen=True)
class KinematicChain:
    """The bodies from the world to the end-effector site, as constant arrays.

    Each chain body has at most one hinge joint, and that joint is one of the
    arm joints (index ``joint_index`` into the arm joint vector, or -1).
    """

    body_pos: np.ndarray  # (B, 3) body offset in its parent
    body_rot: np.ndarray  # (B, 3, 3) body orientation in its parent
    joint_index: tuple[int, ...]  # (B,) arm-joint index of the body's hinge, -1 if welded
    joint_pos: np.ndarray  # (B, 3) joint anchor in the body frame
    joint_axis: np.ndarray  # (B, 3) joint axis in the body frame (zero if welded)
    joint_skew: np.ndarray  # (B, 3, 3) skew matrix of that axis
    site_pos: np.ndarray  # (3,) ee site in the last body's frame

    @classmethod
    def from_model(cls, model: mujoco.MjModel, site_id: int, arm_joint_ids: list[int]) -> "KinematicChain":
        """Walk from the site's body up to the world and record the chain."""
        if not 0 <= site_id < model.nsite:
            raise SimrlError(f"site id {site_id} is not in the model (it has {model.nsite} sites)")
        bodies = []
        body = int(model.site_bodyid[site_id])
        while body != 0:
            bodies.append(body)
            body = int(model.body_parentid[body])
        bodies.reverse()

        joint_index, joint_pos, joint_axis = [], [], []
        for b in bodies:
            n_joints = int(model.body_jntnum[b])
            if n_joints == 0:
                joint_index.append(-1)
                joint_pos.append(np.zeros(3))
                joint_axis.append(np.zeros(3))
                continue
            jnt = int(model.body_jntadr[b])
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, jnt)
            if n_joints > 1 or model.jnt_type[jnt] != mujoco.mjtJoint.mjJNT_HINGE or jnt not in arm_joint_ids:
                raise SimrlError(
                    f"the chain to the end effector may hold only one arm hinge per body; body "
                    f"'{mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b)}' has joint '{name}'"
                )
            joint_index.append(arm_joint_ids.index(jnt))
            joint_pos.append(model.jnt_pos[jnt].copy())
            joint_axis.append(model.jnt_axis[jnt].copy())
        missing = set(range(len(arm_joint_ids))) - set(joint_index)
        if missing:
            raise SimrlError(f"arm joints {sorted(missing)} are not on the chain from the base to the end-effector site")
        return cls(
            body_pos=model.body_pos[bodies].copy(),
            body_rot=np.stack([_quat_to_mat(model.body_quat[b]) for b in bodies]),
            joint_index=tuple(joint_index),
            joint_pos=np.stack(joint_pos),
            joint_axis=np.stack(joint_axis),
            joint_skew=np.stack([_skew(axis) for axis in joint_axis]),
            site_pos=model.site_pos[site_id].copy(),
        )


def _frames(xp: Any, chain: KinematicChain, q: Any) -> tuple[Any, list[Any], list[Any]]:
    """World pose of the site, plus each arm joint's world anchor and axis.

    Shapes: ``q`` (..., n_arm) -> ee (..., 3), anchors and axes: lists of (..., 3)
    ordered by arm-joint index.
    """
    batch = q.shape[:-1]
    eye = xp.eye(3, dtype=q.dtype)
    rot = xp.broadcast_to(eye, batch + (3, 3))
    pos = xp.zeros(batch + (3,), dtype=q.dtype)
    n_arm = q.shape[-1]
    anchors: list[Any] = [None] * n_arm
    axes: list[Any] = [None] * n_arm
    for b, j in enumerate(chain.joint_index):
        pos = pos + rot @ xp.asarray(chain.body_pos[b], dtype=q.dtype)
        rot = rot @ xp.asarray(chain.body_rot[b], dtype=q.dtype)
        if j < 0:
            continue
        jpos = xp.asarray(chain.joint_pos[b], dtype=q.dtype)
        skew = xp.asarray(chain.joint_skew[b], dtype=q.dtype)
        anchor = pos + rot @ jpos
        # Rodrigues: rotation by q about the joint axis, in the body frame.
        angle = q[..., j][..., None, None]
        rot = rot @ (eye + xp.sin(angle) * skew + (1.0 - xp.cos(angle)) * (skew @ skew))
        pos = anchor - rot @ jpos
        anchors[j] = anchor
        axes[j] = rot @ xp.asarray(chain.joint_axis[b], dtype=q.dtype)
    ee = pos + rot @ xp.asarray(chain.site_pos, dtype=q.dtype)
    return ee, anchors, axes


def ee_position(xp: Any, chain: KinematicChain, q: Any) -> Any:
    """End-effector position (..., 3) for arm joint positions ``q`` (..., n_arm)."""
    ee, _, _ = _frames(xp, chain, q)
    return ee


def ee_jacobian(xp: Any, chain: KinematicChain, q: Any) -> tuple[Any, Any]:
    """End-effector position (..., 3) and its Jacobian (..., 3, n_arm) w.r.t. ``q``.

    For a hinge, the column is ``axis x (ee - anchor)`` in world coordinates.
    """
    ee, anchors, axes = _frames(xp, chain, q)
    columns = [xp.cross(axes[j], ee - anchors[j]) for j in range(q.shape[-1])]
    return ee, xp.stack(columns, axis=-1)
