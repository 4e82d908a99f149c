"""The effective range of every randomized quantity of a resolved profile, per joint and body.

A profile says "x[0.5, 2] on damping"; what a user needs to judge it is the
range that lands in the physics (0.3 to 1.2 N·m·s/rad on the elbow) next to the
nominal value it came from. ``simrl randomization show`` prints these rows. The
numbers follow the sampler's own rules (the floors it clamps to, latency rounded
down to whole periods) so the table says what training will actually see.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Optional

import numpy as np

from simrl.randomization.profile import KINDS, ParameterSpec, ResolvedParameter, ResolvedProfile
from simrl.robots import Robot

UNCLIPPED_STDS = 3.0  # an unclipped normal is shown as mean ± 3 std (99.7 % of samples)


@dataclass(frozen=True)
class RangeRow:
    """One randomized quantity on one target, as the table and ``--json`` show it."""

    kind: str
    target: str  # joint or body name, or "robot"
    nominal: Optional[float]  # the model's value; None where the sample is the value itself
    distribution: str
    min: Optional[float]
    max: Optional[float]
    unit: str
    resample: str
    note: str = ""
    entry: Optional[int] = None  # position in the kind's list of entries; None for a kind given as one entry

    @property
    def label(self) -> str:
        """The entry as the profile names it (``joint_damping`` or ``joint_damping.1``)."""
        return self.kind if self.entry is None else f"{self.kind}.{self.entry}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dof_field(field: str) -> Callable[[Robot, ResolvedParameter, int], np.ndarray]:
    """Nominal reader for a per-dof model field of the ``i``-th target joint."""

    def read(robot: Robot, param: ResolvedParameter, i: int) -> np.ndarray:
        return getattr(robot.model, field)[[robot.model.jnt_dofadr[param.ids[i]]]]

    return read


def _actuator(robot: Robot, param: ResolvedParameter, i: int) -> int:
    return int(robot.arm_actuators[param.arm_index[i]])


def _kp(robot: Robot, param: ResolvedParameter, i: int) -> np.ndarray:
    return robot.model.actuator_gainprm[[_actuator(robot, param, i)], 0]


def _kv(robot: Robot, param: ResolvedParameter, i: int) -> np.ndarray:
    return -robot.model.actuator_biasprm[[_actuator(robot, param, i)], 2]


def _force_limit(robot: Robot, param: ResolvedParameter, i: int) -> np.ndarray:
    return robot.model.actuator_forcerange[[_actuator(robot, param, i)], 1]


def _body_mass(robot: Robot, param: ResolvedParameter, i: int) -> np.ndarray:
    return robot.model.body_mass[[param.ids[i]]]


def _geom_friction(robot: Robot, param: ResolvedParameter, i: int) -> np.ndarray:
    """Sliding friction of every geom of the body (the sampler scales them all alike)."""
    return robot.model.geom_friction[robot.model.geom_bodyid == param.ids[i], 0]


# Kinds acting on a model value: how to read the nominal value(s) of the i-th target.
NOMINALS: dict[str, Callable[[Robot, ResolvedParameter, int], np.ndarray]] = {
    "link_mass": _body_mass,
    "joint_damping": _dof_field("dof_damping"),
    "joint_frictionloss": _dof_field("dof_frictionloss"),
    "joint_armature": _dof_field("dof_armature"),
    "actuator_kp": _kp,
    "actuator_kv": _kv,
    "actuator_force_limit": _force_limit,
    "geom_friction": _geom_friction,
}

# Lower clamps the sampler applies after scaling or adding (apply.apply_model).
FLOORS = {
    "link_mass": 1e-6,
    "joint_damping": 0.0,
    "joint_frictionloss": 0.0,
    "joint_armature": 0.0,
    "actuator_kp": 0.0,
    "actuator_kv": 0.0,
}

# What a row of a value-only kind means, where the kind's help alone leaves it open.
NOTES = {
    "link_com": "offset per axis",
    "obs_ee_noise": "per axis",
    "encoder_resolution": "quantization step",
}


def effective_ranges(robot: Robot, profile: ResolvedProfile) -> list[RangeRow]:
    """Rows for every parameter of ``profile`` and every joint or body it covers, in profile order
    (a kind given as a list: entry by entry, each with its own distribution)."""
    return [row for param in profile.parameters for row in _parameter_rows(robot, param)]


def _parameter_rows(robot: Robot, param: ResolvedParameter) -> list[RangeRow]:
    targets = ("robot",) if KINDS[param.kind].targets == "none" else param.names
    return [replace(_row(robot, param, i, target), entry=param.entry) for i, target in enumerate(targets)]


def _row(robot: Robot, param: ResolvedParameter, i: int, target: str) -> RangeRow:
    low, high, clip_note = sample_bounds(param.spec)
    reader = NOMINALS.get(param.kind)
    words = describe(param.spec, param.apply if reader else None, param.resample)
    if reader is None:
        low, high, note = _value_range(robot, param, low, high)
        return RangeRow(param.kind, target, None, words, low, high, KINDS[param.kind].unit, param.resample, _join(clip_note, note))
    nominals = np.asarray(reader(robot, param, i), dtype=float)
    if nominals.size == 0:
        return RangeRow(param.kind, target, None, words, None, None, _model_unit(param.kind), param.resample, "no geoms: no effect")
    lo, hi = _applied_range(nominals, param.apply, low, high, FLOORS.get(param.kind))
    return RangeRow(
        param.kind, target, float(nominals[0]), words, lo, hi, _model_unit(param.kind), param.resample,
        _join(clip_note, _model_note(robot, param, i, nominals)),
    )


def sample_bounds(spec: ParameterSpec) -> tuple[float, float, str]:
    """Smallest and largest sample, with a note when an unclipped normal side is cut at mean ± 3 std."""
    low, high = spec.bounds()
    if spec.distribution != "normal" or (math.isfinite(low) and math.isfinite(high)):
        return low, high, ""
    spread = UNCLIPPED_STDS * float(spec.std)  # type: ignore[arg-type]
    low = low if math.isfinite(low) else float(spec.mean) - spread  # type: ignore[arg-type]
    high = high if math.isfinite(high) else float(spec.mean) + spread  # type: ignore[arg-type]
    return low, high, "unclipped normal: mean ± 3 std"


def describe(spec: ParameterSpec, apply: Optional[str], resample: str) -> str:
    """The distribution in words: ``loguniform x[0.5, 2]``, ``normal 0 ± 0.002, per step``, ``fixed 0.00153``.

    ``apply`` is given for kinds acting on a nominal value: ``x`` marks a scale
    of it, ``+`` an offset to it; without it the sample is the value itself.
    """
    mark = {"scale": "x", "add": "+", None: ""}[apply]
    if spec.distribution == "fixed":
        words = f"fixed {mark}{_num(spec.value)}"
    elif spec.distribution == "normal":
        centre = f"{_num(spec.mean)} ± {_num(spec.std)}"
        words = f"normal {mark}({centre})" if mark else f"normal {centre}"
        if spec.low is not None or spec.high is not None:
            words += f" clipped to [{_num(spec.low, '-inf')}, {_num(spec.high, 'inf')}]"
    else:
        words = f"{spec.distribution} {mark}[{_num(spec.low)}, {_num(spec.high)}]"
    return words + (", per step" if resample == "step" else "")


def _applied_range(nominals: np.ndarray, apply: str, low: float, high: float, floor: Optional[float]) -> tuple[float, float]:
    """Extremes of nominal x sample (or + sample) over every nominal value, clamped like the sampler."""
    ends = np.concatenate([nominals * low, nominals * high]) if apply == "scale" else np.concatenate([nominals + low, nominals + high])
    if floor is not None:
        ends = np.maximum(ends, floor)
    return float(ends.min()), float(ends.max())


def _value_range(robot: Robot, param: ResolvedParameter, low: float, high: float) -> tuple[float, float, str]:
    """Range of a kind whose sample is the value itself, with what it means for this robot."""
    dt_ms = robot.config.control_dt * 1000.0
    if param.kind == "latency_steps":
        low, high = _latency_steps_range(param.spec, low, high)
        return low, high, f"whole periods: {_num(low * dt_ms)}–{_num(high * dt_ms)} ms"
    if param.kind == "latency_substeps":
        return low, high, f"{_num(low * dt_ms)}–{_num(high * dt_ms)} ms"
    if param.kind == "gravity_tilt":
        g = float(np.linalg.norm(robot.model.opt.gravity))
        return low, high, f"{_num(math.degrees(low))}–{_num(math.degrees(high))}°, |g| = {_num(g)} m/s²"
    if KINDS[param.kind].noise and param.resample == "episode":
        return low, high, _join(NOTES.get(param.kind, ""), "constant bias per episode")
    return low, high, NOTES.get(param.kind, "")


def _latency_steps_range(spec: ParameterSpec, low: float, high: float) -> tuple[float, float]:
    """Whole periods as ``sampler.draw_latency_steps`` draws them: a uniform spans [low, high + 1), the rest round down."""
    top = high + 1.0 - 1e-6 if spec.distribution == "uniform" else high
    return float(math.floor(low)), float(math.floor(top))


def _model_note(robot: Robot, param: ResolvedParameter, i: int, nominals: np.ndarray) -> str:
    """What the nominal column alone does not say: several geoms, inertia following mass, an unlimited actuator."""
    if param.kind == "geom_friction" and nominals.size > 1:
        spread = "" if np.all(nominals == nominals[0]) else f" ({_num(nominals.min())}–{_num(nominals.max())})"
        return f"{nominals.size} geoms{spread}"
    if param.kind == "link_mass":
        return "inertia scales alike"
    if param.kind == "actuator_force_limit" and not robot.model.actuator_forcelimited[_actuator(robot, param, i)]:
        return "actuator not force-limited: no effect"
    return ""


def _model_unit(kind: str) -> str:
    """Unit of the physical value (``x or kg`` → ``kg``; a bare ``x`` scales a dimensionless coefficient)."""
    unit = KINDS[kind].unit.removeprefix("x or ")
    return "" if unit == "x" else unit


def _num(value: Optional[float], none: str = "-") -> str:
    return none if value is None else f"{value:.4g}"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
