"""SAC learns the toy point env, keeps time limits bootstrappable, and runs jitted with finite statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simrl.train.algorithm import tree_is_finite
from simrl.train.sac import SAC, SACConfig
from tests.toy_env import EPISODE_STEPS, SPEED, PointEnv

SMALL = SACConfig(
    hidden_sizes=(64, 64),
    batch_size=256,
    buffer_size=100_000,
    steps_per_iteration=2,
    updates_per_iteration=4,
    warmup_steps=10,
    learning_rate=1e-3,
)


def deterministic_return(algo: SAC, agent, env: PointEnv, key: jax.Array) -> float:
    """Mean return of one episode per env under ``algo.policy(agent)`` (what eval and deploy run)."""
    policy = algo.policy(agent)
    state = env.reset(key)
    total = jnp.zeros(env.num_envs)
    for _ in range(EPISODE_STEPS):
        state = env.step(state, policy.act(jnp, state.obs))
        total = total + state.reward
    return float(total.mean())


def test_sac_learns_point_env():
    # A random policy scores about -16 per episode, heading straight for the goal about -3.
    env = PointEnv(32)
    algo = SAC(env, SMALL, total_iterations=200)
    agent, env_state = algo.init(jax.random.key(0)), env.reset(jax.random.key(1))
    iteration = jax.jit(algo.iteration)
    returns = []
    for key in jax.random.split(jax.random.key(2), 200):
        agent, env_state, stats = iteration(agent, env_state, key)
        if stats["episode/count"] > 0:
            returns.append(float(stats["episode/return"]))
    assert returns[0] < -10
    assert np.mean(returns[-3:]) > -6
    assert deterministic_return(algo, agent, env, jax.random.key(3)) > -6


def test_buffer_bootstraps_through_truncation():
    # One iteration is exactly one episode, so its last step is a time-limit truncation with an auto-reset.
    env = PointEnv(4)
    size = EPISODE_STEPS * env.num_envs
    update = {"steps_per_iteration": EPISODE_STEPS, "warmup_steps": EPISODE_STEPS, "buffer_size": size, "batch_size": 32}
    algo = SAC(env, SMALL.model_copy(update=update), total_iterations=1)
    agent, env_state = algo.init(jax.random.key(0)), env.reset(jax.random.key(1))
    # Donated as a runner would, to keep the buffer in place (fails if the fresh agent shares an array between leaves).
    agent, env_state, _ = jax.jit(algo.iteration, donate_argnums=0)(agent, env_state, jax.random.key(2))

    buffer = agent.buffer
    assert int(buffer.size) == size and int(buffer.position) == 0  # full, and wrapped round to the start
    fields = (buffer.obs, buffer.action, buffer.next_obs, buffer.terminated)
    obs, action, next_obs, terminated = (np.asarray(x).reshape(EPISODE_STEPS, env.num_envs, *x.shape[1:]) for x in fields)
    np.testing.assert_array_equal(next_obs[:-1], obs[1:])  # within an episode, next_obs is the next step's obs
    move = SPEED * np.clip(action[-1], -1, 1)
    np.testing.assert_allclose(next_obs[-1], obs[-1] + np.concatenate([move, -move], axis=-1), atol=1e-6)
    assert not np.allclose(next_obs[-1], np.asarray(env_state.obs))  # not the next episode's reset obs
    assert not terminated.any()  # truncation, not termination: the target bootstraps


def test_jitted_iteration_has_finite_stats_and_waits_for_warmup():
    env = PointEnv(16)
    config = SMALL.model_copy(update={"batch_size": 32})  # the buffer holds a batch after one iteration: warmup decides
    algo = SAC(env, config, total_iterations=10)
    assert algo.env_steps_per_iteration == 16 * config.steps_per_iteration
    agent, env_state = algo.init(jax.random.key(0)), env.reset(jax.random.key(1))
    initial_actor = agent.actor
    iteration = jax.jit(algo.iteration)
    warmup_iterations = config.warmup_steps // config.steps_per_iteration
    for i, key in enumerate(jax.random.split(jax.random.key(2), warmup_iterations + 12)):
        agent, env_state, stats = iteration(agent, env_state, key)
        leaves = zip(jax.tree_util.tree_leaves(agent.actor), jax.tree_util.tree_leaves(initial_actor))
        actor_changed = not all(np.array_equal(a, b) for a, b in leaves)
        assert actor_changed == (i >= warmup_iterations - 1), i  # the last warmup iteration's data is the first learned from
        for tag in ("loss/q", "loss/actor", "loss/temperature", "train/temperature", "train/entropy", "train/q_mean"):
            assert np.isfinite(stats[tag]), (i, tag)
        assert int(stats["train/buffer_size"]) == (i + 1) * algo.env_steps_per_iteration
        ended = stats["episode/count"] > 0
        nan_allowed = {tag for tag in stats if tag.startswith("episode/") and tag != "episode/count" and not ended}
        assert all(np.isfinite(value) for tag, value in stats.items() if tag not in nan_allowed), i
    assert float(stats["loss/q"]) > 0
    assert bool(tree_is_finite(agent))
    assert int(agent.iteration) == warmup_iterations + 12
    action = algo.policy(agent).act(jnp, env_state.obs)
    assert action.shape == (16, env.action_size) and bool(jnp.all(jnp.abs(action) <= 1))
