"""PPO's pieces against hand-computed values, and PPO learning a tiny problem."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simrl.train.normalization import RunningNorm
from simrl.train.ppo import PPO, PPOConfig, compute_gae
from tests.toy_env import PointEnv


def test_gae_matches_a_hand_computed_example_with_truncation_and_termination():
    # Two envs, three steps, gamma 0.9, lambda 0.8. Env 0 is truncated (time limit) at t=1, so
    # V(final_obs) = 0.9 is bootstrapped there; env 1 terminates at t=1, so nothing is.
    rewards = jnp.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    values = jnp.array([[0.5, 0.5], [0.6, 0.6], [0.7, 0.7]])
    next_values = jnp.array([[0.6, 0.6], [0.9, 0.9], [0.8, 0.8]])
    done = jnp.array([[False, False], [True, True], [False, False]])
    terminated = jnp.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    advantages, returns = compute_gae(rewards, values, next_values, terminated, done, gamma=0.9, lam=0.8)
    # deltas: t0 1 + .9*.6 - .5 = 1.04; t1 2 + .9*.9 - .6 = 2.21 (truncated) or 2 - .6 = 1.4 (terminated);
    # t2 3 + .9*.8 - .7 = 3.02. A2 = 3.02; A1 = delta1 (the episode ended); A0 = 1.04 + .72 * A1.
    expected = np.array([[1.04 + 0.72 * 2.21, 1.04 + 0.72 * 1.4], [2.21, 1.4], [3.02, 3.02]])
    np.testing.assert_allclose(advantages, expected, rtol=1e-6)
    np.testing.assert_allclose(returns, expected + np.asarray(values), rtol=1e-6)


def test_running_norm_equals_the_statistics_of_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 4)) for n in (7, 50, 1, 300)]
    norm = RunningNorm.create(4)
    for batch in batches:
        norm = norm.update(jnp.asarray(batch, jnp.float32))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(norm.mean, everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.var, everything.var(axis=0), rtol=1e-4)
    assert float(norm.count) == len(everything)


def test_minibatches_must_divide_the_batch():
    with pytest.raises(ValueError, match="not divisible"):
        PPO(PointEnv(10), PPOConfig(rollout_steps=3, minibatches=4), total_iterations=1)


def test_ppo_learns_to_steer_a_point_to_its_goal():
    env = PointEnv(64)
    iterations = 60
    algo = PPO(env, PPOConfig(rollout_steps=20, epochs=4, minibatches=4, hidden_sizes=(32, 32)), total_iterations=iterations)
    agent, env_state = algo.init(jax.random.key(0)), env.reset(jax.random.key(1))
    iterate = jax.jit(algo.iteration)
    returns = []
    for key in jax.random.split(jax.random.key(2), iterations):
        agent, env_state, stats = iterate(agent, env_state, key)
        returns.append(float(stats["episode/return"]))
    assert returns[0] < -10  # a random policy wanders: about -16
    assert np.mean(returns[-10:]) > -6  # heading for the goal: about -4
    assert int(agent.iteration) == iterations
    for tag in ("loss/policy", "loss/value", "train/approx_kl", "train/clip_fraction", "train/explained_variance", "train/entropy"):
        assert np.isfinite(float(stats[tag])), tag


def test_the_kl_adaptive_rate_moves_within_its_bounds():
    env = PointEnv(32)
    config = PPOConfig(rollout_steps=10, epochs=4, minibatches=2, hidden_sizes=(16,), lr_schedule="adaptive_kl", learning_rate=1e-2, desired_kl=1e-5)
    algo = PPO(env, config, total_iterations=3)
    agent, env_state = algo.init(jax.random.key(0)), env.reset(jax.random.key(1))
    agent, env_state, stats = jax.jit(algo.iteration)(agent, env_state, jax.random.key(2))
    # a tiny desired KL is exceeded by every epoch: the rate falls by 1.5 per epoch, clamped at 1e-5
    assert float(stats["train/approx_kl"]) > 2e-5
    assert float(agent.learning_rate) == pytest.approx(max(1e-2 / 1.5**4, 1e-5), rel=1e-5)
