"""What every shipped arm must satisfy, checked on each (the session fixture ``robot``):
it loads as a set of position servos, stands still at home, each joint's servo reaches a
step target, its goal box is reachable by IK, and its servos are inside explicit Euler's
stability limits at its timestep.

Arm-specific checks (forward kinematics against the published kinematics, published
masses and limits, poses particular to one arm) live in test_robot_<name>.py. MJX vs
MuJoCo C parity for every arm is tests/test_physics.py::test_cpu_and_mjx_agree_after_50_control_steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
import pytest

from simrl.robots import Robot
from tests.robot_checks import data_at, set_arm, solve_ik


@dataclass(frozen=True)
class Arm:
    """Per-arm facts, and the bounds that differ between arms for a physical reason."""

    n_arm: int
    dims: tuple[int, int, int]  # nq, nv, nu
    timestep: float  # s; substeps * timestep is the 20 ms control period
    substeps: int
    still_qvel: float  # rad/s: largest |qvel| allowed in the last second of holding home
    servo_offset: float  # rad (m for a sliding finger): how far a joint may sit from its servo target at rest
    euler_wdt: float  # largest omega * dt of the servos allowed
    wdt_gripper: bool  # whether the gripper servos are in the omega * dt check (else the arm's only)
    loaded_joint: str | None  # a servo that must visibly carry the arm's weight at home


ARMS = {
    "so101": Arm(
        n_arm=5, dims=(6, 6, 6), timestep=0.005, substeps=4,
        still_qvel=1e-4,  # friction loss stops the STS3215 servos dead: measured ~1e-10 rad/s
        servo_offset=5e-3,  # gravity / kp on kp 998: measured 4e-4 rad
        euler_wdt=1.0,  # kp 998 on the ~0.03 kg m^2 armature at 5 ms, in any pose: 0.94; semi-implicit Euler is stable to 2
        wdt_gripper=True,
        loaded_joint="shoulder_lift",  # measured ~0.25 N m
    ),
    "openarm": Arm(
        n_arm=7, dims=(9, 9, 8), timestep=0.0025, substeps=8,
        still_qvel=1e-3,  # soft servos (kp 190-230) still settle into their gravity sag: joint4 ~7e-5 rad/s at 2-3 s
        servo_offset=0.04,  # no integral action: joint1 carries 6-7.5 N m on kp 230, 0.027-0.034 rad of sag
        euler_wdt=0.5,
        wdt_gripper=True,
        loaded_joint="joint1",  # measured ~6 N m
    ),
    "fr3": Arm(
        n_arm=7, dims=(9, 9, 8), timestep=0.002, substeps=10,
        still_qvel=1e-4,  # friction and the gravity-compensating controller hold it: measured ~1e-9
        servo_offset=5e-3,  # the controller compensates gravity (gravcomp): measured < 1e-4 rad
        euler_wdt=0.5,
        wdt_gripper=False,  # finger: kp 1000 on ~0.015 kg reads 0.52 against M alone, but its damping 100 (implicit) overdamps it
        loaded_joint=None,  # gravity compensated: the servos carry (almost) nothing at rest
    ),
    "omx": Arm(
        n_arm=5, dims=(7, 7, 6), timestep=0.005, substeps=4,
        still_qvel=1e-4,  # the servos' gear friction holds them (hard friction constraint): measured ~4e-6 rad/s
        servo_offset=0.08,  # P-only servos at factory gains: the XL330 wrist (kp 0.5985) sags 0.046 rad at home, 0.050 after a step
        euler_wdt=0.5,  # measured 0.25 (elbow, kp 12.95 on the 0.0047 kg m^2 XL430 armature)
        wdt_gripper=True,
        loaded_joint="elbow_flex",  # measured ~0.28 N m
    ),
}

STEP = 0.3  # rad (at most half a gripper's range): the commanded servo step
STEP_DEADLINE = 0.5  # s: the joint must come within servo_offset of its target by then
STEP_SETTLE = 1.5  # s: ... and still be there, at rest, at this time


@pytest.fixture(scope="module")
def arm(robot: Robot) -> Arm:
    return ARMS[robot.name]


def _actuated_qpos_adr(robot: Robot) -> np.ndarray:
    """qpos addresses of the arm joints and the actuated gripper joints."""
    grip = [robot.model.joint(j).qposadr[0] for j in robot.config.gripper_joints]
    return np.concatenate([robot.arm_qpos_adr, np.array(grip, dtype=int)])


# --------------------------------------------------------------------------- load


def test_loads_as_position_servos(robot: Robot, arm: Arm) -> None:
    m = robot.model
    assert robot.n_arm == arm.n_arm
    assert (m.nq, m.nv, m.nu) == arm.dims
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert m.opt.timestep == pytest.approx(arm.timestep)
    assert robot.substeps == arm.substeps
    assert robot.substeps * m.opt.timestep == pytest.approx(0.02)  # 50 Hz control
    assert m.nu == robot.n_arm + len(robot.config.gripper_joints)
    for i in range(m.nu):
        name = m.actuator(i).name
        # one position servo per joint, named like it, ctrlrange = joint range, force-limited
        assert m.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT
        joint = m.joint(m.actuator_trnid[i, 0])
        assert joint.name == name
        np.testing.assert_allclose(m.actuator_ctrlrange[i], joint.range, atol=1e-6)
        assert m.actuator_ctrllimited[i] and m.actuator_forcelimited[i]
        assert m.actuator_gaintype[i] == mujoco.mjtGain.mjGAIN_FIXED
        assert m.actuator_biastype[i] == mujoco.mjtBias.mjBIAS_AFFINE
        kp = m.actuator_gainprm[i, 0]
        assert kp > 0 and m.actuator_biasprm[i, 0] == 0 and m.actuator_biasprm[i, 1] == -kp
        # one actuatorfrc sensor on it, named like it
        sensor = m.sensor(name)
        assert sensor.type[0] == mujoco.mjtSensor.mjSENS_ACTUATORFRC and sensor.objid[0] == i
    np.testing.assert_allclose(robot.ctrl_ranges[robot.arm_actuators], robot.arm_ranges)


# ------------------------------------------------------------------- holds home


def test_stands_still_at_home(robot: Robot, arm: Arm) -> None:
    m = robot.model
    data = data_at(robot)
    assert data.ncon == 0, "contacts at the home pose"

    steps = round(3.0 / m.opt.timestep)
    last_second = steps - round(1.0 / m.opt.timestep)
    peak_vel, max_ncon, q_at_2s = 0.0, 0, None
    for i in range(steps):
        if i == last_second:
            q_at_2s = data.qpos.copy()
        mujoco.mj_step(m, data)
        max_ncon = max(max_ncon, data.ncon)
        if i >= last_second:
            peak_vel = max(peak_vel, float(np.abs(data.qvel).max()))

    assert np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
    assert max_ncon == 0, "contacts while holding home"
    assert peak_vel < arm.still_qvel, f"|qvel| up to {peak_vel:.2e} rad/s in the last second"
    drift = np.abs(data.qpos - q_at_2s).max()
    assert drift < 1e-3, f"qpos still moved {drift:.2e} in the last second"
    # Position servos without integral action sag by gravity / kp; a drifting model fails this.
    actuated = _actuated_qpos_adr(robot)
    sag = np.abs(data.qpos[actuated] - robot.home_qpos[actuated]).max()
    assert sag < arm.servo_offset, f"sagged {sag:.4f} rad from home"
    # The servos hold the arm within their torque limits, and the sensors read their force.
    np.testing.assert_allclose(data.sensordata, data.actuator_force)
    lo, hi = m.actuator_forcerange.T
    assert ((lo < data.actuator_force) & (data.actuator_force < hi)).all(), "a servo is saturated at home"
    if arm.loaded_joint is not None:
        assert abs(data.actuator_force[m.actuator(arm.loaded_joint).id]) > 0.05, "gravity does not load the arm"


# --------------------------------------------------------------------- servos


def test_each_servo_reaches_a_step_target(robot: Robot, arm: Arm) -> None:
    """Step one joint's target at a time (every arm and gripper joint); the others keep theirs."""
    m = robot.model
    kp = m.actuator_gainprm[robot.arm_actuators, 0]
    # Friction holds a joint still anywhere within frictionloss / kp of that equilibrium.
    stiction = m.dof_frictionloss[robot.arm_dof_adr] / kp
    failures = []
    for act in np.concatenate([robot.arm_actuators, robot.gripper_actuators]):
        jnt = m.joint(m.actuator_trnid[act, 0])
        adr, lo, hi = jnt.qposadr[0], *jnt.range
        data = data_at(robot)
        size = min(STEP, 0.5 * (hi - lo))
        target = robot.home_qpos[adr] + (size if robot.home_qpos[adr] + size <= hi else -size)
        assert lo <= target <= hi
        data.ctrl[act] = target

        reached_at, max_ncon = None, 0
        for i in range(round(STEP_SETTLE / m.opt.timestep)):
            mujoco.mj_step(m, data)
            max_ncon = max(max_ncon, data.ncon)
            if reached_at is None and abs(data.qpos[adr] - target) < arm.servo_offset:
                reached_at = (i + 1) * m.opt.timestep
        q = data.qpos[robot.arm_qpos_adr]
        mujoco.mj_forward(m, data)
        # At rest a position servo settles where kp * (target - q) carries the gravity the
        # controller does not compensate, give or take its friction band (~1 mrad on the stiff
        # servos, up to 21 mrad on the omx's XL330s).
        gravity = (data.qfrc_bias - data.qfrc_gravcomp)[robot.arm_dof_adr]
        off_equilibrium = (np.abs(q - (data.ctrl[robot.arm_actuators] - gravity / kp)) - stiction).max()
        others = np.array([a for a in robot.arm_qpos_adr if a != adr])
        dragged = np.abs(data.qpos[others] - robot.home_qpos[others]).max()

        problems = []
        if reached_at is None or reached_at >= STEP_DEADLINE:
            problems.append(f"not within {arm.servo_offset} rad of its target by {STEP_DEADLINE} s (at {reached_at})")
        if abs(data.qpos[adr] - target) >= arm.servo_offset:
            problems.append(f"ends at {data.qpos[adr]:.4f} for target {target:.4f}")
        if abs(data.qvel[jnt.dofadr[0]]) >= 2e-3:
            problems.append(f"still moving at {data.qvel[jnt.dofadr[0]]:.2e}")
        if dragged >= arm.servo_offset:
            problems.append(f"dragged the other arm joints off home by {dragged:.4f} rad")
        if off_equilibrium >= 0.004:
            problems.append(f"arm joints {off_equilibrium:.4f} rad outside their servo equilibrium's friction band")
        if max_ncon:
            problems.append("made contact")
        failures += [f"{jnt.name}: {p}" for p in problems]
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------ workspace


def test_goal_workspace_is_reachable(robot: Robot) -> None:
    box = robot.config.goal_workspace
    low, high = np.array(box.low), np.array(box.high)
    size = high - low
    # a real volume in front of the robot, above the table, that the arm sweeps with room to spare
    assert (size >= 0.15).all() and (size <= robot.reach / 2).all(), (size, robot.reach)
    assert low[0] > 0.1 and low[2] > 0.0

    data = mujoco.MjData(robot.model)
    goals = np.random.default_rng(0).uniform(low, high, size=(300, 3))
    errors = np.array([solve_ik(robot, data, g) for g in goals])
    reached = errors < 5e-3
    assert reached.mean() >= 0.99, f"{(~reached).sum()} of 300 goals missed by > 5 mm, e.g. {goals[~reached][:3]}"


# ---------------------------------------------------------------- integration


def test_explicit_euler_is_stable(robot: Robot, arm: Arm) -> None:
    """Euler integrates joint damping implicitly but the servos' kp and kv explicitly: check
    both against the mass matrix (armature included) over sampled configurations. omega is
    taken against M alone, which overestimates it; the velocity update divides every force
    by M + dt * damping, so that is the inertia kv is compared to."""
    m = robot.model
    data = mujoco.MjData(m)
    h = m.opt.timestep
    act = np.concatenate([robot.arm_actuators, robot.gripper_actuators])
    dofs = m.jnt_dofadr[m.actuator_trnid[act, 0]]
    kp = np.diag(m.actuator_gainprm[act, 0])
    kv = np.diag(-m.actuator_biasprm[act, 2])
    damping = np.diag(m.dof_damping[dofs])
    w_servos = slice(None) if arm.wdt_gripper else slice(0, robot.n_arm)
    lo, hi = robot.arm_ranges.T
    full = np.zeros((m.nv, m.nv))
    worst_w, worst_d = 0.0, 0.0
    for q in np.random.default_rng(1).uniform(lo, hi, size=(300, robot.n_arm)):
        set_arm(robot, data, q)
        mujoco.mj_forward(m, data)
        mujoco.mj_fullM(m, data, full)
        inertia = full[np.ix_(dofs, dofs)]
        omega2 = np.linalg.solve(inertia[w_servos, w_servos], kp[w_servos, w_servos])
        worst_w = max(worst_w, h * np.sqrt(np.linalg.eigvals(omega2).real.max()))
        worst_d = max(worst_d, np.linalg.eigvals(h * np.linalg.solve(inertia + h * damping, kv)).real.max())
    assert worst_w < arm.euler_wdt, f"omega*dt reaches {worst_w:.2f}"
    assert worst_d < 0.5, f"dt*kv/(M + dt*damping) reaches {worst_d:.2f}"
