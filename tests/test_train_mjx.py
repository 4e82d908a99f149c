"""Training runs on the mjx backend too (a few worlds; MJX is for GPUs, the CPU only proves it compiles and learns finite)."""

from __future__ import annotations

import jax
import numpy as np

from simrl.train.algorithm import tree_is_finite
from simrl.train.config import resolve_config
from simrl.train.runner import make_algorithm, make_env
from tests.test_physics import FAST_COMPILE
from tests.tiny_run import write_tiny_recipe


def test_a_ppo_iteration_on_the_mjx_backend_gives_finite_updates(tmp_path):
    recipe = write_tiny_recipe(tmp_path, num_envs=4, ppo={"rollout_steps": 2, "epochs": 1, "minibatches": 1, "hidden_sizes": [8]})
    config = resolve_config("reach", "so101", "mjx", recipe=recipe)
    env = make_env(config, config.num_envs, auto_reset=True)
    assert env.physics.name == "mjx"
    algo = make_algorithm(config, env)
    agent, env_state = algo.init(jax.random.key(0)), env.reset(jax.random.key(1))
    before = np.asarray(agent.params["policy"][0]["w"])
    agent, env_state, stats = jax.jit(algo.iteration, compiler_options=FAST_COMPILE)(agent, env_state, jax.random.key(2))
    assert bool(tree_is_finite(agent))
    assert all(np.isfinite(float(stats[tag])) for tag in ("loss/policy", "loss/value", "reward/distance"))
    assert not np.array_equal(before, agent.params["policy"][0]["w"])
