"""The training model, rebuilt so that logged motor commands can drive it through ``ctrl``.

An impedance motor (Damiao) runs the MIT law ``tau = kp (q* - q) + kd (dq* - dq)``
with kp and kd sent in every command, clamped to its torque limit. A position
servo (Feetech, Dynamixel: control law ``servo`` in the log) runs the same law
with gains of its own, which the log does not carry (it records kp = kd = 0):
in the replay they are the training model's actuator kp and kv, the servo the
policy trained with, so a fitted gain scale is the servo loop's effective gain
against the model's. ``mujoco.rollout`` (and so
``mujoco.sysid``) can only drive a model through ``ctrl``, and gains that change
per tick are a product of a control and the state. Three actuators per motor
joint write it as a sum of terms that are each linear in one control:

- ``<joint>`` (the MJCF servo, kept so its sensors still compile): fixed gain
  ``s_kp``, control ``kp * q* + kd * dq*``;
- ``<joint>_stiffness``: affine gain ``-s_kp * q`` (length), control ``kp``;
- ``<joint>_damping``: affine gain ``-s_kv * dq`` (velocity), control ``kd``.

``s_kp`` and ``s_kv`` are the arm's gain errors (1 on the nominal model). The
torque limit moves to the joint (``actfrcrange``), which clamps the sum as the
motor clamps its law. Everything else is the MJCF exactly as training compiles
it: timestep, integrator, solver options, contacts. With the reality's values
written in, a replay reproduces the emulated arm to rounding
(``tests/test_gap_replay.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np

from simrl.deploy.buses.settings import IMPEDANCE, SERVO
from simrl.deploy.emulation.emulated_arm import motor_torque_limits
from simrl.errors import SimrlError
from simrl.robots import Robot

STIFFNESS, DAMPING = "_stiffness", "_damping"


@dataclass(frozen=True)
class ReplayModel:
    """The rebuilt model and where each motor's terms live in it (arrays in motor order)."""

    robot: Robot
    model: mujoco.MjModel
    joints: tuple[str, ...]  # motor joints, in the log's order
    target_act: np.ndarray  # actuator ids of the ``kp q* + kd dq*`` terms
    stiffness_act: np.ndarray
    damping_act: np.ndarray
    qpos_adr: np.ndarray
    dof_adr: np.ndarray
    joint_ids: np.ndarray
    rated_torque: np.ndarray
    servo: np.ndarray  # bool: the motor closes its own loop (control law ``servo``), at the model's gains
    model_kp: np.ndarray  # the MJCF actuator's kp (N·m/rad) and kv (N·m·s/rad) per motor: a servo's gains in force
    model_kv: np.ndarray

    @property
    def nominal_ctrl(self) -> np.ndarray:
        """The ctrl of actuators no motor drives (holding home), into which motor terms are written."""
        ctrl = np.zeros(self.model.nu)
        nominal = self.robot.home_ctrl
        other = np.setdiff1d(np.arange(len(nominal)), self.target_act)
        ctrl[other] = nominal[other]
        return ctrl

    def gains(self, kp: np.ndarray, kd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gains in force for logged command gains (T, n_motors): an impedance motor's as commanded, a servo's
        its own loop's, which are the model's actuator kp and kv (the log's 0, 0 say only that none were sent)."""
        return np.where(self.servo, self.model_kp, kp), np.where(self.servo, self.model_kv, kd)

    def controls(self, position: np.ndarray, kp: np.ndarray, kd: np.ndarray) -> np.ndarray:
        """(T, nu) controls for commands (T, n_motors): the three terms of each motor (dq* = 0), at the gains in force."""
        kp, kd = self.gains(kp, kd)
        ctrl = np.tile(self.nominal_ctrl, (len(position), 1))
        ctrl[:, self.target_act] = kp * position
        ctrl[:, self.stiffness_act] = kp
        ctrl[:, self.damping_act] = kd
        return ctrl

    def initial_state(self, position: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """The full physics state with the motor joints at ``position``/``velocity`` (n_motors,), others at home.

        Joints no encoder reads but an equality ties to one (OpenArm's mirrored
        finger) follow it, so the replay does not start against a constraint.
        """
        data = mujoco.MjData(self.model)
        data.qpos[:] = self.robot.home_qpos
        data.qpos[self.qpos_adr] = position
        data.qvel[self.dof_adr] = velocity
        _follow_joint_equalities(self.model, data)
        mujoco.mj_forward(self.model, data)
        kind = mujoco.mjtState.mjSTATE_FULLPHYSICS
        state = np.empty(mujoco.mj_stateSize(self.model, kind))
        mujoco.mj_getState(self.model, data, state, kind)
        return state

    def with_values(self, values: "MotorValues") -> mujoco.MjModel:
        """A copy of the model with per-motor dynamics written in (the arm as ``values`` says it is)."""
        model = copy.deepcopy(self.model)
        values.write(self, model)
        return model


@dataclass(frozen=True)
class MotorValues:
    """Per-motor dynamics (arrays in motor order): joint damping, friction, armature, gain scales, torque limit."""

    damping: np.ndarray  # N·m·s/rad
    frictionloss: np.ndarray  # N·m
    armature: np.ndarray  # kg·m²
    kp_scale: np.ndarray  # applied / commanded kp (a servo: its loop's effective kp / the model's)
    kv_scale: np.ndarray  # applied / commanded kd (a servo: its loop's effective kv / the model's)
    torque_limit: np.ndarray  # N·m

    @classmethod
    def nominal(cls, replay: ReplayModel) -> "MotorValues":
        model, dofs, n = replay.model, replay.dof_adr, len(replay.joints)
        return cls(
            damping=model.dof_damping[dofs].copy(),
            frictionloss=model.dof_frictionloss[dofs].copy(),
            armature=model.dof_armature[dofs].copy(),
            kp_scale=np.ones(n),
            kv_scale=np.ones(n),
            torque_limit=replay.rated_torque.copy(),
        )

    def with_motors(self, other: "MotorValues", motors: Sequence[int], keep: bool = False) -> "MotorValues":
        """These values with ``motors`` taken from ``other`` (``keep``: ``motors`` from these, the rest from ``other``)."""
        chosen = np.zeros(len(self.damping), bool)
        chosen[list(motors)] = True
        take = ~chosen if keep else chosen
        fields = {name: np.where(take, getattr(other, name), getattr(self, name)) for name in self.__dataclass_fields__}
        return MotorValues(**fields)

    def write(self, replay: ReplayModel, model: mujoco.MjModel) -> None:
        dofs = replay.dof_adr
        model.dof_damping[dofs] = self.damping
        model.dof_frictionloss[dofs] = self.frictionloss
        model.dof_armature[dofs] = self.armature
        model.actuator_gainprm[replay.target_act, 0] = self.kp_scale
        model.actuator_gainprm[replay.stiffness_act, 1] = -self.kp_scale
        model.actuator_gainprm[replay.damping_act, 2] = -self.kv_scale
        model.jnt_actfrcrange[replay.joint_ids] = np.stack([-self.torque_limit, self.torque_limit], axis=-1)


def _follow_joint_equalities(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Set each joint-equality's first joint (position and velocity) from its second (``q1 = poly(q2)``), as the constraint wants."""
    for eq in range(model.neq):
        if model.eq_type[eq] != mujoco.mjtEq.mjEQ_JOINT or model.eq_obj2id[eq] < 0:
            continue
        q1, q2 = model.jnt_qposadr[model.eq_obj1id[eq]], model.jnt_qposadr[model.eq_obj2id[eq]]
        c = model.eq_data[eq, :5]
        v1, v2 = model.jnt_dofadr[model.eq_obj1id[eq]], model.jnt_dofadr[model.eq_obj2id[eq]]
        x = data.qpos[q2] - model.qpos0[q2]
        data.qpos[q1] = model.qpos0[q1] + c[0] + c[1] * x + c[2] * x**2 + c[3] * x**3 + c[4] * x**4
        data.qvel[v1] = (c[1] + 2 * c[2] * x + 3 * c[3] * x**2 + 4 * c[4] * x**3) * data.qvel[v2]


def build_replay_model(robot: Robot, joints: Sequence[str], laws: Sequence[str] | None = None) -> ReplayModel:
    """The robot's MJCF as training compiles it, with every motor joint in ``joints`` driven by the MIT law.

    ``laws``: each motor's control law (``IMPEDANCE`` or ``SERVO``, as the log
    says); default: every motor an impedance motor.
    """
    laws = [IMPEDANCE] * len(joints) if laws is None else list(laws)
    if len(laws) != len(joints) or any(law not in (IMPEDANCE, SERVO) for law in laws):
        raise ValueError(f"control laws {laws} for motors {list(joints)}: one of {IMPEDANCE}, {SERVO} per motor")
    actuated = list(robot.config.arm_joints) + list(robot.config.gripper_joints)
    unknown = [j for j in joints if j not in actuated]
    if unknown:
        raise SimrlError(f"motor joints {', '.join(unknown)} are not actuated joints of {robot.name}; valid: {', '.join(actuated)}")
    spec = mujoco.MjSpec.from_file(str(robot.directory / robot.config.mjcf))
    servos = {a.target: a for a in spec.actuators if a.trntype == mujoco.mjtTrn.mjTRN_JOINT}
    rated = np.array(motor_torque_limits(robot, list(joints)))
    for joint, limit in zip(joints, rated):
        spec.joint(joint).actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
        spec.joint(joint).actfrcrange = [-limit, limit]
        target = servos[joint]
        _set_law(target, mujoco.mjtGain.mjGAIN_FIXED, 0, 1.0)
        for suffix, column in ((STIFFNESS, 1), (DAMPING, 2)):
            term = spec.add_actuator(name=f"{joint}{suffix}", target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            _set_law(term, mujoco.mjtGain.mjGAIN_AFFINE, column, -1.0)
    model = spec.compile()
    actuator = lambda name: model.actuator(name).id  # noqa: E731
    target_act = np.array([actuator(servos[j].name) for j in joints])  # the MJCF servo's id, as in the robot's model
    return ReplayModel(
        robot=robot,
        model=model,
        joints=tuple(joints),
        target_act=target_act,
        stiffness_act=np.array([actuator(f"{j}{STIFFNESS}") for j in joints]),
        damping_act=np.array([actuator(f"{j}{DAMPING}") for j in joints]),
        qpos_adr=np.array([model.joint(j).qposadr[0] for j in joints]),
        dof_adr=np.array([model.joint(j).dofadr[0] for j in joints]),
        joint_ids=np.array([model.joint(j).id for j in joints]),
        rated_torque=rated,
        servo=np.array([law == SERVO for law in laws]),
        model_kp=robot.model.actuator_gainprm[target_act, 0].copy(),
        model_kv=-robot.model.actuator_biasprm[target_act, 2],
    )


def _set_law(actuator: mujoco.MjsActuator, gain: mujoco.mjtGain, column: int, value: float) -> None:
    """One linear term: force = gainprm[column] * (1, length or velocity) * ctrl, no bias, no clamps of its own."""
    actuator.gaintype = gain
    actuator.biastype = mujoco.mjtBias.mjBIAS_NONE
    prm = np.zeros(len(actuator.gainprm))
    prm[column] = value
    actuator.gainprm = prm
    actuator.biasprm = np.zeros(len(actuator.biasprm))
    actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
    actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_FALSE
