"""The contract every physics backend meets.

A backend steps N MuJoCo worlds of one robot for a fixed number of physics
substeps per control step, from inside jitted JAX code. The state carried
between steps is only ``qpos`` and ``qvel`` (the robots have no activations), so
states from different backends are interchangeable and comparable.

Per-world model parameters (for domain randomization) are passed as a mapping
from an MjModel field name to an array with a leading world axis, e.g.
``{"dof_damping": (N, nv)}``; ``"opt.gravity"`` reaches into the options.

Controls come either as ``(N, nu)``, held for every substep of the control
step, or as ``(N, substeps, nu)``, one per substep. The second form models
actuation latency finer than a control period: ``delayed_controls`` builds it so
that the previous command still acts for the first few substeps.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Protocol

import jax.numpy as jnp
import mujoco
import numpy as np

from simrl.errors import SimrlError

Array = Any  # a jax.Array inside jit, a numpy array outside
ModelParams = Mapping[str, Array]

# Fields a backend may override per world. They are read by the dynamics every
# step and need no recompilation; both backends apply them the same way.
PER_WORLD_FIELDS = (
    "body_mass",
    "body_ipos",
    "body_inertia",
    "dof_damping",
    "dof_frictionloss",
    "dof_armature",
    "actuator_gainprm",
    "actuator_biasprm",
    "actuator_forcerange",
    "geom_friction",
    "opt.gravity",
)


class PhysicsState(NamedTuple):
    """Positions and velocities of N worlds: ``qpos`` (N, nq), ``qvel`` (N, nv)."""

    qpos: Array
    qvel: Array


class StepOutput(NamedTuple):
    """What one control step returns.

    ``sensordata`` (N, nsensordata) follows MuJoCo's convention: sensors are
    evaluated at the start of the last physics substep, i.e. one substep before
    ``state`` (see MEASURED.md, pitfall 1). Both backends return the same.
    """

    state: PhysicsState
    sensordata: Array


class Backend(Protocol):
    """Steps a batch of worlds; ``step`` is traceable by ``jax.jit``.

    ``ctrl`` is ``(N, nu)``, held for all ``substeps`` physics steps, or
    ``(N, substeps, nu)``, where substep ``i`` applies ``ctrl[:, i]``. Any other
    shape raises ``SimrlError``.
    """

    name: str
    num_worlds: int
    substeps: int

    def step(self, state: PhysicsState, ctrl: Array, params: ModelParams | None = None, changed: Array | None = None) -> StepOutput:
        """Advance every world by ``substeps`` physics steps under ``ctrl`` (N, nu) or (N, substeps, nu).

        ``changed`` (N,) bool is the caller's promise that only those worlds'
        ``params`` may differ from the previous step's (the env knows: a
        world's physics is redrawn only when its episode starts); ``None``
        promises nothing. The first step with ``params`` must mark every world.
        The cpu backend uses it to write only those worlds' fields, and to
        have them handed over only on steps where some world changed.
        """
        ...


def model_field(model: Any, name: str) -> Any:
    """Read a (possibly dotted, e.g. ``opt.gravity``) field of an MjModel or mjx.Model."""
    value = model
    for part in name.split("."):
        value = getattr(value, part)
    return value


def check_ctrl(ctrl: Array, num_worlds: int, substeps: int, nu: int) -> bool:
    """Refuse a control shape the contract does not allow; True when it gives one control per substep.

    Without the check a wrong shape fails deep inside the physics (or, on the
    ``cpu`` backend, broadcasts silently into the rollout buffer).
    """
    shape = tuple(np.shape(ctrl))
    held, per_substep = (num_worlds, nu), (num_worlds, substeps, nu)
    if shape not in (held, per_substep):
        raise SimrlError(f"ctrl has shape {shape}, expected {held} (held for every substep) or {per_substep} (one per substep)")
    return shape == per_substep


def delayed_controls(previous_ctrl: Array, new_ctrl: Array, delay_substeps: Array, substeps: int) -> Array:
    """Per-substep controls (N, substeps, nu) for a command that reaches the actuators late.

    Substep ``i`` of world ``w`` still applies ``previous_ctrl[w]`` while
    ``i < delay_substeps[w]`` and ``new_ctrl[w]`` from then on, so a delay of 0
    is no latency and a delay of ``substeps`` keeps the previous command for the
    whole control step. ``delay_substeps`` is an int array (N,). Jittable with
    ``substeps`` static, so the delay can be drawn per world inside the
    training loop.
    """
    late = jnp.arange(substeps)[None, :] < jnp.asarray(delay_substeps)[:, None]
    return jnp.where(late[:, :, None], jnp.asarray(previous_ctrl)[:, None, :], jnp.asarray(new_ctrl)[:, None, :])


def check_params(model: mujoco.MjModel, params: ModelParams, num_worlds: int) -> None:
    """Refuse unknown fields and wrong shapes before they reach the physics."""
    for name, value in params.items():
        if name not in PER_WORLD_FIELDS:
            raise SimrlError(f"model parameter '{name}' cannot vary per world (allowed: {', '.join(PER_WORLD_FIELDS)})")
        expected = (num_worlds, *np.shape(model_field(model, name)))
        if tuple(np.shape(value)) != expected:
            raise SimrlError(f"model parameter '{name}' has shape {tuple(np.shape(value))}, expected {expected}")
