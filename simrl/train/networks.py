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
import numpy as np

Layers = list[dict[str, Any]]

Activation = Literal["tanh", "relu", "elu"]  # what mlp_apply runs: every trainer's config, eval and export share it
ACTIVATIONS: tuple[str, ...] = get_args(Activation)


def mlp_init(key: jax.Array, sizes: list[int], last_scale: float = 1.0) -> Layers:
    """Orthogonal weights (gain sqrt 2 in hidden layers, ``last_scale`` on the output), zero biases.

    A small ``last_scale`` (0.01 for a policy mean) starts the policy near zero
    action, as CleanRL and Brax do. Drawn with numpy from the key's bits:
    ``jax.nn.initializers.orthogonal`` compiles a QR for every layer shape,
    1.5-2.5 s of every training start for a few kB of weights.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)))
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        gain = last_scale if i == len(sizes) - 2 else np.sqrt(2.0)
        weights = gain * _orthogonal(rng, fan_in, fan_out)
        layers.append({"w": jnp.asarray(weights, jnp.float32), "b": jnp.asarray(np.zeros(fan_out, np.float32))})
    return layers


def _orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A ``rows x cols`` matrix with orthonormal columns (or rows, if wider than tall): the Q of a Gaussian
    matrix's QR, signs fixed by R's diagonal so that Q is uniformly distributed (Saxe et al. 2014; Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    return q if rows >= cols else q.T


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
