"""Multi-layer perceptrons as plain parameter pytrees.

The networks here are small MLPs (two hidden layers of 128-256 units), and the
exported ONNX graph and the deploy loop rebuild them layer by layer, so the
parameters are kept as a transparent list of ``{"w", "b"}`` dicts rather than
hidden inside a module framework.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import jax
import jax.numpy as jnp

Layers = list[dict[str, Any]]

Activation = Literal["tanh", "relu", "elu"]  # what mlp_apply runs: every trainer's config, eval and export share it
ACTIVATIONS: tuple[str, ...] = get_args(Activation)


def mlp_init(key: jax.Array, sizes: list[int], last_scale: float = 1.0) -> Layers:
    """Orthogonal weights (gain sqrt 2 in hidden layers, ``last_scale`` on the output), zero biases.

    A small ``last_scale`` (0.01 for a policy mean) starts the policy near zero
    action, as CleanRL and Brax do.
    """
    layers = []
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, fan_in, fan_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        gain = last_scale if i == len(sizes) - 2 else jnp.sqrt(2.0)
        w = jax.nn.initializers.orthogonal(scale=gain)(k, (fan_in, fan_out), jnp.float32)
        layers.append({"w": w, "b": jnp.zeros(fan_out, jnp.float32)})
    return layers


def activate(xp: Any, x: Any, activation: str) -> Any:
    """One of ``ACTIVATIONS``, for ``xp`` = numpy or jax.numpy (deploy runs without JAX)."""
    if activation == "tanh":
        return xp.tanh(x)
    if activation == "relu":
        return xp.maximum(x, 0.0)
    if activation == "elu":
        return xp.where(x > 0, x, xp.exp(xp.minimum(x, 0.0)) - 1.0)
    raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")


def mlp_apply(layers: Layers, x: Any, activation: str = "tanh", xp: Any = jnp) -> Any:
    """Hidden layers with ``activation``, a linear output layer."""
    for layer in layers[:-1]:
        x = activate(xp, x @ layer["w"] + layer["b"], activation)
    return x @ layers[-1]["w"] + layers[-1]["b"]
