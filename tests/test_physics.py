"""The two physics backends: same physics, per-world parameters, determinism."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from simrl.errors import SimrlError
from simrl.physics import PhysicsState, delayed_controls, make_backend, resolve_backend
from simrl.physics.cpu import CpuBackend
from simrl.robots import Robot, load_robot


# XLA:CPU compiles MJX's large graphs several times faster with its fusion
# emitters off and optimisation level 0; the arithmetic is the same float32.
FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0}


def _run(backend, robot: Robot, targets: np.ndarray, params=None) -> np.ndarray:
    """Step from home with each row of ``targets`` for one control step; qpos (T, N, nq).

    ``targets`` is (T, N, n_arm), held for the whole control step, or
    (T, N, substeps, n_arm), one per substep.
    """
    n = targets.shape[1]
    home_ctrl = jnp.asarray(robot.home_ctrl, jnp.float32)
    state = PhysicsState(jnp.tile(jnp.asarray(robot.home_qpos, jnp.float32), (n, 1)), jnp.zeros((n, robot.model.nv), jnp.float32))

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def rollout(state, targets):
        def body(state, target):
            ctrl = jnp.broadcast_to(home_ctrl, (*target.shape[:-1], robot.model.nu)).at[..., robot.arm_actuators].set(target)
            out = backend.step(state, ctrl, params)
            return out.state, out.state.qpos

        return jax.lax.scan(body, state, targets)[1]

    return np.asarray(rollout(state, jnp.asarray(targets, jnp.float32)))


def _random_targets(robot: Robot, steps: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    home = robot.home_qpos[robot.arm_qpos_adr]
    walk = np.cumsum(rng.uniform(-0.02, 0.02, (steps, n, robot.n_arm)), axis=0)
    return np.clip(home + walk, *robot.arm_ranges.T)


def _latency_targets(robot: Robot, steps: int, n: int, seed: int) -> np.ndarray:
    """A random walk of targets (T, N, substeps, n_arm), each arriving a random number of substeps late."""
    targets = _random_targets(robot, steps + 1, n, seed)
    delays = np.random.default_rng(seed).integers(0, robot.substeps + 1, (steps, n))
    flat = delayed_controls(targets[:-1].reshape(steps * n, -1), targets[1:].reshape(steps * n, -1), delays.reshape(-1), robot.substeps)
    return np.asarray(flat).reshape(steps, n, robot.substeps, robot.n_arm)


def test_cpu_and_mjx_agree_after_50_control_steps(robot: Robot) -> None:
    """Issue requirement: qpos within 1e-3 rad after 50 control steps of the same actions."""
    targets = _random_targets(robot, 50, 2, seed=3)
    cpu = _run(make_backend("cpu", robot.model, robot.substeps, 2), robot, targets)
    mjx = _run(make_backend("mjx", robot.model, robot.substeps, 2), robot, targets)
    assert np.all(np.isfinite(cpu))
    moved = np.abs(cpu[-1] - robot.home_qpos).max()
    assert moved > 0.05, "the test must move the arm to mean anything"
    assert np.abs(cpu - mjx).max() < 1e-3


def test_per_world_parameters_apply_identically_on_both_backends() -> None:
    robot = load_robot("so101")
    n, steps = 2, 10
    targets = np.tile(robot.home_qpos[robot.arm_qpos_adr] + 0.4, (steps, n, 1))
    damping = np.tile(robot.model.dof_damping, (n, 1))
    damping[0] *= 30.0  # a sluggish world next to a normal one
    params = {"dof_damping": damping}
    cpu = _run(make_backend("cpu", robot.model, robot.substeps, n), robot, targets, params)
    mjx = _run(make_backend("mjx", robot.model, robot.substeps, n), robot, targets, params)
    travel = np.abs(cpu[2] - robot.home_qpos)[:, robot.arm_qpos_adr].sum(axis=1)
    assert travel[0] < 0.8 * travel[1], "higher damping must slow the first world down"
    assert np.abs(cpu - mjx).max() < 1e-3


def test_cpu_and_mjx_agree_with_per_substep_controls() -> None:
    """The mjx scan over substeps feeds the controls in the same order as mujoco.rollout."""
    robot = load_robot("so101")
    targets = _latency_targets(robot, 20, 2, seed=5)
    cpu = _run(make_backend("cpu", robot.model, robot.substeps, 2), robot, targets)
    mjx = _run(make_backend("mjx", robot.model, robot.substeps, 2), robot, targets)
    assert np.abs(cpu[-1] - robot.home_qpos).max() > 0.05, "the test must move the arm to mean anything"
    assert np.abs(cpu - mjx).max() < 1e-3


def test_cpu_backend_is_deterministic() -> None:
    robot = load_robot("so101")
    targets = _random_targets(robot, 20, 64, seed=4)
    first = _run(make_backend("cpu", robot.model, robot.substeps, 64), robot, targets)
    second = _run(make_backend("cpu", robot.model, robot.substeps, 64), robot, targets)
    np.testing.assert_array_equal(first, second)


def test_bad_backend_and_params_are_refused() -> None:
    robot = load_robot("so101")
    with pytest.raises(SimrlError, match="unknown backend 'gpu'.*allowed: auto, cpu, mjx"):
        resolve_backend("gpu")
    backend = make_backend("cpu", robot.model, robot.substeps, 2)
    state = PhysicsState(jnp.zeros((2, robot.model.nq)), jnp.zeros((2, robot.model.nv)))
    with pytest.raises(SimrlError, match="cannot vary per world"):
        backend.step(state, jnp.zeros((2, robot.model.nu)), {"jnt_range": np.zeros((2, 6, 2))})
    with pytest.raises(SimrlError, match="has shape"):
        backend.step(state, jnp.zeros((2, robot.model.nu)), {"dof_damping": np.zeros((3, robot.model.nv))})


def test_auto_backend_is_cpu_without_gpu() -> None:
    expected = "mjx" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"
    assert resolve_backend("auto") == expected


def test_cpu_backend_parameters_follow_each_call() -> None:
    """Per-world fields apply to the call that passes them, and never leak into a later call."""
    robot = load_robot("so101")
    n = 2
    targets = np.tile(robot.home_qpos[robot.arm_qpos_adr] + 0.4, (5, n, 1))
    backend = make_backend("cpu", robot.model, robot.substeps, n)
    nominal = _run(backend, robot, targets)
    damping = np.tile(robot.model.dof_damping, (n, 1))
    damping[1] *= 30.0
    damped = _run(backend, robot, targets, {"dof_damping": damping})
    # Parameters pass through JAX as float32, so "unchanged" means equal to float32 rounding.
    np.testing.assert_allclose(damped[:, 0], nominal[:, 0], atol=1e-5)
    assert np.abs(damped[:, 1] - nominal[:, 1]).max() > 0.05
    armature = np.tile(robot.model.dof_armature, (n, 1))
    only_armature = _run(backend, robot, targets, {"dof_armature": armature})
    np.testing.assert_allclose(only_armature, nominal, atol=1e-5)  # the damping of the previous call is gone
    np.testing.assert_array_equal(_run(backend, robot, targets), nominal)


def _worlds_at_home(robot, n: int) -> tuple:
    """A cpu backend of ``n`` worlds, all at home, and a command moving every arm joint 0.4 rad."""
    backend = make_backend("cpu", robot.model, robot.substeps, n)
    state = PhysicsState(jnp.tile(jnp.asarray(robot.home_qpos, jnp.float32), (n, 1)), jnp.zeros((n, robot.model.nv), jnp.float32))
    ctrl = jnp.tile(jnp.asarray(robot.home_ctrl, jnp.float32), (n, 1)).at[:, robot.arm_actuators].add(0.4)
    return backend, state, ctrl


def test_cpu_backend_rewrites_only_the_worlds_promised_as_changed() -> None:
    """With ``changed``, the backend trusts the mask instead of comparing: unmarked worlds keep their model."""
    robot = load_robot("so101")
    n = 3
    backend, state, ctrl = _worlds_at_home(robot, n)
    nominal = np.tile(robot.model.dof_damping, (n, 1)).astype(np.float32)
    heavy = nominal * 30.0
    backend.step(state, ctrl, {"dof_damping": nominal}, changed=jnp.ones(n, bool))
    # Worlds 0 and 1 get heavy damping, but only world 0 is marked: world 1 must keep its nominal model.
    params = {"dof_damping": np.stack([heavy[0], heavy[1], nominal[2]])}
    moved = np.asarray(backend.step(state, ctrl, params, changed=jnp.array([True, False, False])).state.qpos)
    reference = np.asarray(make_backend("cpu", robot.model, robot.substeps, n).step(state, ctrl, {"dof_damping": nominal}).state.qpos)
    np.testing.assert_array_equal(moved[1:], reference[1:])
    assert np.abs(moved[0] - reference[0]).max() > 1e-4
    # A step that marks no world hands no fields over, yet steps the models written before: world 0 stays damped.
    unmarked = np.asarray(backend.step(state, ctrl, params, changed=jnp.zeros(n, bool)).state.qpos)
    np.testing.assert_array_equal(unmarked, moved)
    # Without a mask every value is compared again, so world 1's heavy damping now applies.
    compared = np.asarray(backend.step(state, ctrl, params).state.qpos)
    assert np.abs(compared[1] - reference[1]).max() > 1e-4


def test_cpu_backend_is_bit_identical_at_any_thread_count() -> None:
    """One thread or two, the same worlds with their own fields and late commands step to the same bits."""
    robot = load_robot("so101")
    n = 16
    targets = _latency_targets(robot, 10, n, seed=8)
    damping = np.tile(robot.model.dof_damping, (n, 1)) * np.linspace(0.5, 3.0, n)[:, None]
    params = {"dof_damping": damping.astype(np.float32)}
    runs = [_run(CpuBackend(robot.model, robot.substeps, n, nthread=threads), robot, targets, params) for threads in (1, 2)]
    assert np.abs(runs[0][-1] - robot.home_qpos).max() > 0.05, "the test must move the arm to mean anything"
    np.testing.assert_array_equal(runs[0], runs[1])


def test_cpu_backend_step_depends_on_its_inputs_alone() -> None:
    """A world's row keeps nothing from the call before (solver warmstart, time, fields): the same inputs give the same bits.

    Fast worlds pressed against their joint limits and friction make the
    solver's result depend on its warmstart in the last bits, so a warmstart
    left over from the call in between would show in float64 (not in float32).
    """
    with jax.enable_x64(True):
        _check_step_depends_on_inputs_alone()


def _check_step_depends_on_inputs_alone() -> None:
    robot = load_robot("so101")
    model, n = robot.model, 64
    rng = np.random.default_rng(9)

    def random_worlds() -> tuple[PhysicsState, jax.Array]:
        qpos = rng.uniform(*model.jnt_range.T, (n, model.nq))
        qvel = rng.normal(0.0, 3.0, (n, model.nv))
        ctrl = rng.uniform(*(model.actuator_ctrlrange.T + np.array([[-0.5], [0.5]])), (n, model.nu))
        return PhysicsState(jnp.asarray(qpos), jnp.asarray(qvel)), jnp.asarray(ctrl)

    backend = make_backend("cpu", model, robot.substeps, n)
    state, ctrl = random_worlds()
    first = backend.step(state, ctrl)
    heavy = {"dof_damping": np.tile(model.dof_damping * 30.0, (n, 1))}
    backend.step(*random_worlds(), heavy)  # other states, commands and fields in those rows in between
    again = backend.step(state, ctrl)
    np.testing.assert_array_equal(again.state.qpos, first.state.qpos)
    np.testing.assert_array_equal(again.state.qvel, first.state.qvel)
    np.testing.assert_array_equal(again.sensordata, first.sensordata)


def test_cpu_backend_refuses_fields_never_handed_over() -> None:
    """A first step that marks no world would step nominal models in silence: it fails and says why."""
    robot = load_robot("so101")
    n = 2
    backend = make_backend("cpu", robot.model, robot.substeps, n)
    state = PhysicsState(jnp.tile(jnp.asarray(robot.home_qpos, jnp.float32), (n, 1)), jnp.zeros((n, robot.model.nv), jnp.float32))
    params = {"dof_damping": np.tile(robot.model.dof_damping, (n, 1)).astype(np.float32)}
    with pytest.raises(Exception, match="first step with them must mark every world"):
        jax.block_until_ready(backend.step(state, jnp.zeros((n, robot.model.nu)), params, changed=jnp.zeros(n, bool)))


def test_per_substep_controls_equal_to_held_ones_change_nothing() -> None:
    """The 3-D path fills the same control buffer the 2-D path broadcasts into."""
    robot = load_robot("so101")
    targets = _random_targets(robot, 10, 2, seed=6)
    backend = make_backend("cpu", robot.model, robot.substeps, 2)
    per_substep = np.repeat(targets[:, :, None], robot.substeps, axis=2)
    np.testing.assert_array_equal(_run(backend, robot, per_substep), _run(backend, robot, targets))


def test_delayed_controls_switch_after_the_delay() -> None:
    rng = np.random.default_rng(7)
    previous, new = rng.normal(size=(2, 3, 4)).astype(np.float32)
    substeps = 5
    build = jax.jit(delayed_controls, static_argnums=3)
    np.testing.assert_array_equal(build(previous, new, np.zeros(3, np.int32), substeps), np.repeat(new[:, None], substeps, axis=1))
    np.testing.assert_array_equal(build(previous, new, np.full(3, substeps), substeps), np.repeat(previous[:, None], substeps, axis=1))
    ctrl = np.asarray(build(previous, new, np.array([0, 2, 5]), substeps))
    assert ctrl.shape == (3, substeps, 4)
    for world, delay in enumerate([0, 2, 5]):
        np.testing.assert_array_equal(ctrl[world, :delay], np.repeat(previous[world][None], delay, axis=0))
        np.testing.assert_array_equal(ctrl[world, delay:], np.repeat(new[world][None], substeps - delay, axis=0))


def test_per_substep_controls_apply_in_substep_order() -> None:
    """A command half a control period late matches plain mj_step fed the same controls, substep by substep."""
    robot = load_robot("so101")
    n, substeps = 2, robot.substeps
    backend = make_backend("cpu", robot.model, substeps, n)
    state = PhysicsState(jnp.tile(jnp.asarray(robot.home_qpos, jnp.float32), (n, 1)), jnp.zeros((n, robot.model.nv), jnp.float32))
    hold = jnp.tile(jnp.asarray(robot.home_ctrl, jnp.float32), (n, 1))
    move = hold.at[:, robot.arm_actuators].add(0.3)
    late = delayed_controls(hold, move, jnp.array([substeps // 2, 0]), substeps)
    out = backend.step(state, late)
    held, moved = backend.step(state, hold), backend.step(state, move)

    data = mujoco.MjData(robot.model)
    data.qpos[:] = np.asarray(state.qpos[0])
    for ctrl in np.asarray(late[0]):
        data.ctrl[:] = ctrl
        mujoco.mj_step(robot.model, data)
    np.testing.assert_array_equal(out.state.qpos[0], data.qpos.astype(np.float32))
    np.testing.assert_array_equal(out.state.qvel[0], data.qvel.astype(np.float32))
    np.testing.assert_array_equal(out.sensordata[0], data.sensordata.astype(np.float32))
    assert np.abs(out.state.qpos[0] - held.state.qpos[0]).max() > 1e-3, "the second half must apply the new command"
    assert np.abs(out.state.qpos[0] - moved.state.qpos[0]).max() > 1e-3, "the first half must apply the previous command"
    np.testing.assert_array_equal(out.state.qpos[1], moved.state.qpos[1])  # the delay is per world: none in world 1


@pytest.mark.parametrize("backend_name", ["cpu", "mjx"])
def test_wrong_ctrl_shape_is_refused(backend_name: str) -> None:
    robot = load_robot("so101")
    nu, substeps = robot.model.nu, robot.substeps
    backend = make_backend(backend_name, robot.model, substeps, 2)
    state = PhysicsState(jnp.zeros((2, robot.model.nq)), jnp.zeros((2, robot.model.nv)))
    expected = rf"expected \(2, {nu}\) \(held for every substep\) or \(2, {substeps}, {nu}\) \(one per substep\)"
    for shape in [(3, nu), (2, nu + 1), (2, substeps + 1, nu), (2, 1, nu), (nu,)]:
        with pytest.raises(SimrlError, match=rf"ctrl has shape \({', '.join(map(str, shape))},?\), {expected}"):
            backend.step(state, jnp.zeros(shape))
