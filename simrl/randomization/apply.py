"""Draw a resolved profile's values and write them into model fields, once, for numpy and JAX alike.

Training samples thousands of worlds inside jitted JAX code (``sampler.py``);
the deploy emulator's "reality" samples one world with numpy on a computer
without JAX (``simrl.deploy.emulation.reality``). Both run the lines below: the array
module comes in as ``xp`` and the randomness as a ``RandomSource`` (a JAX key or
a numpy ``Generator``), so a kind means the same thing in training and in the
reality it is meant to cover. This module must not import JAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol, Sequence

import numpy as np

from simrl.randomization.profile import KINDS, MODEL_KINDS, ParameterSpec, ResolvedParameter
from simrl.robots import Robot

Array = Any  # a numpy array or a jax.Array
Index = Any  # anything that indexes an array: an int, a slice, an index array or a tuple of them

# Noise kinds; drawn per episode (resample: episode) they act as a constant bias, like a miscalibrated sensor.
NOISE_KINDS = ("action_noise", "obs_joint_pos_noise", "obs_joint_vel_noise", "obs_ee_noise")

MIN_MASS = 1e-6  # kg: a randomized link keeps a positive mass (table.FLOORS shows the same floor)


class RandomSource(Protocol):
    """Where samples come from: float32 arrays of ``shape``, and independent child sources."""

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> Array:
        """Uniform on [low, high)."""

    def normal(self, shape: tuple[int, ...]) -> Array:
        """Standard normal."""

    def split(self, n: int) -> Sequence["RandomSource"]:
        """``n`` independent sources, one per parameter, so a draw does not depend on the draws before it."""


class GeneratorSource:
    """A ``RandomSource`` over a numpy ``Generator`` (float32, like ``jax.random``'s defaults)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
        return np.float32(low) + np.float32(high - low) * self.rng.random(shape, dtype=np.float32)

    def normal(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.standard_normal(shape, dtype=np.float32)

    def split(self, n: int) -> list["GeneratorSource"]:
        return [GeneratorSource(child) for child in self.rng.spawn(n)]


def set_at(array: Array, index: Index, value: Array) -> Array:
    """``array`` with ``array[index] = value``, as a new array.

    JAX arrays are immutable (``array.at[index].set(value)``); numpy writes in
    place, so it copies first and the caller's nominal arrays stay untouched.
    """
    if hasattr(array, "at"):
        return array.at[index].set(value)
    out = array.copy()
    out[index] = value
    return out


def draw(xp: Any, source: RandomSource, spec: ParameterSpec, shape: tuple[int, ...]) -> Array:
    """Samples of ``spec``'s distribution, float32."""
    if spec.distribution == "fixed":
        return xp.full(shape, spec.value, xp.float32)
    if spec.distribution == "uniform":
        return source.uniform(shape, spec.low, spec.high)
    if spec.distribution == "loguniform":
        return xp.exp(source.uniform(shape, np.log(spec.low), np.log(spec.high)))
    value = spec.mean + spec.std * source.normal(shape)
    low, high = spec.bounds()
    return xp.clip(value, low, high)


def draw_latency_steps(xp: Any, source: RandomSource, spec: ParameterSpec, shape: tuple[int, ...]) -> Array:
    """Whole control periods: uniform means every integer from low to high alike; others round down."""
    if spec.distribution == "uniform":
        top = np.floor(spec.high) + 1.0  # every integer in [low, high] alike, none above high
        return xp.minimum(xp.floor(source.uniform(shape, spec.low, top)), np.floor(spec.high)).astype(xp.int32)
    return xp.floor(draw(xp, source, spec, shape)).astype(xp.int32)


def value_shape(param: ResolvedParameter, n: int) -> tuple[int, ...]:
    """(N, joints) for per-joint kinds, (N, 3) for the ee noise, (N,) for the rest."""
    if param.kind == "obs_ee_noise":
        return (n, 3)
    return (n, len(param.names)) if KINDS[param.kind].targets == "joints" else (n,)


@dataclass(frozen=True)
class ModelIndex:
    """The robot's index maps the kinds need: joint → dof, geom → body, arm joint → actuator."""

    dof_of_joint: np.ndarray
    geom_body: np.ndarray
    arm_actuators: np.ndarray

    @classmethod
    def for_robot(cls, robot: Robot) -> "ModelIndex":
        model = robot.model
        return cls(np.asarray(model.jnt_dofadr), np.asarray(model.geom_bodyid), np.asarray(robot.arm_actuators))


def nominal_fields(robot: Robot, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Copies of the robot model's ``fields`` (dotted names such as ``opt.gravity`` reach into the options)."""
    return {field: np.array(attrgetter(field)(robot.model)) for field in fields}


def sample_episode(
    xp: Any,
    source: RandomSource,
    parameters: Sequence[ResolvedParameter],
    nominal: dict[str, Array],
    index: ModelIndex,
    n: int,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """One episode's values for ``n`` worlds: (model fields (n, ...), env-layer values (n, ...)).

    ``nominal`` holds the unbatched model fields the profile varies. Noise drawn
    every step is left to ``sample_step_noise``.
    """
    model = {field: xp.broadcast_to(value, (n, *value.shape)) for field, value in nominal.items()}
    values: dict[str, Array] = {}
    for param, child in zip(parameters, source.split(max(len(parameters), 1))):
        if param.kind in MODEL_KINDS:
            model = apply_model(xp, child, param, index, n, model)
        elif param.kind in NOISE_KINDS and param.resample == "step":
            continue  # drawn by sample_step_noise
        elif param.kind == "latency_steps":
            values[param.kind] = draw_latency_steps(xp, child, param.spec, (n,))
        else:
            values[param.kind] = draw(xp, child, param.spec, value_shape(param, n))
    return model, values


def sample_step_noise(xp: Any, source: RandomSource, parameters: Sequence[ResolvedParameter], n: int) -> dict[str, Array]:
    """Noise kinds with ``resample: step``, drawn anew for this control step."""
    steps = [p for p in parameters if p.kind in NOISE_KINDS and p.resample == "step"]
    return {param.kind: draw(xp, child, param.spec, value_shape(param, n)) for param, child in zip(steps, source.split(max(len(steps), 1)))}


def spread_over_joints(xp: Any, value: Array, param: ResolvedParameter, n_arm: int) -> Array:
    """Values (N, covered joints) placed into (N, n_arm), zero on the joints the parameter does not cover."""
    return set_at(xp.zeros((value.shape[0], n_arm), value.dtype), (slice(None), param.arm_index), value)


def actuator_ratio(nominal: Any, drawn: dict[str, np.ndarray], field: str, actuators: np.ndarray, column: int) -> np.ndarray:
    """Drawn / nominal ``field[actuators, column]`` of one world (numpy), 1 where the field was not drawn or is nominally 0.

    How a servo draw (``actuator_kp``, ``actuator_kv``, ``actuator_force_limit``)
    reads as a scale of the motor's commanded gain or rated torque, for the
    emulated reality and for the gap checker's replay of training's worlds alike.
    """
    base = getattr(nominal, field)[actuators, column]
    if field not in drawn:
        return np.ones(len(actuators))
    return np.divide(drawn[field][actuators, column], base, out=np.ones(len(actuators)), where=base != 0)


def quantize(xp: Any, value: Array, step: Array) -> Array:
    """``value`` rounded to whole multiples of ``step`` (an encoder's resolution); unchanged where step is 0."""
    return xp.where(step > 0, xp.round(value / xp.where(step > 0, step, 1.0)) * step, value)


def _applied(param: ResolvedParameter, nominal: Array, sample: Array) -> Array:
    return nominal * sample if param.apply == "scale" else nominal + sample


def apply_model(
    xp: Any, source: RandomSource, param: ResolvedParameter, index: ModelIndex, n: int, model: dict[str, Array]
) -> dict[str, Array]:
    """Write one kind's samples into the per-world model fields (n, ...) it owns."""
    model = dict(model)
    kind, ids, every = param.kind, param.ids, slice(None)
    if kind == "link_mass":
        old = model["body_mass"][:, ids]
        new = xp.maximum(_applied(param, old, draw(xp, source, param.spec, (n, len(ids)))), MIN_MASS)
        model["body_mass"] = set_at(model["body_mass"], (every, ids), new)
        # a heavier link of the same shape has proportionally more inertia
        ratio = (new / xp.maximum(old, 1e-12))[..., None]
        model["body_inertia"] = set_at(model["body_inertia"], (every, ids), model["body_inertia"][:, ids] * ratio)
    elif kind == "link_com":
        offset = draw(xp, source, param.spec, (n, len(ids), 3))
        model["body_ipos"] = set_at(model["body_ipos"], (every, ids), model["body_ipos"][:, ids] + offset)
    elif kind in ("joint_damping", "joint_frictionloss", "joint_armature"):
        field = MODEL_KINDS[kind][0]
        dofs = index.dof_of_joint[ids]
        s = draw(xp, source, param.spec, (n, len(dofs)))
        model[field] = set_at(model[field], (every, dofs), xp.maximum(_applied(param, model[field][:, dofs], s), 0.0))
    elif kind == "actuator_kp":
        act = index.arm_actuators[param.arm_index]
        kp = xp.maximum(_applied(param, model["actuator_gainprm"][:, act, 0], draw(xp, source, param.spec, (n, len(act)))), 0.0)
        model["actuator_gainprm"] = set_at(model["actuator_gainprm"], (every, act, 0), kp)
        model["actuator_biasprm"] = set_at(model["actuator_biasprm"], (every, act, 1), -kp)
    elif kind == "actuator_kv":
        act = index.arm_actuators[param.arm_index]
        kv = xp.maximum(_applied(param, -model["actuator_biasprm"][:, act, 2], draw(xp, source, param.spec, (n, len(act)))), 0.0)
        model["actuator_biasprm"] = set_at(model["actuator_biasprm"], (every, act, 2), -kv)
    elif kind == "actuator_force_limit":
        act = index.arm_actuators[param.arm_index]
        s = draw(xp, source, param.spec, (n, len(act)))[..., None]
        limits = model["actuator_forcerange"][:, act]
        new = limits * s if param.apply == "scale" else limits + s * xp.asarray([-1.0, 1.0])
        new = xp.stack([xp.minimum(new[..., 0], 0.0), xp.maximum(new[..., 1], 0.0)], axis=-1)  # never inverted
        model["actuator_forcerange"] = set_at(model["actuator_forcerange"], (every, act), new)
    elif kind == "geom_friction":
        s = draw(xp, source, param.spec, (n, len(ids)))
        geoms = np.flatnonzero(np.isin(index.geom_body, ids))
        column = {int(body): i for i, body in enumerate(ids)}
        per_geom = s[:, np.array([column[int(b)] for b in index.geom_body[geoms]], dtype=np.int32)]
        friction = xp.maximum(_applied(param, model["geom_friction"][:, geoms, 0], per_geom), 0.0)
        model["geom_friction"] = set_at(model["geom_friction"], (every, geoms, 0), friction)
    elif kind == "gravity_tilt":
        tilt_source, azimuth_source = source.split(2)
        tilt = draw(xp, tilt_source, param.spec, (n,))
        azimuth = azimuth_source.uniform((n,), 0.0, 2 * np.pi)
        g = xp.linalg.norm(model["opt.gravity"][0])
        model["opt.gravity"] = g * xp.stack([xp.sin(tilt) * xp.cos(azimuth), xp.sin(tilt) * xp.sin(azimuth), -xp.cos(tilt)], axis=-1)
    return model
