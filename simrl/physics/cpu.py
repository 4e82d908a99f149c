"""The ``cpu`` backend: native MuJoCo on all cores through ``mujoco.rollout``.

JAX calls it through ``jax.pure_callback``, so the training loop stays one
jitted function while the physics runs in MuJoCo's C thread pool. The layout
follows what was measured on this machine (MEASURED.md): one long-lived
``Rollout`` (a new thread pool per call costs ~9 %), one MjData per thread,
float64 C-contiguous preallocated buffers and ``skip_checks=True``.
"""

from __future__ import annotations

import copy
import functools
import os

import jax
import jax.numpy as jnp
import mujoco
import mujoco.rollout
import numpy as np

from simrl.errors import SimrlError
from simrl.physics.base import Array, ModelParams, PhysicsState, StepOutput, check_ctrl, check_params, model_field


class CpuBackend:
    """Steps N worlds with ``mujoco.rollout`` from inside jitted code."""

    name = "cpu"

    def __init__(self, model: mujoco.MjModel, substeps: int, num_worlds: int, nthread: int | None = None):
        self.model = model
        self.substeps = substeps
        self.num_worlds = num_worlds
        threads = min(nthread or os.cpu_count() or 1, num_worlds)
        # nthread=0 runs on the calling thread: a pool of one only adds hand-offs.
        self._rollout = mujoco.rollout.Rollout(nthread=threads if threads > 1 else 0)
        self._datas = [mujoco.MjData(model) for _ in range(max(threads, 1))]
        self._shared_models = [model] * num_worlds
        self._model_copies: list[mujoco.MjModel] | None = None
        self._field_views: list[list[np.ndarray]] = []  # per world, its copy's arrays of the applied fields, in order
        self._applied: dict[str, np.ndarray] = {}

        nstate = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        template = np.empty(nstate)
        mujoco.mj_getState(model, self._datas[0], template, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        template[0] = 0.0  # time: the dynamics do not depend on it
        self._initial = np.ascontiguousarray(np.tile(template, (num_worlds, 1)))
        # mjSTATE_FULLPHYSICS stores time, then qpos, then qvel (mjtState bit order).
        self._qpos = slice(1, 1 + model.nq)
        self._qvel = slice(1 + model.nq, 1 + model.nq + model.nv)
        self._warmstart = np.zeros((num_worlds, model.nv))
        self._control = np.empty((num_worlds, substeps, model.nu))
        self._states = np.empty((num_worlds, substeps, nstate))
        self._sensors = np.empty((num_worlds, substeps, model.nsensordata))

    def close(self) -> None:
        """Stop the thread pool."""
        self._rollout.close()

    def _apply_params(self, params: dict[str, np.ndarray], promised: np.ndarray | None) -> None:
        """Write per-world fields into per-world model copies, touching only worlds that changed.

        ``promised`` is the caller's (N,) mask of worlds that may have changed
        (see ``Backend.step``); without it every value is compared with the
        last one written.
        """
        if self._model_copies is None or list(params) != list(self._applied):
            # A different set of fields: start again from the nominal model so no stale field survives.
            self._model_copies = [copy.copy(self.model) for _ in range(self.num_worlds)]
            # Each field looked up once: getattr on an MjModel builds a new array view (a reset of 4096 worlds took 70 ms, 40-57 ms with these).
            self._field_views = [[model_field(world_model, name) for name in params] for world_model in self._model_copies]
            self._applied = {}
            promised = None
        if promised is not None:
            changed = promised
        else:
            changed = np.zeros(self.num_worlds, dtype=bool)
            for name, value in params.items():
                previous = self._applied.get(name)
                if previous is None:
                    changed[:] = True
                else:
                    changed |= np.any((value != previous).reshape(self.num_worlds, -1), axis=1)
        if not changed.any():
            return  # the usual case: parameters change only when an episode restarts
        values = list(params.values())
        for world in np.flatnonzero(changed):
            for view, value in zip(self._field_views[world], values):
                view[...] = value[world]
        # Comparisons need the values written; with a promise the field set is all that is checked.
        self._applied = {name: value.copy() for name, value in params.items()} if promised is None else dict.fromkeys(params)

    def _host_step(
        self, param_names: tuple[str, ...], per_world: bool, qpos: np.ndarray, qvel: np.ndarray, ctrl: np.ndarray, *params_and_changed: np.ndarray
    ):
        """One control step of every world; ``per_world`` steps the per-world copies, with ``param_names`` written first."""
        models = self._shared_models
        if param_names:
            param_values = params_and_changed[: len(param_names)]
            promised = np.asarray(params_and_changed[-1], bool) if len(params_and_changed) > len(param_names) else None
            self._apply_params({n: np.asarray(v) for n, v in zip(param_names, param_values)}, promised)  # widened on write
        if per_world:
            if self._model_copies is None:
                raise SimrlError("per-world model fields were never handed to the cpu backend: the first step with them must mark every world as changed")
            models = self._model_copies
        self._initial[:, self._qpos] = qpos
        self._initial[:, self._qvel] = qvel
        # The rollout takes one control per substep: a 2-D ctrl is broadcast over them.
        self._control[...] = ctrl if ctrl.ndim == 3 else ctrl[:, None, :]
        self._rollout.rollout(
            models,
            self._datas,
            self._initial,
            self._control,
            skip_checks=True,
            nstep=self.substeps,
            initial_warmstart=self._warmstart,
            state=self._states,
            sensordata=self._sensors,
        )
        last = self._states[:, -1]
        dtype = qpos.dtype
        return (
            last[:, self._qpos].astype(dtype),
            last[:, self._qvel].astype(dtype),
            self._sensors[:, -1].astype(dtype),
        )

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
