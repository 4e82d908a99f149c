"""The ``cpu`` backend: native MuJoCo on all cores through ``mujoco.batch``.

JAX calls it through ``jax.pure_callback``, so the training loop stays one
jitted function while the physics runs in MuJoCo's C thread pool. One
long-lived ``Batch`` (a new thread pool per call costs ~9 %, MEASURED.md)
holds a state row per world and steps them all on one model; per-world fields
are that model's fields expanded to a row per world (``Batch.expand``), a few
hundred bytes each, instead of a 15 KB model copy per world, which no cache
held and which cost 10-20 % of the step under randomization
(``experiments/results/randomization.md``).

The JAX state stays authoritative: every call writes ``qpos`` and ``qvel``
into the rows and resets everything else the physics carries from one call to
the next (time, solver warmstart, activations), so a step depends on its
inputs alone, whatever ran in those rows before.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import mujoco
import mujoco.batch
import numpy as np

from simrl.errors import SimrlError
from simrl.physics.base import Array, ModelParams, PhysicsState, StepOutput, check_ctrl, check_params, model_field

# State-row fields the physics advances besides qpos and qvel, all reset every call: they would
# otherwise carry one episode's solver warmstart or activations into the next (mjSTATE_FULLPHYSICS
# plus the warmstart, the state mujoco.rollout started each call from before).
_CARRIED_FIELDS = ("time", "act", "history", "qacc_warmstart", "plugin_state", "plastic")


class CpuBackend:
    """Steps N worlds with ``mujoco.batch`` from inside jitted code."""

    name = "cpu"

    def __init__(self, model: mujoco.MjModel, substeps: int, num_worlds: int, nthread: int | None = None):
        self.model = model
        self.substeps = substeps
        self.num_worlds = num_worlds
        threads = min(nthread or os.cpu_count() or 1, num_worlds)
        self._batch = mujoco.batch.Batch(model, num_worlds, nthread=threads)
        self._qpos = self._batch.bind("qpos")
        self._qvel = self._batch.bind("qvel")
        self._sensordata = self._batch.bind("sensordata")
        self._control = np.empty((num_worlds, substeps, model.nu))
        self._carried = [view for view in map(self._batch.bind, _CARRIED_FIELDS) if view.size]
        # A new batch's rows hold the model's reset state (time 0, zero warmstart): what every call starts from.
        self._carried_initial = [view[0].copy() for view in self._carried]
        self._fields = _PerWorldFields(model, self._batch)

    def _host_step(
        self, param_names: tuple[str, ...], per_world: bool, qpos: np.ndarray, qvel: np.ndarray, ctrl: np.ndarray, *params_and_changed: np.ndarray
    ):
        """One control step of every world; ``per_world`` steps the expanded fields, with ``param_names`` written first."""
        if param_names:
            values = params_and_changed[: len(param_names)]
            promised = np.asarray(params_and_changed[-1], bool) if len(params_and_changed) > len(param_names) else None
            self._fields.write(dict(zip(param_names, values)), promised)
        elif per_world:
            self._fields.check_held()
        else:
            self._fields.restore_nominal()
        self._qpos[...] = qpos
        self._qvel[...] = qvel
        for view, initial in zip(self._carried, self._carried_initial):
            view[...] = initial
        # One control per substep: a 2-D ctrl is held for all of them.
        self._control[...] = ctrl if ctrl.ndim == 3 else ctrl[:, None, :]
        # record=() keeps no per-substep trajectory: the rows hold the last state, the bound sensordata the last substep's.
        self._batch.rollout(self.substeps, control=self._control, record=())
        dtype = qpos.dtype
        # astype copies: JAX must not hold views of rows the next call overwrites.
        return self._qpos.astype(dtype), self._qvel.astype(dtype), self._sensordata.astype(dtype)

    def step(self, state: PhysicsState, ctrl: Array, params: ModelParams | None = None, changed: Array | None = None) -> StepOutput:
        check_ctrl(ctrl, self.num_worlds, self.substeps, self.model.nu)
        params = dict(params or {})
        if params:
            check_params(self.model, params, self.num_worlds)
        n, dtype = self.num_worlds, state.qpos.dtype
        shapes = (
            jax.ShapeDtypeStruct((n, self.model.nq), dtype),
            jax.ShapeDtypeStruct((n, self.model.nv), dtype),
            jax.ShapeDtypeStruct((n, self.model.nsensordata), dtype),
        )
        operands = (state.qpos, state.qvel, jnp.asarray(ctrl, dtype))

        def host_step(param_names: tuple[str, ...], *extra: Array) -> tuple[Array, Array, Array]:
            step = functools.partial(self._host_step, param_names, bool(params))
            return jax.pure_callback(step, shapes, *operands, *extra, vmap_method="sequential")

        if not params:
            qpos, qvel, sensors = host_step(())
        elif changed is None:
            qpos, qvel, sensors = host_step(tuple(params), *params.values())
        else:
            # The fields cross into Python only on steps where some world changed (an episode start): handing
            # their ~4 MB to the callback on every step cost 1.5 ms per step at 4096 worlds.
            changed = jnp.asarray(changed, bool)
            qpos, qvel, sensors = jax.lax.cond(
                jnp.any(changed), lambda: host_step(tuple(params), *params.values(), changed), lambda: host_step(())
            )
        return StepOutput(PhysicsState(qpos, qvel), sensors)


class _PerWorldFields:
    """The model fields the worlds hold values of their own for: rows of the batch's expanded fields.

    Only the fields of the current call's parameters differ from the model;
    any other field expanded by an earlier call is written back to the
    model's value, so nothing leaks into a later call. Derived constants are
    not recomputed (no ``set_const``), as MJX cannot: both backends step the
    same physics.
    """

    def __init__(self, model: mujoco.MjModel, batch: mujoco.batch.Batch):
        self._model = model
        self._batch = batch
        self._held: tuple[str, ...] = ()

    def write(self, params: dict[str, np.ndarray], promised: np.ndarray | None) -> None:
        """Write the worlds' values of ``params`` (each (N, ...)): only the ``promised`` worlds', unless the fields are new.

        ``promised`` is the caller's (N,) mask of worlds that may have changed
        (see ``Backend.step``); ``None`` writes every world.
        """
        if tuple(params) != self._held:
            self.restore_nominal(keep=params)
            self._held = tuple(params)
            promised = None  # a new set of fields: every world's values are new
        worlds = slice(None) if promised is None else np.flatnonzero(promised)
        for name, value in params.items():
            self._batch.expand(name)[worlds] = value[worlds]  # widened to float64 on write

    def check_held(self) -> None:
        """Refuse to step per-world fields that were never written: the worlds would step the nominal model in silence."""
        if not self._held:
            raise SimrlError("per-world model fields were never handed to the cpu backend: the first step with them must mark every world as changed")

    def restore_nominal(self, keep: dict[str, np.ndarray] | None = None) -> None:
        """Give every world the model's value of each held field not in ``keep``."""
        for name in self._held:
            if name not in (keep or {}):
                self._batch.expand(name)[...] = model_field(self._model, name)
        self._held = tuple(name for name in self._held if name in (keep or {}))
