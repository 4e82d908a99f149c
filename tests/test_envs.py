"""The functional env: reset/step contract, auto-reset, seeding, action spaces."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simrl.envs import ReachEnv
from simrl.tasks.reach import load_reach_config


@pytest.fixture(scope="module")
def env() -> ReachEnv:
    return ReachEnv("so101", num_envs=16, backend="cpu")


def _rollout(env: ReachEnv, seed: int, steps: int):
    """Run ``steps`` random-action steps; returns the per-step states stacked."""
    return _runner(env, steps)(jax.random.key(seed))


@functools.lru_cache
def _runner(env: ReachEnv, steps: int):
    """One jitted rollout per (env, steps), compiled once for the module."""

    @jax.jit
    def run(key):
        state = env.reset(key)

        def body(carry, _):
            state, key = carry
            key, sub = jax.random.split(key)
            action = jax.random.uniform(sub, (env.num_envs, env.action_size), minval=-1, maxval=1)
            state = env.step(state, action)
            return (state, key), state

        return jax.lax.scan(body, (state, key), None, length=steps)[1]

    return run


def test_shapes_and_reset_distribution(env: ReachEnv) -> None:
    state = jax.jit(env.reset)(jax.random.key(0))
    assert state.obs.shape == (16, env.observation_size) and state.obs.dtype == jnp.float32
    goal = np.asarray(state.task.goal)
    box = env.robot.config.goal_workspace
    assert np.all(goal >= box.low) and np.all(goal <= box.high)
    assert len(np.unique(goal[:, 0])) == 16, "each env draws its own goal"
    joints = np.asarray(state.physics.qpos)[:, env.robot.arm_qpos_adr]
    home = env.robot.home_qpos[env.robot.arm_qpos_adr]
    assert np.abs(joints - home).max() <= env.task.config.init_joint_noise + 1e-6


def test_same_seed_same_result_other_seed_differs(env: ReachEnv) -> None:
    a = _rollout(env, seed=7, steps=20)
    b = _rollout(env, seed=7, steps=20)
    c = _rollout(env, seed=8, steps=20)
    np.testing.assert_array_equal(np.asarray(a.obs), np.asarray(b.obs))
    assert not np.allclose(np.asarray(a.obs), np.asarray(c.obs))


def test_time_limit_auto_reset_and_episode_metrics(env: ReachEnv) -> None:
    steps = env.task.config.episode_steps
    states = _rollout(env, seed=1, steps=steps + 3)
    done = np.asarray(states.done)
    assert not done[: steps - 1].any()
    assert done[steps - 1].all() and np.asarray(states.truncated)[steps - 1].all()
    assert not done[steps:].any()
    last = steps - 1
    np.testing.assert_allclose(np.asarray(states.metrics["episode_length"])[last], steps)
    np.testing.assert_allclose(
        np.asarray(states.metrics["episode_return"])[last], np.asarray(states.reward)[: last + 1].sum(axis=0), rtol=1e-4
    )
    # After the reset the obs belongs to a new episode (new goal), final_obs to the old one.
    goal = slice(*_layout_slice(env, "goal"))
    assert not np.allclose(np.asarray(states.obs)[last, :, goal], np.asarray(states.final_obs)[last, :, goal])
    np.testing.assert_array_equal(np.asarray(states.final_obs)[last, :, goal], np.asarray(states.obs)[last - 1, :, goal])
    assert np.asarray(states.step_count)[last].max() == 0
    success = np.asarray(states.metrics["episode_success"])[last]
    np.testing.assert_array_equal(success, np.asarray(states.metrics["distance"])[last] < env.task.config.success_radius)


def _layout_slice(env: ReachEnv, name: str) -> tuple[int, int]:
    start = 0
    for part, size in env.task.observation_layout():
        if part == name:
            return start, start + size
        start += size
    raise KeyError(name)


def test_reward_is_weighted_sum_of_logged_terms(env: ReachEnv) -> None:
    states = _rollout(env, seed=2, steps=5)
    scales = env.task.config.scales.model_dump()
    total = sum(scales[k] * np.asarray(states.metrics[k]) for k in scales)
    np.testing.assert_allclose(np.asarray(states.reward), total, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(states.metrics["distance"]), np.linalg.norm(np.asarray(states.obs)[..., slice(*_layout_slice(env, "ee_to_goal"))], axis=-1), atol=1e-5)


def test_holding_still_keeps_the_arm_at_its_start_pose(env: ReachEnv) -> None:
    state = jax.jit(env.reset)(jax.random.key(3))
    step = jax.jit(env.step)
    start = np.asarray(state.physics.qpos)[:, env.robot.arm_qpos_adr]
    for _ in range(25):
        state = step(state, jnp.zeros((env.num_envs, env.action_size)))
    end = np.asarray(state.physics.qpos)[:, env.robot.arm_qpos_adr]
    assert np.abs(end - start).max() < 0.05


def test_ee_delta_moves_the_end_effector_where_asked() -> None:
    config = load_reach_config().model_copy(update={"action_space": "ee_delta"})
    env = ReachEnv("so101", num_envs=4, backend="cpu", task_config=config)
    assert env.action_size == 3
    state = jax.jit(env.reset)(jax.random.key(0))
    direction = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    before = env.task.ee_position(jnp, state.task.target)
    target = env.task.next_target(jnp, direction * 0.5, state.task.target)
    moved = np.asarray(env.task.ee_position(jnp, target) - before)
    asked = np.asarray(direction) * 0.5 * env.robot.config.action_scale.ee_delta
    np.testing.assert_allclose(moved, asked, atol=2e-3)
    # And the physics follows: the ee ends up near the commanded point after the servo settles.
    step = jax.jit(env.step)
    for _ in range(5):
        state = step(state, direction * 0.5)
    ee = np.asarray(env.task.ee_position(jnp, state.physics.qpos[:, env.robot.arm_qpos_adr]))
    np.testing.assert_allclose(ee, np.asarray(env.task.ee_position(jnp, state.task.target)), atol=0.01)
