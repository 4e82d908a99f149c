"""The batched ``ReachEnv`` behind Stable-Baselines3's ``VecEnv`` interface (needs ``simrl[sb3]``).

SB3's own vectorization (``DummyVecEnv``, ``SubprocVecEnv``) steps one
Gymnasium env per world in Python; here all N worlds advance in one jitted
``ReachEnv.step``, and only the per-env ``infos`` list SB3 requires is built in
Python (empty dicts, filled for the few envs whose episode just ended). The
semantics are those of SB3's VecEnvs: finished envs restart by themselves, the
finished episode's last observation is ``infos[i]["terminal_observation"]``,
``infos[i]["TimeLimit.truncated"]`` marks a time limit (so SB3 bootstraps it),
and ``infos[i]["episode"] = {"r", "l", "t"}`` and ``infos[i]["is_success"]``
are what SB3's ``Monitor`` would add, so its ``ep_info_buffer`` and success
rate work without a wrapper.

Use ``simrl.envs.make_sb3_vec_env``, which checks that SB3 is installed first.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from simrl.envs import ReachEnv, State

# What the jitted step hands back to the host, in this order (one transfer per step).
_OUTPUTS = ("obs", "reward", "done", "truncated", "final_obs", "episode_return", "episode_length", "episode_success", "episode_final_distance")


def _step_outputs(env: ReachEnv, state: State, action: jax.Array) -> tuple[State, tuple[jax.Array, ...]]:
    state = env.step(state, action)
    fields = {"obs": state.obs, "reward": state.reward, "done": state.done, "truncated": state.truncated, "final_obs": state.final_obs}
    return state, tuple(fields[name] if name in fields else state.metrics[name] for name in _OUTPUTS)


class ReachVecEnv(VecEnv):
    """N reach worlds as one SB3 ``VecEnv``; ``env`` must auto-reset (the default)."""

    def __init__(self, env: ReachEnv, seed: int = 0):
        if not env.auto_reset:
            raise ValueError("the SB3 VecEnv needs a ReachEnv built with auto_reset=True")
        self.env = env
        self._reset_fn = jax.jit(env.reset)
        self._step_fn = jax.jit(lambda state, action: _step_outputs(env, state, action))
        self._key = jax.random.key(seed)
        self._state: State | None = None
        self._actions: jax.Array | None = None
        self._started = time.perf_counter()  # "t" of the episode infos, as SB3's Monitor reports it
        observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (env.observation_size,), np.float32)
        action_space = gymnasium.spaces.Box(-1.0, 1.0, (env.action_size,), np.float32)
        super().__init__(env.num_envs, observation_space, action_space)

    def reset(self) -> VecEnvObs:
        """Start N episodes; a seed given through ``seed()`` restarts the key stream (SB3 does so at ``learn``)."""
        if self._seeds[0] is not None:
            self._key = jax.random.key(self._seeds[0])
        self._key, key = jax.random.split(self._key)
        self._state = self._reset_fn(key)
        self._reset_seeds()
        self._reset_options()
        return np.array(self._state.obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = jnp.asarray(actions, jnp.float32)

    def step_wait(self) -> VecEnvStepReturn:
        if self._state is None or self._actions is None:
            raise RuntimeError("call reset() and step_async() before step_wait()")
        self._state, outputs = self._step_fn(self._state, self._actions)
        obs, reward, done, truncated, final_obs, ret, length, success, distance = (np.array(x) for x in jax.device_get(outputs))
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        elapsed = round(time.perf_counter() - self._started, 6)
        for i in np.flatnonzero(done):
            infos[i] = {
                "terminal_observation": final_obs[i],
                "TimeLimit.truncated": bool(truncated[i]),
                "episode": {"r": float(ret[i]), "l": int(length[i]), "t": elapsed},
                "is_success": bool(success[i]),
                "final_distance": float(distance[i]),
            }
        return obs, reward, done, infos

    def close(self) -> None:
        """Nothing to release: the worlds live in the ``ReachEnv``'s backend."""

    def _count(self, indices: VecEnvIndices) -> int:
        return len(list(self._get_indices(indices)))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The ``ReachEnv``'s attribute, once per index (all worlds share it); ``render_mode`` is None: nothing renders."""
        value = None if attr_name == "render_mode" else getattr(self.env, attr_name)
        return [value] * self._count(indices)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the shared ``ReachEnv``: only for all worlds at once."""
        if self._count(indices) != self.num_envs:
            raise ValueError(f"all {self.num_envs} worlds share one ReachEnv; set '{attr_name}' for all of them")
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        """Call a method of the shared ``ReachEnv`` once; its result is reported for each index."""
        return [getattr(self.env, method_name)(*method_args, **method_kwargs)] * self._count(indices)

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False] * self._count(indices)
