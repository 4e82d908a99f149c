"""Success as X/N: run the deterministic policy for one full episode in each of N fresh worlds.

Goals and start poses come from the env's own sampler under ``seed``, so the
same seed gives the same goals (and, on the deterministic ``cpu`` backend, the
same result), and a seed the training never drew gives an honest figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simrl.envs import ReachEnv
from simrl.train.background_compile import BackgroundCompile
from simrl.train.policy import Policy


@dataclass(frozen=True)
class EvalResult:
    """Outcome of ``episodes`` evaluation episodes."""

    episodes: int
    successes: int
    success_rate: float
    mean_final_distance: float
    median_final_distance: float
    p95_final_distance: float
    mean_return: float
    success_radius: float
    seed: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"success {self.successes}/{self.episodes} ({100 * self.success_rate:.1f} %), "
            f"final distance mean {1000 * self.mean_final_distance:.1f} mm, p95 {1000 * self.p95_final_distance:.1f} mm"
        )


class Evaluator:
    """N reach episodes in parallel, jitted once and reused for every policy of a run."""

    def __init__(self, env: ReachEnv):
        if env.auto_reset:
            raise ValueError("the evaluation env must be built with auto_reset=False")
        self.env = env
        self._run = jax.jit(self._episodes)
        self._compiling: BackgroundCompile | None = None

    def compile_in_background(self, policy: Policy) -> None:
        """Compile the evaluation for policies shaped like ``policy`` while the caller goes on (training, say).

        The first evaluation would otherwise stop training for the whole
        compilation: on a GPU, about 15 s of a one-minute run.
        """
        self._compiling = BackgroundCompile(self._run, policy, jax.random.key(0), name="evaluator-compile")

    def _executable(self) -> Any:
        compiled = self._compiling.wait() if self._compiling is not None else None
        return compiled if compiled is not None else self._run

    def _episodes(self, policy: Policy, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        def step(state, _):
            state = self.env.step(state, policy.act(jnp, state.obs))
            return state, None

        state, _ = jax.lax.scan(step, self.env.reset(key), None, length=self.env.task.config.episode_steps)
        return state.metrics["distance"], state.episode_return

    def __call__(self, policy: Policy, seed: int) -> EvalResult:
        distance, returns = (np.asarray(x, np.float64) for x in self._executable()(policy, jax.random.key(seed)))
        distance = np.where(np.isfinite(distance), distance, np.inf)  # a world that blew up is a failure
        successes = int(np.sum(self.env.task.is_success(distance)))
        n = self.env.num_envs
        return EvalResult(
            episodes=n,
            successes=successes,
            success_rate=successes / n,
            mean_final_distance=float(np.mean(distance)),
            median_final_distance=float(np.median(distance)),
            p95_final_distance=float(np.percentile(distance, 95)),
            mean_return=float(np.mean(returns)),
            success_radius=self.env.task.config.success_radius,
            seed=seed,
        )
