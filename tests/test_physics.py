"""The two physics backends: same physics, per-world parameters, determinism."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simrl.errors import SimrlError
from simrl.physics import PhysicsState, make_backend, resolve_backend
from simrl.robots import Robot, load_robot


# XLA:CPU compiles MJX's large graphs several times faster with its fusion
# emitters off and optimisation level 0; the arithmetic is the same float32.
FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0}


def _run(backend, robot: Robot, targets: np.ndarray, params=None) -> np.ndarray:
    """Step from home holding each row of ``targets`` (T, N, n_arm) for one control step; qpos (T, N, nq)."""
    n = targets.shape[1]
    ctrl0 = jnp.tile(jnp.asarray(robot.home_ctrl, jnp.float32), (n, 1))
    state = PhysicsState(jnp.tile(jnp.asarray(robot.home_qpos, jnp.float32), (n, 1)), jnp.zeros((n, robot.model.nv), jnp.float32))

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def rollout(state, targets):
        def body(state, target):
            ctrl = ctrl0.at[:, robot.arm_actuators].set(target)
            out = backend.step(state, ctrl, params)
            return out.state, out.state.qpos

        return jax.lax.scan(body, state, targets)[1]

    return np.asarray(rollout(state, jnp.asarray(targets, jnp.float32)))


def _random_targets(robot: Robot, steps: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    home = robot.home_qpos[robot.arm_qpos_adr]
    walk = np.cumsum(rng.uniform(-0.02, 0.02, (steps, n, robot.n_arm)), axis=0)
    return np.clip(home + walk, *robot.arm_ranges.T)


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
