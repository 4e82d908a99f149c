"""Physics backends that step a batch of MuJoCo worlds (see ``base.Backend``)."""

from __future__ import annotations

import jax
import mujoco

from simrl.errors import SimrlError
from simrl.physics.base import PER_WORLD_FIELDS, Backend, ModelParams, PhysicsState, StepOutput, delayed_controls

BACKENDS = ("auto", "cpu", "mjx")

__all__ = ["BACKENDS", "PER_WORLD_FIELDS", "Backend", "ModelParams", "PhysicsState", "StepOutput", "delayed_controls", "make_backend", "resolve_backend"]


def resolve_backend(name: str) -> str:
    """``auto`` means ``mjx`` when JAX sees a GPU, else ``cpu`` (MJX is ~200x slower on a CPU)."""
    if name not in BACKENDS:
        raise SimrlError(f"unknown backend '{name}' (allowed: {', '.join(BACKENDS)})")
    if name != "auto":
        return name
    return "mjx" if any(d.platform == "gpu" for d in jax.devices()) else "cpu"


def make_backend(name: str, model: mujoco.MjModel, substeps: int, num_worlds: int, mjx_impl: str = "jax") -> Backend:
    """Build the named backend (``auto`` resolved) for ``num_worlds`` copies of ``model``."""
    resolved = resolve_backend(name)
    if num_worlds < 1:
        raise SimrlError(f"number of environments must be at least 1, got {num_worlds}")
    if resolved == "cpu":
        from simrl.physics.cpu import CpuBackend

        return CpuBackend(model, substeps, num_worlds)
    from simrl.physics.mjx import MjxBackend

    return MjxBackend(model, substeps, num_worlds, impl=mjx_impl)
