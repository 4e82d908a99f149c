"""Proximal Policy Optimization over a batch of functional envs, one jitted function per iteration.

An iteration is: ``rollout_steps`` env steps for all envs under ``lax.scan``,
GAE advantages, then ``epochs`` x ``minibatches`` clipped-surrogate updates —
all inside one XLA computation, as in Brax's PPO. The details follow the
"37 implementation details of PPO" (Huang et al., 2022) and rsl_rl:
state-independent log-std, orthogonal init, advantage normalization per
minibatch, global gradient clipping, running observation normalization,
and a linear or KL-adaptive learning rate.

Time limits are not terminations: at a truncated step the value of the
episode's last observation (``final_obs``) is bootstrapped, and only the
advantage recursion is cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
import pydantic

from simrl.config import StrictModel
from simrl.train.algorithm import VecEnv, episode_statistics
from simrl.train.networks import Activation, Layers, mlp_apply, mlp_init
from simrl.train.normalization import RunningNorm
from simrl.train.parallel import DataParallel
from simrl.train.policy import Policy

ADAPTIVE_LR_BOUNDS = (1e-5, 1e-2)  # rsl_rl's clamp for the KL-adaptive rate


class PPOConfig(StrictModel):
    """PPO hyperparameters (the ``ppo:`` section of a recipe)."""

    rollout_steps: int = pydantic.Field(16, ge=1, le=10_000, description="env steps per env per iteration")
    epochs: int = pydantic.Field(4, ge=1, le=100)
    minibatches: int = pydantic.Field(8, ge=1, le=1024)
    learning_rate: float = pydantic.Field(1e-3, gt=0, le=1.0)
    lr_schedule: Literal["linear", "constant", "adaptive_kl"] = "linear"
    lr_final_fraction: float = pydantic.Field(0.05, ge=0, le=1.0, description="linear: rate at the end / at the start")
    desired_kl: float = pydantic.Field(0.01, gt=0, description="adaptive_kl: target approximate KL per epoch")
    gamma: float = pydantic.Field(0.99, gt=0, le=1.0)
    gae_lambda: float = pydantic.Field(0.95, ge=0, le=1.0)
    clip_ratio: float = pydantic.Field(0.2, gt=0, le=1.0)
    value_coef: float = pydantic.Field(0.5, ge=0)
    entropy_coef: float = pydantic.Field(0.0, ge=0)
    max_grad_norm: float = pydantic.Field(0.5, gt=0)
    hidden_sizes: tuple[int, ...] = pydantic.Field((128, 128), min_length=1)
    activation: Activation = "tanh"
    init_log_std: float = pydantic.Field(-0.5, ge=-5, le=2)
    normalize_observations: bool = True
    normalize_advantages: bool = True


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class PPOAgent:
    """Everything PPO carries between iterations (a pytree; checkpointed whole)."""

    params: dict[str, Any]  # {"policy": Layers, "value": Layers, "log_std": (action_size,)}
    opt_state: Any
    norm: RunningNorm
    learning_rate: jax.Array  # current rate (the adaptive schedule changes it)
    iteration: jax.Array  # int32, iterations done


class Transition(NamedTuple):
    """One env step of a rollout, for all envs (leading axes (T, N) once stacked)."""

    obs: jax.Array  # normalized, as the policy saw it
    raw_obs: jax.Array
    action: jax.Array  # the unclipped Gaussian sample
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array
    terminated: jax.Array
    final_obs: jax.Array  # normalized last observation of the step's episode
    metrics: dict[str, jax.Array]


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalized advantage estimates and value targets for (T, N) arrays.

    ``next_values[t]`` is V of the observation that followed step t *in the same
    episode* (the env's ``final_obs``), so a time-limit truncation bootstraps
    from it; ``terminated`` removes the bootstrap; ``done`` (either) stops the
    recursion from leaking into the next episode.
    """
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values

    def backward(carry: jax.Array, x: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        delta, ended = x
        advantage = delta + gamma * lam * (1.0 - ended) * carry
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, done.astype(values.dtype)), reverse=True)
    return advantages, advantages + values


def gaussian_log_prob(action: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log density of a diagonal Gaussian, summed over the action dimensions."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    return jnp.sum(log_std + 0.5 * math.log(2 * math.pi * math.e))


class PPO:
    """PPO for one env batch; ``total_iterations`` sets the length of the linear rate decay.

    With ``parallel`` over several devices, each minibatch is split over them
    (see ``simrl.train.parallel``), so its size must divide evenly.
    """

    name = "ppo"

    def __init__(self, env: VecEnv, config: PPOConfig, total_iterations: int, parallel: DataParallel | None = None):
        batch = env.num_envs * config.rollout_steps
        if batch % config.minibatches:
            raise ValueError(f"envs x rollout_steps = {batch} is not divisible by minibatches = {config.minibatches}")
        self.parallel = parallel or DataParallel()
        self.parallel.check_divides(batch // config.minibatches, "the PPO minibatch size (envs x rollout_steps / minibatches)")
        self.env = env
        self.config = config
        self.total_iterations = max(total_iterations, 1)
        self.env_steps_per_iteration = batch
        self.optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.scale_by_adam(eps=1e-5))

    def init(self, key: jax.Array) -> PPOAgent:
        cfg = self.config
        policy_key, value_key = jax.random.split(key)
        obs_size, action_size = self.env.observation_size, self.env.action_size
        hidden = list(cfg.hidden_sizes)
        params = {
            "policy": mlp_init(policy_key, [obs_size, *hidden, action_size], last_scale=0.01),
            "value": mlp_init(value_key, [obs_size, *hidden, 1], last_scale=1.0),
            "log_std": jnp.full(action_size, cfg.init_log_std, jnp.float32),
        }
        return PPOAgent(
            params=params,
            opt_state=self.optimizer.init(params),
            norm=RunningNorm.create(obs_size),
            learning_rate=jnp.asarray(cfg.learning_rate, jnp.float32),
            iteration=jnp.zeros((), jnp.int32),
        )

    def policy(self, agent: PPOAgent) -> Policy:
        return Policy.from_parts(agent.norm, agent.params["policy"], self.config.activation, "clip")

    def _mean(self, layers: Layers, obs: jax.Array) -> jax.Array:
        return mlp_apply(layers, obs, self.config.activation)

    def _value(self, layers: Layers, obs: jax.Array) -> jax.Array:
        return mlp_apply(layers, obs, self.config.activation)[..., 0]

    def _rollout(self, agent: PPOAgent, env_state: Any, key: jax.Array) -> tuple[Any, Transition]:
        params, norm = agent.params, agent.norm

        def step(carry: tuple[Any, jax.Array], _: None) -> tuple[tuple[Any, jax.Array], Transition]:
            state, key = carry
            key, noise_key = jax.random.split(key)
            obs = norm(state.obs)
            mean = self._mean(params["policy"], obs)
            action = mean + jnp.exp(params["log_std"]) * jax.random.normal(noise_key, mean.shape)
            next_state = self.env.step(state, action)
            transition = Transition(
                obs=obs,
                raw_obs=state.obs,
                action=action,
                log_prob=gaussian_log_prob(action, mean, params["log_std"]),
                value=self._value(params["value"], obs),
                reward=next_state.reward,
                done=next_state.done,
                terminated=next_state.done & ~next_state.truncated,
                final_obs=norm(next_state.final_obs),
                metrics=next_state.metrics,
            )
            return (next_state, key), transition

        (env_state, _), trajectory = jax.lax.scan(step, (env_state, key), None, length=self.config.rollout_steps)
        return env_state, trajectory

    def _loss(self, params: dict[str, Any], batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        cfg = self.config
        mean = self._mean(params["policy"], batch["obs"])
        log_prob = gaussian_log_prob(batch["action"], mean, params["log_std"])
        log_ratio = log_prob - batch["log_prob"]
        ratio = jnp.exp(log_ratio)
        advantages = batch["advantages"]
        if cfg.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        surrogate = jnp.minimum(ratio * advantages, jnp.clip(ratio, 1 - cfg.clip_ratio, 1 + cfg.clip_ratio) * advantages)
        policy_loss = -surrogate.mean()
        value_loss = 0.5 * jnp.mean((self._value(params["value"], batch["obs"]) - batch["returns"]) ** 2)
        entropy = gaussian_entropy(params["log_std"])
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
        stats = {
            "loss/policy": policy_loss,
            "loss/value": value_loss,
            "loss/entropy": -entropy,
            "train/approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
            "train/clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > cfg.clip_ratio),
        }
        return loss, stats

    def _scheduled_rate(self, agent: PPOAgent) -> jax.Array:
        cfg = self.config
        if cfg.lr_schedule == "linear":
            progress = jnp.minimum(agent.iteration / self.total_iterations, 1.0)
            return jnp.asarray(cfg.learning_rate * (1.0 - (1.0 - cfg.lr_final_fraction) * progress), jnp.float32)
        if cfg.lr_schedule == "constant":
            return jnp.asarray(cfg.learning_rate, jnp.float32)
        return agent.learning_rate

    def _update(self, agent: PPOAgent, data: dict[str, jax.Array], key: jax.Array) -> tuple[PPOAgent, dict[str, jax.Array]]:
        """``epochs`` passes over the flattened rollout in shuffled minibatches."""
        cfg = self.config
        size = data["obs"].shape[0]
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)

        def minibatch_step(carry: tuple[Any, Any, jax.Array], batch: dict[str, jax.Array]):
            params, opt_state, rate = carry
            (_, stats), grads = grad_fn(params, batch)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            params = jax.tree_util.tree_map(lambda p, u: p - rate * u, params, updates)
            return (params, opt_state, rate), {**stats, "train/grad_norm": optax.tree.norm(grads)}

        def epoch(carry: tuple[Any, Any, jax.Array], epoch_key: jax.Array):
            order = jax.random.permutation(epoch_key, size)
            batches = jax.tree_util.tree_map(lambda x: x[order].reshape(cfg.minibatches, -1, *x.shape[1:]), data)
            batches = self.parallel.split(batches, axis=1)  # each device takes its share of every minibatch
            carry, stats = jax.lax.scan(minibatch_step, carry, batches)
            stats = jax.tree_util.tree_map(jnp.mean, stats)
            params, opt_state, rate = carry
            if cfg.lr_schedule == "adaptive_kl":
                kl = stats["train/approx_kl"]
                rate = jnp.where(kl > 2 * cfg.desired_kl, rate / 1.5, jnp.where(kl < cfg.desired_kl / 2, rate * 1.5, rate))
                rate = jnp.clip(rate, *ADAPTIVE_LR_BOUNDS)
            return (params, opt_state, rate), stats

        rate = self._scheduled_rate(agent)
        start = (agent.params, agent.opt_state, rate)
        (params, opt_state, rate), stats = jax.lax.scan(epoch, start, jax.random.split(key, cfg.epochs))
        stats = jax.tree_util.tree_map(jnp.mean, stats)
        stats["train/learning_rate"] = rate
        return PPOAgent(params=params, opt_state=opt_state, norm=agent.norm, learning_rate=rate, iteration=agent.iteration), stats

    def iteration(self, agent: PPOAgent, env_state: Any, key: jax.Array) -> tuple[PPOAgent, Any, dict[str, jax.Array]]:
        cfg = self.config
        rollout_key, update_key = jax.random.split(key)
        env_state, traj = self._rollout(agent, env_state, rollout_key)
        next_values = self._value(agent.params["value"], traj.final_obs)
        advantages, returns = compute_gae(
            traj.reward, traj.value, next_values, traj.terminated.astype(jnp.float32), traj.done, cfg.gamma, cfg.gae_lambda
        )
        flat = {
            "obs": traj.obs,
            "action": traj.action,
            "log_prob": traj.log_prob,
            "advantages": advantages,
            "returns": returns,
        }
        flat = jax.tree_util.tree_map(lambda x: x.reshape(-1, *x.shape[2:]), flat)
        agent, stats = self._update(agent, flat, update_key)
        norm = agent.norm.update(traj.raw_obs) if cfg.normalize_observations else agent.norm
        agent = PPOAgent(params=agent.params, opt_state=agent.opt_state, norm=norm, learning_rate=agent.learning_rate, iteration=agent.iteration + 1)
        residual_var = jnp.var(returns - traj.value)
        stats.update(episode_statistics(traj.done, traj.metrics))
        stats["train/explained_variance"] = 1.0 - residual_var / (jnp.var(returns) + 1e-8)
        stats["train/entropy"] = gaussian_entropy(agent.params["log_std"])
        stats["train/action_std"] = jnp.exp(agent.params["log_std"]).mean()
        return agent, env_state, stats
