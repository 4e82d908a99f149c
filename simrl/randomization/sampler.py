"""Draw per-world values from a resolved profile: model fields for the physics, the rest for the env layer.

Everything here is pure JAX driven by an explicit key, so sampling is seeded,
reproducible and runs inside the jitted env (a world's values are redrawn
when its episode restarts). Model fields are built from the nominal model
and handed to either backend as ``{field: (N, ...)}``; both apply them the
same way, which is what makes cpu/mjx parity hold under randomization.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from simrl.physics.base import model_field
from simrl.randomization.profile import KINDS, MODEL_KINDS, ParameterSpec, ResolvedParameter, ResolvedProfile
from simrl.robots import Robot

# Noise kinds; drawn per episode (resample: episode) they act as a constant bias, like a miscalibrated sensor.
NOISE_KINDS = ("action_noise", "obs_joint_pos_noise", "obs_joint_vel_noise", "obs_ee_noise")


def draw(spec: ParameterSpec, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Samples of ``spec``'s distribution, float32."""
    if spec.distribution == "fixed":
        return jnp.full(shape, spec.value, jnp.float32)
    if spec.distribution == "uniform":
        return jax.random.uniform(key, shape, minval=spec.low, maxval=spec.high)
    if spec.distribution == "loguniform":
        return jnp.exp(jax.random.uniform(key, shape, minval=np.log(spec.low), maxval=np.log(spec.high)))
    value = spec.mean + spec.std * jax.random.normal(key, shape)
    low, high = spec.bounds()
    return jnp.clip(value, low, high)


def draw_latency_steps(spec: ParameterSpec, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Whole control periods: uniform means every integer from low to high alike; others round down."""
    if spec.distribution == "uniform":
        top = np.floor(spec.high) + 1.0  # every integer in [low, high] alike, none above high
        return jnp.minimum(jnp.floor(jax.random.uniform(key, shape, minval=spec.low, maxval=top)), np.floor(spec.high)).astype(jnp.int32)
    return jnp.floor(draw(spec, key, shape)).astype(jnp.int32)


def max_latency_steps(profile: ResolvedProfile | None) -> int:
    """The largest whole-period latency the profile can draw (sizes the env's command history)."""
    param = profile.get("latency_steps") if profile else None
    if param is None:
        return 0
    _, high = param.spec.bounds()
    return int(np.floor(high))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Domain:
    """One episode's randomized values for N worlds (a pytree inside the env state)."""

    model: dict[str, jax.Array]  # per-world model fields, (N, ...) each
    values: dict[str, jax.Array]  # env-layer kinds drawn per episode: latency, resolution, start offset, goal scale, noise biases


def _applied(param: ResolvedParameter, nominal: jax.Array, sample: jax.Array) -> jax.Array:
    return nominal * sample if param.apply == "scale" else nominal + sample


class DomainSampler:
    """Draws ``Domain``s for one robot and profile; ``None`` profile draws nothing (zero cost)."""

    def __init__(self, robot: Robot, profile: ResolvedProfile | None):
        self.robot = robot
        self.profile = profile
        model = robot.model
        self._nominal = {field: jnp.asarray(np.array(model_field(model, field)), jnp.float32) for field in (profile.model_fields if profile else ())}
        self._dof_of_joint = np.asarray(model.jnt_dofadr)
        self._geom_body = np.asarray(model.geom_bodyid)
        self._arm_actuators = np.asarray(robot.arm_actuators)

    @property
    def parameters(self) -> tuple[ResolvedParameter, ...]:
        return self.profile.parameters if self.profile else ()

    def sample(self, key: jax.Array, num_worlds: int) -> Domain:
        """Fresh episode values for ``num_worlds`` worlds."""
        model = {field: jnp.broadcast_to(value, (num_worlds, *value.shape)) for field, value in self._nominal.items()}
        values: dict[str, jax.Array] = {}
        keys = jax.random.split(key, max(len(self.parameters), 1))
        for param, k in zip(self.parameters, keys):
            if param.kind in MODEL_KINDS:
                model = self._apply_model(param, k, num_worlds, model)
            elif param.kind in NOISE_KINDS and param.resample == "step":
                continue  # drawn by step_noise
            elif param.kind == "latency_steps":
                values[param.kind] = draw_latency_steps(param.spec, k, (num_worlds,))
            else:
                values[param.kind] = draw(param.spec, k, self._shape(param, num_worlds))
        return Domain(model=model, values=values)

    def step_noise(self, key: jax.Array, num_worlds: int) -> dict[str, jax.Array]:
        """Noise kinds with ``resample: step``, drawn anew for this control step."""
        steps = [p for p in self.parameters if p.kind in NOISE_KINDS and p.resample == "step"]
        keys = jax.random.split(key, max(len(steps), 1))
        return {param.kind: draw(param.spec, k, self._shape(param, num_worlds)) for param, k in zip(steps, keys)}

    @staticmethod
    def _shape(param: ResolvedParameter, n: int) -> tuple[int, ...]:
        """(N, joints) for per-joint kinds, (N, 3) for the ee noise, (N,) for the rest."""
        if param.kind == "obs_ee_noise":
            return (n, 3)
        return (n, len(param.names)) if KINDS[param.kind].targets == "joints" else (n,)

    def _apply_model(self, param: ResolvedParameter, key: jax.Array, n: int, model: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Write one kind's samples into the per-world model fields it owns."""
        model = dict(model)
        kind, ids = param.kind, param.ids
        if kind == "link_mass":
            s = draw(param.spec, key, (n, len(ids)))
            old = model["body_mass"][:, ids]
            new = jnp.maximum(_applied(param, old, s), 1e-6)
            model["body_mass"] = model["body_mass"].at[:, ids].set(new)
            # a heavier link of the same shape has proportionally more inertia
            model["body_inertia"] = model["body_inertia"].at[:, ids].multiply((new / jnp.maximum(old, 1e-12))[..., None])
        elif kind == "link_com":
            model["body_ipos"] = model["body_ipos"].at[:, ids].add(draw(param.spec, key, (n, len(ids), 3)))
        elif kind in ("joint_damping", "joint_frictionloss", "joint_armature"):
            field = MODEL_KINDS[kind][0]
            dofs = self._dof_of_joint[ids]
            s = draw(param.spec, key, (n, len(dofs)))
            model[field] = model[field].at[:, dofs].set(jnp.maximum(_applied(param, model[field][:, dofs], s), 0.0))
        elif kind == "actuator_kp":
            act = self._arm_actuators[param.arm_index]
            kp = jnp.maximum(_applied(param, model["actuator_gainprm"][:, act, 0], draw(param.spec, key, (n, len(act)))), 0.0)
            model["actuator_gainprm"] = model["actuator_gainprm"].at[:, act, 0].set(kp)
            model["actuator_biasprm"] = model["actuator_biasprm"].at[:, act, 1].set(-kp)
        elif kind == "actuator_kv":
            act = self._arm_actuators[param.arm_index]
            kv = jnp.maximum(_applied(param, -model["actuator_biasprm"][:, act, 2], draw(param.spec, key, (n, len(act)))), 0.0)
            model["actuator_biasprm"] = model["actuator_biasprm"].at[:, act, 2].set(-kv)
        elif kind == "actuator_force_limit":
            act = self._arm_actuators[param.arm_index]
            s = draw(param.spec, key, (n, len(act)))[..., None]
            limits = model["actuator_forcerange"][:, act]
            new = limits * s if param.apply == "scale" else limits + s * jnp.array([-1.0, 1.0])
            new = jnp.stack([jnp.minimum(new[..., 0], 0.0), jnp.maximum(new[..., 1], 0.0)], axis=-1)  # never inverted
            model["actuator_forcerange"] = model["actuator_forcerange"].at[:, act].set(new)
        elif kind == "geom_friction":
            s = draw(param.spec, key, (n, len(ids)))
            geoms = np.flatnonzero(np.isin(self._geom_body, ids))
            column = {int(body): i for i, body in enumerate(ids)}
            per_geom = s[:, np.array([column[int(b)] for b in self._geom_body[geoms]], dtype=np.int32)]
            friction = jnp.maximum(_applied(param, model["geom_friction"][:, geoms, 0], per_geom), 0.0)
            model["geom_friction"] = model["geom_friction"].at[:, geoms, 0].set(friction)
        elif kind == "gravity_tilt":
            tilt_key, azimuth_key = jax.random.split(key)
            tilt = draw(param.spec, tilt_key, (n,))
            azimuth = jax.random.uniform(azimuth_key, (n,), maxval=2 * np.pi)
            g = jnp.linalg.norm(model["opt.gravity"][0])
            model["opt.gravity"] = g * jnp.stack([jnp.sin(tilt) * jnp.cos(azimuth), jnp.sin(tilt) * jnp.sin(azimuth), -jnp.cos(tilt)], axis=-1)
        return model

    def summary(self, domain: Domain) -> dict[str, np.ndarray]:
        """Flat ``name -> samples`` for TensorBoard histograms and tables (one entry per parameter and target)."""
        out: dict[str, np.ndarray] = {}
        for field, value in domain.model.items():
            out[f"model/{field}"] = np.asarray(value).reshape(value.shape[0], -1)
        for kind, value in domain.values.items():
            out[f"env/{kind}"] = np.asarray(value).reshape(value.shape[0], -1)
        return out


def spread_over_joints(value: jax.Array, param: ResolvedParameter, n_arm: int) -> jax.Array:
    """Values (N, covered joints) placed into (N, n_arm), zero on the joints the parameter does not cover."""
    return jnp.zeros((value.shape[0], n_arm), value.dtype).at[:, param.arm_index].set(value)
