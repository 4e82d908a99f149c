"""What the runner needs from a learning algorithm, and the episode statistics both algorithms report.

An algorithm owns its env batch and config; the runner only calls ``init``,
the jitted ``iteration``, and ``policy``. Any env with the ``ReachEnv``
contract works (``num_envs``, ``observation_size``, ``action_size``, pure
``reset``/``step`` returning a state with ``obs``, ``reward``, ``done``,
``truncated``, ``final_obs`` and ``metrics``), which is how the tests train
on a tiny problem.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp

from simrl.train.policy import Policy

# Env metrics that describe a finished episode: averaged over the episodes that ended.
EPISODE_TAGS = {
    "episode_return": "episode/return",
    "episode_success": "episode/success_rate",
    "episode_final_distance": "episode/final_distance",
    "episode_length": "episode/length",
}


class VecEnv(Protocol):
    """The functional batched env contract (see ``simrl.envs``)."""

    num_envs: int

    @property
    def observation_size(self) -> int: ...

    @property
    def action_size(self) -> int: ...

    def reset(self, key: jax.Array) -> Any: ...

    def step(self, state: Any, action: jax.Array) -> Any: ...


class Algorithm(Protocol):
    """A learner the runner can drive: state in, state out, one jitted iteration at a time."""

    name: str
    env: VecEnv
    env_steps_per_iteration: int

    def init(self, key: jax.Array) -> Any:
        """Fresh agent state (parameters, optimizer, normalizer, counters) as a pytree."""

    def iteration(self, agent: Any, env_state: Any, key: jax.Array) -> tuple[Any, Any, dict[str, jax.Array]]:
        """Collect ``env_steps_per_iteration`` steps and update; pure, so the runner can jit it."""

    def policy(self, agent: Any) -> Policy:
        """The deterministic policy of ``agent`` (what eval, export and deploy run)."""


def episode_statistics(done: jax.Array, metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Scalars from a (T, N) rollout: episode metrics over finished episodes, raw reward terms per step.

    ``episode/count`` is the number of episodes that ended; the episode means are
    NaN when it is zero, and the runner skips them then.
    """
    count = done.sum()
    weights = done.astype(jnp.float32)
    stats = {"episode/count": count.astype(jnp.float32)}
    for name, value in metrics.items():
        if name in EPISODE_TAGS:
            stats[EPISODE_TAGS[name]] = jnp.sum(value * weights) / jnp.where(count > 0, count, jnp.nan)
        elif not name.startswith("episode_"):
            stats[f"reward/{name}"] = value.mean()
    return stats


def tree_is_finite(tree: Any) -> jax.Array:
    """True when every floating-point leaf of ``tree`` is finite (the runner's NaN guard)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
