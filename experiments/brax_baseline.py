"""The peer baseline: Brax's own PPO (``brax`` from PyPI) trained on simrl's MJX reach env.

Brax's trainer runs unchanged; only the env is ours, behind Brax's ``Env``
interface (``wrap_env=False``: our env already batches, auto-resets and marks
truncation). Hyperparameters mirror simrl's PPO recipe for the backend (envs,
rollout length, minibatches, epochs, learning rate, discount, GAE, clipping,
network sizes, activation), and success is measured by simrl's own
``Evaluator`` on the same 200 held-out goals at the same cadence (every
``eval_every`` PPO iterations), so the two wall-clocks to 95 % compare like
for like. Wall-clock counts from the start of this process, compilation
included, as for ``simrl train``.

    python experiments/brax_baseline.py --robot so101 --envs 4096 --minutes 3 --json

Needs ``brax`` (pip install brax); meant for the GPU run in experiments/gpu_bench.py.
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Callable  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from brax.envs.base import Env as BraxEnv  # noqa: E402
from brax.envs.base import State as BraxState  # noqa: E402
from brax.training.agents.ppo import networks as ppo_networks  # noqa: E402
from brax.training.agents.ppo import train as ppo_train  # noqa: E402
from flax import linen  # noqa: E402
from simrl_runs import first_at  # noqa: E402

from simrl.envs import ReachEnv, State  # noqa: E402
from simrl.physics import make_backend  # noqa: E402
from simrl.robots import load_robot  # noqa: E402
from simrl.train.config import resolve_config  # noqa: E402
from simrl.train.evaluation import Evaluator  # noqa: E402

ACTIVATIONS = {"tanh": linen.tanh, "relu": linen.relu, "elu": linen.elu}


def _replicate(tree: Any, devices: list[Any]) -> Any:
    """``jax.device_put_replicated`` for JAX versions that removed it: a leading axis of one copy per device."""
    return jax.tree_util.tree_map(lambda a: jnp.stack([jnp.asarray(a)] * len(devices)), tree)


if not hasattr(jax, "device_put_replicated"):  # brax 0.14.2 still calls it; JAX 0.10 removed it
    jax.device_put_replicated = _replicate


class BraxReach(BraxEnv):
    """simrl's batched ReachEnv seen through Brax's ``Env``: our ``State`` rides in ``pipeline_state``."""

    def __init__(self, env: ReachEnv):
        self.env = env

    def _wrap(self, state: State) -> BraxState:
        done = state.done.astype(jnp.float32)
        return BraxState(
            pipeline_state=state,
            obs=state.obs,
            reward=state.reward,
            done=done,
            metrics={},
            info={
                "truncation": state.truncated.astype(jnp.float32),
                "time_out": state.truncated.astype(jnp.float32),
                "episode_done": done,
                "episode_metrics": {"success": state.metrics["episode_success"], "return": state.metrics["episode_return"]},
            },
        )

    def reset(self, rng: jax.Array) -> BraxState:
        # Brax hands one key per env; ours draws all N worlds from one.
        return self._wrap(self.env.reset(rng if rng.ndim == 1 else rng[0]))

    def step(self, state: BraxState, action: jax.Array) -> BraxState:
        return self._wrap(self.env.step(state.pipeline_state, action))

    @property
    def observation_size(self) -> int:
        return self.env.observation_size

    @property
    def action_size(self) -> int:
        return self.env.action_size

    @property
    def backend(self) -> str:
        return "mjx"


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class BraxPolicy:
    """Brax's deterministic policy with the ``act(xp, obs)`` face simrl's Evaluator runs."""

    params: Any
    make_policy: Callable[..., Any] = field(metadata={"static": True})

    def act(self, xp: Any, obs: jax.Array) -> jax.Array:
        action, _ = self.make_policy(self.params, deterministic=True)(obs, jax.random.key(0))
        return action


class Reached(Exception):
    """Raised from Brax's callback to stop training once the target success rate is measured."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="so101")
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--backend", default="mjx")
    parser.add_argument("--steps", type=int, default=20_000_000, help="env-step cap")
    parser.add_argument("--minutes", type=float, default=3.0, help="wall-clock cap")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config = resolve_config("reach", args.robot, args.backend, algo="ppo", overrides={"num_envs": args.envs, "seed": args.seed})
    ppo = config.ppo
    robot = load_robot(args.robot)
    physics = make_backend(config.backend if config.backend != "auto" else args.backend, robot.model, robot.substeps, config.num_envs)
    env = BraxReach(ReachEnv(robot, config.num_envs, backend=physics, task_config=config.task_settings))
    eval_physics = make_backend(args.backend, robot.model, robot.substeps, config.eval_episodes)
    evaluator = Evaluator(ReachEnv(robot, config.eval_episodes, backend=eval_physics, task_config=config.task_settings, auto_reset=False))

    steps_per_iteration = config.num_envs * ppo.rollout_steps
    eval_steps = steps_per_iteration * config.eval_every
    num_evals = max(2, math.ceil(args.steps / eval_steps))
    curve: list[dict[str, float]] = []

    def on_params(env_steps: int, make_policy: Callable[..., Any], params: Any) -> None:
        wall = time.perf_counter() - PROCESS_START  # taken before the evaluation, as simrl's runner does
        result = evaluator(BraxPolicy(params=params, make_policy=make_policy), config.eval_seed)
        curve.append({"env_steps": env_steps, "wall_time_s": round(wall, 2), "success_rate": result.success_rate})
        print(f"brax ppo: {env_steps:>10} steps {wall:7.1f} s success {result.success_rate:.3f}", file=sys.stderr, flush=True)
        if result.success_rate >= args.target or wall > 60 * args.minutes:
            raise Reached

    network_factory = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=tuple(ppo.hidden_sizes),
        value_hidden_layer_sizes=tuple(ppo.hidden_sizes),
        activation=ACTIVATIONS[ppo.activation],
        init_noise_std=math.exp(ppo.init_log_std),
    )
    try:
        ppo_train.train(
            environment=env,
            num_timesteps=num_evals * eval_steps,
            wrap_env=False,
            num_envs=config.num_envs,
            episode_length=config.task_settings.episode_steps,
            learning_rate=ppo.learning_rate,
            entropy_cost=ppo.entropy_coef,
            discounting=ppo.gamma,
            gae_lambda=ppo.gae_lambda,
            clipping_epsilon=ppo.clip_ratio,
            vf_loss_coefficient=ppo.value_coef,
            max_grad_norm=ppo.max_grad_norm,
            unroll_length=ppo.rollout_steps,
            batch_size=config.num_envs // ppo.minibatches,
            num_minibatches=ppo.minibatches,
            num_updates_per_batch=ppo.epochs,
            normalize_observations=True,
            bootstrap_on_timeout=True,
            network_factory=network_factory,
            seed=args.seed,
            num_evals=num_evals,
            run_evals=False,
            policy_params_fn=on_params,
        )
    except Reached:
        pass
    reached = first_at(curve, args.target)
    record = {
        "trainer": "brax-ppo",
        "robot": args.robot,
        "num_envs": config.num_envs,
        "target": args.target,
        "time_to_target_s": reached["wall_time_s"] if reached else None,
        "steps_to_target": reached["env_steps"] if reached else None,
        "process_wall_s": round(time.perf_counter() - PROCESS_START, 1),
        "device": str(jax.devices()[0].device_kind),
        "curve": curve,
    }
    print(json.dumps(record) if args.json else f"brax ppo: {record['time_to_target_s']} s to {args.target:.0%} ({record['steps_to_target']} steps)")


if __name__ == "__main__":
    main()
