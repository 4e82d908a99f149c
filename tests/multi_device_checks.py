"""Training on one and on two devices in one process, for tests/test_multi_device.py.

Run as ``python -m tests.multi_device_checks CHECK OUT_DIR`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (the flag must be set
before JAX starts, hence a separate process). Each check trains the same
seed on ``jax.devices()[:1]`` and on both devices and writes
``OUT_DIR/one.npz`` and ``OUT_DIR/two.npz`` (the final learner state, or the
saved policy, plus per-iteration statistics) and ``OUT_DIR/facts.json`` (how
the work was placed), for the test to compare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from rich.console import Console

from simrl.train.config import resolve_config
from simrl.train.parallel import DataParallel
from simrl.train.policy import load_policy
from simrl.train.ppo import PPO, PPOConfig
from simrl.train.runner import Runner
from simrl.train.sac import SAC, SACConfig
from tests.tiny_run import write_short_episodes, write_tiny_recipe
from tests.toy_env import PointEnv

ITERATIONS = 4


def _arrays(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {f"{prefix}{jax.tree_util.keystr(path)}": np.asarray(leaf) for path, leaf in leaves}


def _train_toy(make_algo: Callable[[PointEnv, DataParallel], Any], parallel: DataParallel) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``ITERATIONS`` jitted iterations on 16 point envs: final agent and statistics, and how the iteration was placed."""
    env = PointEnv(16)
    algo = make_algo(env, parallel)
    agent = parallel.replicate(algo.init(jax.random.key(0)))
    env_state = parallel.reset(env.reset, jax.random.key(1), env.num_envs)
    iterate = parallel.jit_iteration(algo.iteration, env_state, env.num_envs, donate_agent=True)
    keys = jax.random.split(jax.random.key(2), ITERATIONS)
    flops = iterate.lower(agent, env_state, keys[0]).compile().cost_analysis()["flops"]
    history = []
    for key in keys:
        agent, env_state, stats = iterate(agent, env_state, key)
        history.append(jax.device_get(stats))
    stats = {f"stats/{tag}": np.array([s[tag] for s in history]) for tag in history[0]}
    facts = {"flops_per_device": flops, "envs_per_device": env_state.obs.addressable_shards[0].data.shape[0], "params_fully_replicated": _replicated(agent)}
    return {**_arrays(agent, "agent"), **stats}, facts


def _replicated(tree: Any) -> bool:
    return all(leaf.sharding.is_fully_replicated for leaf in jax.tree_util.tree_leaves(tree))


def ppo(env: PointEnv, parallel: DataParallel) -> PPO:
    return PPO(env, PPOConfig(rollout_steps=8, epochs=2, minibatches=4, hidden_sizes=(16,)), ITERATIONS, parallel=parallel)


def sac(env: PointEnv, parallel: DataParallel) -> SAC:
    config = SACConfig(hidden_sizes=(16,), batch_size=32, buffer_size=1024, steps_per_iteration=2, updates_per_iteration=2, warmup_steps=2)
    return SAC(env, config, ITERATIONS, parallel=parallel)


def runner(out: Path, devices: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The real runner on so101 reach with the cpu backend, two iterations: the saved policy and the summary."""
    folder = out / f"run{devices}"
    folder.mkdir()
    overrides = {"total_steps": 16 * 4 * 2}
    config = resolve_config("reach", "so101", "cpu", recipe=write_tiny_recipe(folder), task_config=write_short_episodes(folder), overrides=overrides)
    run = Runner.start(config, folder / "runs", Console(quiet=True), show_progress=False, devices=devices)
    result = run.train()
    policy, _ = load_policy(run.run_dir.policy_file)
    return _arrays(policy, "policy"), {"devices": result.devices, "final_eval": result.final_eval}


def main(check: str, out: Path) -> None:
    if check == "runner":
        results = [runner(out, devices) for devices in (1, 2)]
    else:
        make_algo = {"ppo": ppo, "sac": sac}[check]
        results = [_train_toy(make_algo, DataParallel(devices)) for devices in (jax.devices()[:1], jax.devices())]
    for name, (arrays, _) in zip(("one", "two"), results):
        np.savez(out / f"{name}.npz", **arrays)
    (out / "facts.json").write_text(json.dumps({"one": results[0][1], "two": results[1][1]}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
