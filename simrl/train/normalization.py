"""Running observation normalization (mean and variance over every observation seen).

The statistics are part of the policy: they are checkpointed with it and
folded into the exported ONNX graph, so the robot sees exactly the inputs the
network was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

OBS_CLIP = 10.0  # normalized observations are clipped to +-this, as in Brax and rsl_rl
MIN_STD = 1e-6  # a constant feature (e.g. a fixed goal coordinate) must not divide by zero


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class RunningNorm:
    """Mean, variance and sample count of a stream of vectors."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, size: int) -> "RunningNorm":
        return cls(mean=jnp.zeros(size, jnp.float32), var=jnp.ones(size, jnp.float32), count=jnp.zeros((), jnp.float32))

    def update(self, batch: jax.Array) -> "RunningNorm":
        """Merge a batch (..., size) with Chan et al.'s parallel formula (exact, no drift)."""
        batch = batch.reshape(-1, batch.shape[-1])
        n = jnp.asarray(batch.shape[0], jnp.float32)
        batch_mean = batch.mean(axis=0)
        batch_var = batch.var(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        return RunningNorm(mean=mean, var=m2 / total, count=total)

    @property
    def std(self) -> jax.Array:
        return jnp.maximum(jnp.sqrt(self.var), MIN_STD)

    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.clip((obs - self.mean) / self.std, -OBS_CLIP, OBS_CLIP)
