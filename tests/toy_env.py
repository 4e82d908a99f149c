"""A tiny batched env with the ReachEnv contract: a point in the plane steered to a goal.

Learners are tested on it because it is solved in seconds: a random policy
scores about -16 per episode, one that heads straight for the goal about -3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp

EPISODE_STEPS = 20
SPEED = 0.2  # distance moved per step at full action
SUCCESS_RADIUS = 0.1


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class PointState:
    pos: jax.Array
    goal: jax.Array
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    step_count: jax.Array
    episode_return: jax.Array
    metrics: dict[str, jax.Array]
    key: jax.Array


class PointEnv:
    """N points; observation (pos, goal - pos), action a velocity in [-1, 1]^2."""

    observation_size = 4
    action_size = 2

    def __init__(self, num_envs: int):
        self.num_envs = num_envs

    def _fresh(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        pos_key, goal_key = jax.random.split(key)
        shape = (self.num_envs, 2)
        return jax.random.uniform(pos_key, shape, minval=-1, maxval=1), jax.random.uniform(goal_key, shape, minval=-1, maxval=1)

    @staticmethod
    def _obs(pos: jax.Array, goal: jax.Array) -> jax.Array:
        return jnp.concatenate([pos, goal - pos], axis=-1)

    def reset(self, key: jax.Array) -> PointState:
        key, sub = jax.random.split(key)
        pos, goal = self._fresh(sub)
        zeros = jnp.zeros(self.num_envs)
        obs = self._obs(pos, goal)
        metrics = {"distance": zeros, "episode_return": zeros, "episode_success": zeros, "episode_length": zeros}
        false = jnp.zeros(self.num_envs, bool)
        return PointState(pos, goal, obs, zeros, false, false, obs, jnp.zeros(self.num_envs, jnp.int32), zeros, metrics, key)

    def step(self, state: PointState, action: jax.Array) -> PointState:
        pos = state.pos + SPEED * jnp.clip(action, -1.0, 1.0)
        distance = jnp.linalg.norm(state.goal - pos, axis=-1)
        reward = -distance
        step_count = state.step_count + 1
        done = step_count >= EPISODE_STEPS
        episode_return = state.episode_return + reward
        obs = self._obs(pos, state.goal)
        metrics = {
            "distance": distance,
            "episode_return": episode_return,
            "episode_success": (distance < SUCCESS_RADIUS).astype(jnp.float32),
            "episode_length": step_count.astype(jnp.float32),
        }
        key, sub = jax.random.split(state.key)
        new_pos, new_goal = self._fresh(sub)
        mask = done[:, None]
        pos, goal = jnp.where(mask, new_pos, pos), jnp.where(mask, new_goal, state.goal)
        return dataclasses.replace(
            state,
            pos=pos,
            goal=goal,
            obs=self._obs(pos, goal),
            reward=reward,
            done=done,
            truncated=done,
            final_obs=obs,
            step_count=jnp.where(done, 0, step_count),
            episode_return=jnp.where(done, 0.0, episode_return),
            metrics=metrics,
            key=key,
        )
