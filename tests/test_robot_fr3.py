"""The Franka FR3 model (robots/fr3): loads, holds home, matches Franka's DH kinematics,
tracks joint targets, reaches its goal box, stays stable at its timestep, and steps the same
in MJX as in MuJoCo C."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from simrl.robots import load_robot

# Franka's DH parameters (Craig / modified convention), from "Robot and interface
# specifications" (https://frankaemika.github.io/docs/control_parameters.html), and the
# Franka Hand's TCP: rotated -45 deg about the flange z axis, 0.1034 m along it.
DH_A = [0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088]
DH_D = [0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0]
DH_ALPHA = [0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2]
FLANGE_D = 0.107
HAND_YAW = -np.pi / 4
TCP_Z = 0.1034


@pytest.fixture(scope="module")
def robot():
    return load_robot("fr3")


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


def _set_arm(robot, data, q) -> None:
    data.qpos[:] = robot.home_qpos
    data.qpos[robot.arm_qpos_adr] = q
    data.qvel[:] = 0.0
    data.ctrl[:] = robot.home_ctrl


def test_loads(robot):
    assert robot.name == "fr3"
    assert robot.n_arm == 7
    assert robot.model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert robot.substeps == 10
    model = robot.model
    for i in range(model.nu):  # one actuatorfrc sensor per actuator, named like it
        assert model.sensor(model.actuator(i).name).type[0] == mujoco.mjtSensor.mjSENS_ACTUATORFRC
    # ctrlrange is the joint range for every arm actuator.
    np.testing.assert_allclose(robot.ctrl_ranges[robot.arm_actuators], robot.arm_ranges)


def test_stands_still_at_home(robot):
    model, data = robot.model, mujoco.MjData(robot.model)
    _set_arm(robot, data, robot.home_qpos[robot.arm_qpos_adr])
    mujoco.mj_forward(model, data)
    assert data.ncon == 0, "contacts at home"
    steps = int(round(3.0 / model.opt.timestep))
    last_second = int(round(1.0 / model.opt.timestep))
    peak_vel = 0.0
    for i in range(steps):
        mujoco.mj_step(model, data)
        if i >= steps - last_second:
            peak_vel = max(peak_vel, float(np.abs(data.qvel).max()))
    assert np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))
    assert peak_vel < 1e-3, f"|qvel| up to {peak_vel:.2e} rad/s in the last second"
    drift = np.abs(data.qpos[robot.arm_qpos_adr] - robot.home_qpos[robot.arm_qpos_adr]).max()
    assert drift < 0.01, f"arm drifted {drift:.4f} rad from home"
    assert data.ncon == 0


@pytest.mark.parametrize(
    "q",
    [
        [0.0, 0.0, 0.0, -1.5708, 0.0, 1.5708, -0.7853],
        [0.6, -0.5, 0.4, -2.1, 0.7, 2.3, 0.5],
        [-1.2, 0.8, -0.6, -1.0, -1.4, 1.1, 2.0],
    ],
)
def test_forward_kinematics_matches_dh(robot, q):
    model, data = robot.model, mujoco.MjData(robot.model)
    _set_arm(robot, data, np.array(q))
    mujoco.mj_kinematics(model, data)
    ref = dh_tcp(np.array(q))
    err = np.linalg.norm(data.site_xpos[robot.ee_site_id] - ref[:3, 3])
    assert err < 0.01, f"ee {data.site_xpos[robot.ee_site_id]} vs DH {ref[:3, 3]} ({err * 1000:.1f} mm)"
    # The orientation follows from the same table; a wrong hand yaw or joint sign shows here.
    rot = data.site_xmat[robot.ee_site_id].reshape(3, 3)
    angle = np.arccos(np.clip((np.trace(rot.T @ ref[:3, :3]) - 1) / 2, -1, 1))
    assert angle < 0.01, f"ee orientation off by {angle:.3f} rad"


@pytest.mark.parametrize("joint", range(7))
def test_actuator_reaches_target(robot, joint):
    model, data = robot.model, mujoco.MjData(robot.model)
    home = robot.home_qpos[robot.arm_qpos_adr]
    _set_arm(robot, data, home)
    lo, hi = robot.arm_ranges[joint]
    step = 0.3 if home[joint] + 0.3 < hi else -0.3
    target = home[joint] + step
    assert lo < target < hi
    data.ctrl[robot.arm_actuators[joint]] = target
    for _ in range(int(round(1.5 / model.opt.timestep))):
        mujoco.mj_step(model, data)
    q = data.qpos[robot.arm_qpos_adr]
    assert abs(q[joint] - target) < 0.005, f"joint {joint + 1}: {q[joint]:.4f} vs target {target:.4f}"
    assert abs(data.qvel[robot.arm_dof_adr[joint]]) < 0.01
    others = np.delete(q - home, joint)
    assert np.abs(others).max() < 0.01, "other joints were dragged off their targets"


def _ik_position(robot, data, goal, iters=300, damping=0.05):
    """Damped least squares on the ee site position, from home, clipped to the joint limits."""
    model = robot.model
    lo, hi = robot.arm_ranges.T
    q = robot.home_qpos[robot.arm_qpos_adr].copy()
    jacp = np.zeros((3, model.nv))
    err = np.inf
    for _ in range(iters):
        data.qpos[robot.arm_qpos_adr] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        delta = goal - data.site_xpos[robot.ee_site_id]
        err = float(np.linalg.norm(delta))
        if err < 1e-4:
            break
        mujoco.mj_jacSite(model, data, jacp, None, robot.ee_site_id)
        jac = jacp[:, robot.arm_dof_adr]
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping**2 * np.eye(3), delta)
        scale = max(1.0, np.abs(dq).max() / 0.2)  # at most 0.2 rad per iteration
        q = np.clip(q + dq / scale, lo, hi)
    return err


def test_goal_workspace_reachable(robot):
    data = mujoco.MjData(robot.model)
    data.qpos[:] = robot.home_qpos
    box = robot.config.goal_workspace
    goals = np.random.default_rng(0).uniform(box.low, box.high, size=(300, 3))
    errors = np.array([_ik_position(robot, data, g) for g in goals])
    reached = np.mean(errors < 0.005)
    assert reached >= 0.99, f"only {reached:.1%} of goals reached within 5 mm (worst {errors.max() * 1000:.1f} mm)"


def test_explicit_euler_is_stable(robot):
    """Euler treats joint damping implicitly, but actuator kv and kp explicitly: check the
    explicit parts against the full mass matrix over sampled configurations."""
    model, data = robot.model, mujoco.MjData(robot.model)
    h = model.opt.timestep
    kp = model.actuator_gainprm[robot.arm_actuators, 0]
    kv = -model.actuator_biasprm[robot.arm_actuators, 2]
    lo, hi = robot.arm_ranges.T
    full = np.zeros((model.nv, model.nv))
    worst_w, worst_d = 0.0, 0.0
    for q in np.random.default_rng(1).uniform(lo, hi, size=(300, robot.n_arm)):
        _set_arm(robot, data, q)
        mujoco.mj_forward(model, data)
        mujoco.mj_fullM(model, data, full)
        m_arm = full[np.ix_(robot.arm_dof_adr, robot.arm_dof_adr)]
        worst_w = max(worst_w, h * np.sqrt(np.linalg.eigvals(np.linalg.solve(m_arm, np.diag(kp))).real.max()))
        worst_d = max(worst_d, np.linalg.eigvals(h * np.linalg.solve(m_arm, np.diag(kv))).real.max())
    assert worst_w < 0.5, f"omega*dt reaches {worst_w:.2f}"
    assert worst_d < 0.5, f"dt*kv/inertia reaches {worst_d:.2f}"


def test_mjx_matches_mujoco(robot):
    jax = pytest.importorskip("jax")
    mjx = pytest.importorskip("mujoco.mjx")
    jnp = jax.numpy
    model = robot.model
    n_steps = 50
    home = robot.home_ctrl
    rng = np.random.default_rng(2)
    ctrls = np.tile(home, (n_steps, 1))
    ctrls[:, robot.arm_actuators] += rng.uniform(-0.1, 0.1, size=(n_steps, robot.n_arm))
    ctrls = np.clip(ctrls, *robot.ctrl_ranges.T)

    data = mujoco.MjData(model)
    data.qpos[:] = robot.home_qpos
    data.ctrl[:] = home
    ref = np.zeros((n_steps, model.nq))
    max_con = 0
    for i in range(n_steps):
        data.ctrl[:] = ctrls[i]
        for _ in range(robot.substeps):
            mujoco.mj_step(model, data)
            max_con = max(max_con, data.ncon)
        ref[i] = data.qpos
    assert max_con == 0, "the parity motion should be free of contact"

    mx = mjx.put_model(model)
    dx = mjx.make_data(mx).replace(qpos=jnp.asarray(robot.home_qpos, dtype=jnp.float32))

    def rollout(dx, ctrls):
        def control_step(dx, ctrl):
            dx = dx.replace(ctrl=ctrl)
            dx = jax.lax.fori_loop(0, robot.substeps, lambda _, d: mjx.step(mx, d), dx)
            return dx, dx.qpos

        return jax.lax.scan(control_step, dx, ctrls)[1]

    ctrls_j = jnp.asarray(ctrls, dtype=jnp.float32)
    # XLA's newer CPU fusion emitters run MJX's kinematics of this chain of rotated frames
    # about 80x slower (about 18 ms per step instead of 0.2 ms on a 2-core box); the older
    # emitters compute the same HLO without fast-math, so only the speed changes. GPU
    # backends are compiled as usual.
    options = {"xla_cpu_use_fusion_emitters": False} if jax.default_backend() == "cpu" else {}
    compiled = jax.jit(rollout).lower(dx, ctrls_j).compile(compiler_options=options)  # jit once
    qpos = np.asarray(compiled(dx, ctrls_j))
    assert qpos.dtype == np.float32, "MJX ran in float64 (jax_enable_x64 is on); this check is for float32"
    err = np.abs(qpos - ref)[:, robot.arm_qpos_adr].max()
    motion = np.abs(ref - robot.home_qpos)[:, robot.arm_qpos_adr].max()
    assert motion > 0.05, "the targets should move the arm"
    assert err < 1e-3, f"MJX and MuJoCo differ by {err:.2e} rad over a {motion:.3f} rad motion"
