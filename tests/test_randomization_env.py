"""Randomization acts on the physics, the timing and the sensors as configured, the same on both backends."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from simrl.envs import ReachEnv
from simrl.physics import make_backend
from simrl.randomization.profile import resolve_profile
from simrl.randomization.sampler import DomainSampler
from simrl.robots import load_robot
from tests.test_physics import _run

STILL_START = {"init_joint_noise": {"distribution": "fixed", "value": 0.0}}  # every world starts exactly at home


def profile_file(tmp_path: Path, name: str, entries: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**STILL_START, **entries}))
    return path


def joint_trajectory(env: ReachEnv, actions: np.ndarray, seed: int = 0) -> np.ndarray:
    """Arm joint positions (T, N, n_arm) under ``actions`` (T, action_size), the same in every world."""

    @jax.jit
    def run(key):
        def body(state, action):
            state = env.step(state, jnp.broadcast_to(action, (env.num_envs, env.action_size)))
            return state, state.physics.qpos[:, env.robot.arm_qpos_adr]

        return jax.lax.scan(body, env.reset(key), jnp.asarray(actions, jnp.float32))[1]

    return np.asarray(run(jax.random.key(seed)))


def step_actions(env: ReachEnv, steps: int) -> np.ndarray:
    """One full action on the elbow at t = 0, then nothing: a step of the elbow's target."""
    actions = np.zeros((steps, env.action_size))
    actions[0, env.robot.config.arm_joints.index("elbow_flex")] = 1.0
    return actions


def fixed(value: float) -> dict:
    return {"distribution": "fixed", "value": value}


def test_a_world_with_three_times_the_damping_moves_slower(tmp_path):
    robot = load_robot("so101")
    elbow = robot.config.arm_joints.index("elbow_flex")
    moved = {}
    for scale in (0.3, 3.0):
        profile = resolve_profile(profile_file(tmp_path, f"damping{scale}", {"joint_damping": fixed(scale)}), robot)
        env = ReachEnv(robot, 1, backend="cpu", randomization=profile)
        trajectory = joint_trajectory(env, step_actions(env, 3))
        moved[scale] = trajectory[:, 0, elbow] - robot.home_qpos[robot.arm_qpos_adr][elbow]
    assert np.all(np.abs(moved[3.0]) < np.abs(moved[0.3]))
    assert abs(moved[0.3][0]) > 1.3 * abs(moved[3.0][0])  # measurably, not within noise


def test_a_latency_of_k_steps_shifts_the_response_by_exactly_k_steps(tmp_path):
    robot = load_robot("so101")
    responses, commanded = {}, {}
    for k in (0, 2):
        profile = resolve_profile(profile_file(tmp_path, f"latency{k}", {"latency_steps": fixed(k)}), robot)
        env = ReachEnv(robot, 1, backend="cpu", randomization=profile)
        commanded[k] = joint_trajectory(env, step_actions(env, 10))
        held = joint_trajectory(env, np.zeros((10, env.action_size)))
        responses[k] = np.abs(commanded[k] - held).max(axis=(1, 2))
    # the command reaches the motors exactly k steps later: bit for bit nothing before, motion from step k on
    assert responses[0][0] > 1e-3 and np.all(responses[2][:2] == 0.0) and responses[2][2] > 1e-3
    # and the motion is the same, shifted: not to the bit, as the held arm settles by ~1e-4 rad in the first
    # two steps and dry friction makes the response depend on that
    np.testing.assert_allclose(commanded[2][2:], commanded[0][:-2], atol=5e-3)


def test_a_sub_step_latency_delays_within_the_period(tmp_path):
    robot = load_robot("so101")
    first_step = {}
    for fraction in (0.0, 0.5):
        profile = resolve_profile(profile_file(tmp_path, f"sub{fraction}", {"latency_substeps": fixed(fraction)}), robot)
        env = ReachEnv(robot, 1, backend="cpu", randomization=profile)
        first_step[fraction] = joint_trajectory(env, step_actions(env, 1))[0, 0]
    home = robot.home_qpos[robot.arm_qpos_adr]
    assert 0 < np.abs(first_step[0.5] - home).max() < np.abs(first_step[0.0] - home).max()


def test_observation_noise_and_quantization_reach_the_observation_only(tmp_path):
    robot = load_robot("so101")
    resolution = 2 * np.pi / 4096
    entries = {"encoder_resolution": fixed(resolution), "obs_joint_vel_noise": {"distribution": "normal", "mean": 0.0, "std": 0.5}}
    env = ReachEnv(robot, 64, backend="cpu", randomization=resolve_profile(profile_file(tmp_path, "sensors", entries), robot))
    state = jax.jit(env.step)(jax.jit(env.reset)(jax.random.key(0)), jnp.full((64, env.action_size), 0.3))
    n = robot.n_arm
    measured_pos, measured_vel = np.asarray(state.obs[:, :n]), np.asarray(state.obs[:, n : 2 * n])
    true_pos = np.asarray(state.physics.qpos[:, robot.arm_qpos_adr])
    true_vel = np.asarray(state.physics.qvel[:, robot.arm_dof_adr])
    np.testing.assert_allclose(measured_pos / resolution, np.round(measured_pos / resolution), atol=1e-3)
    assert 0 < np.abs(measured_pos - true_pos).max() <= resolution / 2 + 1e-6
    assert 0.4 < np.std(measured_vel - true_vel) < 0.6
    distance = np.linalg.norm(env.task.ee_position(np, true_pos) - np.asarray(state.task.goal), axis=-1)
    np.testing.assert_allclose(np.asarray(state.metrics["distance"]), distance, atol=1e-5)  # the reward sees the truth


def test_cpu_and_mjx_apply_the_same_sampled_parameters_identically():
    """Five control steps towards a target 0.3 rad away, in 8 worlds drawn from the strong profile.

    A short, deliberate motion: over long random walks both backends stay within 1e-3 rad in most
    worlds, but a world whose draw puts a joint near stick-slip diverges by chaos (float32 vs float64),
    which says nothing about how the parameters are applied.
    """
    robot = load_robot("so101")
    n = 8
    domain = DomainSampler(robot, resolve_profile("strong", robot)).sample(jax.random.key(7), n)
    targets = np.tile(robot.home_qpos[robot.arm_qpos_adr] + 0.3, (5, n, 1))
    cpu = _run(make_backend("cpu", robot.model, robot.substeps, n), robot, targets, domain.model)
    mjx = _run(make_backend("mjx", robot.model, robot.substeps, n), robot, targets, domain.model)
    nominal = _run(make_backend("cpu", robot.model, robot.substeps, n), robot, targets)
    assert np.abs(cpu - nominal).max(axis=(0, 2)).min() > 0.01, "every world's parameters must change its motion"
    assert np.abs(cpu - mjx).max() < 1e-4


def test_sampling_is_seeded_and_resampled_per_episode():
    robot = load_robot("so101")
    env = ReachEnv(robot, 8, backend="cpu", randomization=resolve_profile("default", robot))
    reset = jax.jit(env.reset)
    a, b, c = reset(jax.random.key(1)), reset(jax.random.key(1)), reset(jax.random.key(2))
    np.testing.assert_array_equal(a.domain.model["dof_damping"], b.domain.model["dof_damping"])
    assert not np.array_equal(a.domain.model["dof_damping"], c.domain.model["dof_damping"])
    step = jax.jit(env.step)
    state = a
    for _ in range(env.task.config.episode_steps):
        state = step(state, jnp.zeros((8, env.action_size)))
    assert bool(jnp.all(state.done))
    assert not np.array_equal(state.domain.model["dof_damping"], a.domain.model["dof_damping"])  # new episode, new draw
