"""The deterministic policy a training run produces: what eval, export and deploy run.

Both algorithms reduce to the same object: normalize the observation, an MLP,
then squash the output into the action box [-1, 1] (PPO clips its Gaussian
mean, SAC takes tanh of it). ``act`` is written for ``xp`` = numpy or
jax.numpy so the deploy loop can run it without JAX.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import jax
import numpy as np

from simrl.errors import SimrlError
from simrl.train.checkpoint import load_arrays, save_checkpoint
from simrl.train.networks import ACTIVATIONS, mlp_apply
from simrl.train.normalization import OBS_CLIP, RunningNorm

Squash = Literal["clip", "tanh"]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Policy:
    """Observation statistics, layers and output squashing of a deterministic policy."""

    obs_mean: Any  # (obs_size,)
    obs_std: Any  # (obs_size,)
    layers: list[dict[str, Any]]  # [{"w": (in, out), "b": (out,)}, ...]
    activation: str = field(default="tanh", metadata={"static": True})
    squash: Squash = field(default="clip", metadata={"static": True})

    @classmethod
    def from_parts(cls, norm: RunningNorm, layers: list[dict[str, Any]], activation: str, squash: Squash) -> "Policy":
        return cls(obs_mean=norm.mean, obs_std=norm.std, layers=layers, activation=activation, squash=squash)

    def to_numpy(self) -> "Policy":
        return jax.tree_util.tree_map(np.asarray, self)

    def act(self, xp: Any, obs: Any) -> Any:
        """Action (..., action_size) in [-1, 1] for observations (..., obs_size)."""
        x = xp.clip((obs - self.obs_mean) / self.obs_std, -OBS_CLIP, OBS_CLIP)
        out = mlp_apply(self.layers, x, self.activation, xp=xp)
        return xp.tanh(out) if self.squash == "tanh" else xp.clip(out, -1.0, 1.0)


def save_policy(path: Path, policy: Policy, meta: dict[str, Any]) -> None:
    """Write the policy alone (atomically): what ``simrl eval`` and ``simrl export`` read."""
    save_checkpoint(path, policy.to_numpy(), {**meta, "activation": policy.activation, "squash": policy.squash})


def load_policy(path: Path) -> tuple[Policy, dict[str, Any]]:
    """Read a file written by ``save_policy``; the layer shapes come from the file itself."""
    arrays, meta = load_arrays(path)
    try:
        n_layers = len({name.split("/")[1] for name in arrays if name.startswith("layers/")})
        layers = [{"w": arrays[f"layers/{i}/w"], "b": arrays[f"layers/{i}/b"]} for i in range(n_layers)]
        policy = Policy(arrays["obs_mean"], arrays["obs_std"], layers, meta["activation"], meta["squash"])
    except (KeyError, IndexError) as exc:
        raise SimrlError(f"{path}: not a simrl policy file (missing {exc})") from None
    if policy.activation not in ACTIVATIONS or policy.squash not in get_args(Squash):
        raise SimrlError(f"{path}: unknown activation {policy.activation!r} or squash {policy.squash!r}")
    return policy, meta
