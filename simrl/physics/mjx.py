"""The ``mjx`` backend: MuJoCo XLA, one world per vmap lane.

On a GPU this is the fast path; on this CPU it runs ~500 control steps/s at
1024 worlds (MEASURED.md), so here it serves small batches and the parity test
against ``cpu``. Models must use the Euler integrator for the two to agree.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import jax
import jax.numpy as jnp
import mujoco

# mujoco.mjx prints "Failed to import warp" to stdout when the optional warp
# package is absent; keep stdout clean for `--json` output.
with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx

from simrl.errors import SimrlError
from simrl.physics.base import Array, ModelParams, PhysicsState, StepOutput, check_ctrl, check_params

MJX_IMPLS = ("jax", "warp")


class MjxBackend:
    """Steps N worlds with vmapped ``mjx.step``; per-world fields get ``in_axes=0``."""

    name = "mjx"

    def __init__(self, model: mujoco.MjModel, substeps: int, num_worlds: int, impl: str = "jax"):
        if impl not in MJX_IMPLS:
            raise SimrlError(f"unknown mjx implementation '{impl}' (allowed: {', '.join(MJX_IMPLS)})")
        self.model = model
        self.substeps = substeps
        self.num_worlds = num_worlds
        try:
            self._mjx_model = mjx.put_model(model, impl=impl)
        except (NotImplementedError, ImportError, RuntimeError) as exc:
            raise SimrlError(f"the mjx backend (impl '{impl}') cannot run this model: {exc}") from None
        self._data0 = mjx.make_data(self._mjx_model)

    def _batched_model(self, params: ModelParams) -> tuple[Any, Any]:
        """The mjx model with per-world fields swapped in, and the matching vmap in_axes."""
        if not params:
            return self._mjx_model, None
        batched = self._mjx_model.tree_replace({name: jnp.asarray(value) for name, value in params.items()})
        in_axes = jax.tree_util.tree_map(lambda _: None, self._mjx_model)
        in_axes = in_axes.tree_replace({name: 0 for name in params})
        return batched, in_axes

    def step(self, state: PhysicsState, ctrl: Array, params: ModelParams | None = None, changed: Array | None = None) -> StepOutput:
        del changed  # the batched model is rebuilt from params inside the jitted step; nothing to skip
        per_substep = check_ctrl(ctrl, self.num_worlds, self.substeps, self.model.nu)
        params = dict(params or {})
        if params:
            check_params(self.model, params, self.num_worlds)
        model, model_axes = self._batched_model(params)
        dtype = state.qpos.dtype

        def one_world(m: Any, qpos: Array, qvel: Array, ctrl: Array) -> tuple[Array, Array, Array]:
            if per_substep:
                # Each substep sets its own control before stepping, as mujoco.rollout does.
                data = self._data0.replace(qpos=qpos, qvel=qvel, ctrl=ctrl[0])
                data = jax.lax.scan(lambda d, c: (mjx.step(m, d.replace(ctrl=c)), None), data, ctrl)[0]
            else:
                data = self._data0.replace(qpos=qpos, qvel=qvel, ctrl=ctrl)
                data = jax.lax.fori_loop(0, self.substeps, lambda _, d: mjx.step(m, d), data)
            return data.qpos, data.qvel, data.sensordata

        qpos, qvel, sensors = jax.vmap(one_world, in_axes=(model_axes, 0, 0, 0))(model, state.qpos, state.qvel, jnp.asarray(ctrl, dtype))
        return StepOutput(PhysicsState(qpos.astype(dtype), qvel.astype(dtype)), sensors.astype(dtype))
