"""Draw per-world values from a resolved profile: model fields for the physics, the rest for the env layer.

Everything here is pure JAX driven by an explicit key, so sampling is seeded,
reproducible and runs inside the jitted env (a world's values are redrawn
when its episode restarts). Model fields are built from the nominal model
and handed to either backend as ``{field: (N, ...)}``; both apply them the
same way, which is what makes cpu/mjx parity hold under randomization.
What each kind draws and writes lives in ``apply.py``, shared with the
deploy emulator's numpy "reality"; this module binds it to JAX keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from simrl.randomization import apply
from simrl.randomization.profile import ParameterSpec, ResolvedParameter, ResolvedProfile
from simrl.robots import Robot

class KeySource:
    """A ``RandomSource`` over a JAX key (each key is used for one draw, as ``jax.random`` asks)."""

    def __init__(self, key: jax.Array):
        self.key = key

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> jax.Array:
        return jax.random.uniform(self.key, shape, minval=low, maxval=high)

    def normal(self, shape: tuple[int, ...]) -> jax.Array:
        return jax.random.normal(self.key, shape)

    def split(self, n: int) -> list["KeySource"]:
        return [KeySource(k) for k in jax.random.split(self.key, n)]


def draw(spec: ParameterSpec, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Samples of ``spec``'s distribution, float32."""
    return apply.draw(jnp, KeySource(key), spec, shape)


def draw_latency_steps(spec: ParameterSpec, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Whole control periods: uniform means every integer from low to high alike; others round down."""
    return apply.draw_latency_steps(jnp, KeySource(key), spec, shape)


def max_latency_steps(profile: ResolvedProfile | None) -> int:
    """The largest whole-period latency the profile can draw (sizes the env's command history)."""
    param = profile.get("latency_steps") if profile else None
    if param is None:
        return 0
    _, high = param.spec.bounds()
    return int(np.floor(high))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Domain:
    """One episode's randomized values for N worlds (a pytree inside the env state)."""

    model: dict[str, jax.Array]  # per-world model fields, (N, ...) each
    values: dict[str, jax.Array]  # env-layer kinds drawn per episode: latency, resolution, start offset, goal scale, noise biases


class DomainSampler:
    """Draws ``Domain``s for one robot and profile; ``None`` profile draws nothing (zero cost)."""

    def __init__(self, robot: Robot, profile: ResolvedProfile | None):
        self.robot = robot
        self.profile = profile
        fields = apply.nominal_fields(robot, profile.model_fields if profile else ())
        self._nominal = {field: jnp.asarray(value, jnp.float32) for field, value in fields.items()}
        self._index = apply.ModelIndex.for_robot(robot)

    @property
    def parameters(self) -> tuple[ResolvedParameter, ...]:
        return self.profile.parameters if self.profile else ()

    def sample(self, key: jax.Array, num_worlds: int) -> Domain:
        """Fresh episode values for ``num_worlds`` worlds."""
        model, values = apply.sample_episode(jnp, KeySource(key), self.parameters, self._nominal, self._index, num_worlds)
        return Domain(model=model, values=values)

    def step_noise(self, key: jax.Array, num_worlds: int) -> dict[str, jax.Array]:
        """Noise kinds with ``resample: step``, drawn anew for this control step."""
        return apply.sample_step_noise(jnp, KeySource(key), self.parameters, num_worlds)

    def summary(self, domain: Domain) -> dict[str, np.ndarray]:
        """Flat ``name -> samples`` for TensorBoard histograms and tables (one entry per parameter and target)."""
        out: dict[str, np.ndarray] = {}
        for field, value in domain.model.items():
            out[f"model/{field}"] = np.asarray(value).reshape(value.shape[0], -1)
        for kind, value in domain.values.items():
            out[f"env/{kind}"] = np.asarray(value).reshape(value.shape[0], -1)
        return out


def spread_over_joints(value: jax.Array, param: ResolvedParameter, n_arm: int) -> jax.Array:
    """Values (N, covered joints) placed into (N, n_arm), zero on the joints the parameter does not cover."""
    return apply.spread_over_joints(jnp, value, param, n_arm)
