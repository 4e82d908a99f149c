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
        self._variants = _Variants(model)
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
        """Give the worlds that changed models holding their fields; worlds with equal fields share one model.

        ``promised`` is the caller's (N,) mask of worlds that may have changed
        (see ``Backend.step``); without it every value is compared with the
        last one written.
        """
        if not self._variants.holds(params):
            # A different set of fields: start again from the nominal model so no stale field survives.
            self._variants = _Variants(self.model, tuple(params), self.num_worlds)
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
        self._variants.assign(np.flatnonzero(changed), list(params.values()))
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
            self._apply_params({n: np.asarray(v) for n, v in zip(param_names, param_values)}, promised)
        if per_world:
            if not self._variants.fields:
                raise SimrlError("per-world model fields were never handed to the cpu backend: the first step with them must mark every world as changed")
            models = self._variants.world_models
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


class _Variants:
    """The distinct models the worlds step: one MjModel per distinct set of field values, shared by the worlds holding it.

    With every world's fields drawn on its own (the default) that is one model per
    world. A profile's ``physics_variants`` pool makes worlds share a few hundred:
    4096 distinct 15 KB models cost ~10 % of the physics step on this machine,
    because no core's L2 cache holds them (``experiments/per_world_models.py``).
    Models a change leaves unused are kept and rewritten for the next new values.
    """

    def __init__(self, model: mujoco.MjModel, fields: tuple[str, ...] = (), num_worlds: int = 0):
        self.model = model
        self.fields = fields
        self.world_models: list[mujoco.MjModel] = [model] * num_worlds
        self._key_of_world: list[bytes | None] = [None] * num_worlds
        self._in_use: dict[bytes, _Variant] = {}
        self._spare: list[_Variant] = []

    def holds(self, params: dict[str, np.ndarray]) -> bool:
        return bool(self.fields) and tuple(params) == self.fields

    def assign(self, worlds: np.ndarray, values: list[np.ndarray]) -> None:
        """Give each of ``worlds`` the model holding its row of ``values`` (each (N, ...), in ``fields`` order)."""
        rows = np.concatenate([np.asarray(v).reshape(len(v), -1) for v in values], axis=1)
        for world in worlds:
            key = rows[world].tobytes()
            old = self._key_of_world[world]
            if old == key:
                continue
            if old is not None:
                self._release(old)
            variant = self._in_use.get(key)
            if variant is None:
                variant = self._spare.pop() if self._spare else _Variant.copy_of(self.model, self.fields)
                variant.write(values, world)
                self._in_use[key] = variant
            variant.users += 1
            self._key_of_world[world] = key
            self.world_models[world] = variant.model

    @property
    def distinct(self) -> int:
        """How many distinct models the worlds step now."""
        return len(self._in_use)

    def _release(self, key: bytes) -> None:
        variant = self._in_use[key]
        variant.users -= 1
        if variant.users == 0:
            del self._in_use[key]
            self._spare.append(variant)


class _Variant:
    """One model copy, its arrays of the varied fields (looked up once: getattr on an MjModel builds a new view), and its users."""

    def __init__(self, model: mujoco.MjModel, views: list[np.ndarray]):
        self.model = model
        self.views = views
        self.users = 0

    @classmethod
    def copy_of(cls, model: mujoco.MjModel, fields: tuple[str, ...]) -> "_Variant":
        copied = copy.copy(model)
        return cls(copied, [model_field(copied, name) for name in fields])

    def write(self, values: list[np.ndarray], world: int) -> None:
        for view, value in zip(self.views, values):
            view[...] = value[world]  # widened to float64 on write
