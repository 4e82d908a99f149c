"""Domain-randomization profiles: the schema of ``randomization/*.yaml`` and its resolution against a robot.

A profile lists parameters by kind (``joint_damping``, ``link_mass``,
``latency_steps``, ...). Each has a distribution (``uniform``, ``loguniform``,
``normal`` clipped to ``[low, high]``, ``fixed``), how the sample acts on the
nominal value (``scale`` or ``add``; every kind has its natural default), when it
is drawn again (``episode``, or ``step`` for noise), and for per-joint or
per-body kinds which joints or bodies it covers: names, ``all``, or a regular
expression written ``re:<pattern>``. A ``robots:`` section overrides entries
for one arm. Every mistake (an unknown key, min > max, a negative scale, an
unknown joint) is reported in one line naming the file, the field and the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
import pydantic

from simrl.config import StrictModel, read_yaml, validate_model
from simrl.errors import SimrlError, did_you_mean
from simrl.paths import data_dir
from simrl.robots import Robot

Targets = Union[Literal["all"], str, Annotated[list[str], pydantic.Field(min_length=1)]]


class ParameterSpec(StrictModel):
    """One randomized parameter: distribution, application, resampling and (per kind) targets."""

    distribution: Literal["uniform", "loguniform", "normal", "fixed"]
    low: Optional[float] = pydantic.Field(None, description="uniform/loguniform: lower bound; normal: clip below")
    high: Optional[float] = pydantic.Field(None, description="uniform/loguniform: upper bound; normal: clip above")
    mean: Optional[float] = pydantic.Field(None, description="normal only")
    std: Optional[float] = pydantic.Field(None, ge=0, description="normal only")
    value: Optional[float] = pydantic.Field(None, description="fixed only")
    apply: Optional[Literal["scale", "add"]] = pydantic.Field(None, description="default: the kind's own")
    resample: Optional[Literal["episode", "step"]] = pydantic.Field(None, description="default: the kind's own")
    joints: Optional[Targets] = None
    bodies: Optional[Targets] = None

    @pydantic.model_validator(mode="after")
    def _distribution_fields(self) -> "ParameterSpec":
        needed = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "normal": ("mean", "std"), "fixed": ("value",)}
        allowed = {"uniform": {"low", "high"}, "loguniform": {"low", "high"}, "normal": {"mean", "std", "low", "high"}, "fixed": {"value"}}
        for name in needed[self.distribution]:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.distribution} distribution needs '{name}'")
        for name in {"low", "high", "mean", "std", "value"} - allowed[self.distribution]:
            if getattr(self, name) is not None:
                raise ValueError(f"'{name}' does not belong to a {self.distribution} distribution (it takes {', '.join(sorted(allowed[self.distribution]))})")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low = {self.low} is above high = {self.high}")
        if self.distribution == "loguniform" and self.low is not None and self.low <= 0:
            raise ValueError(f"a loguniform distribution needs low > 0, got {self.low}")
        return self

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value a sample can take (±inf for an unclipped normal)."""
        if self.distribution == "fixed":
            return float(self.value), float(self.value)  # type: ignore[arg-type]
        low = -np.inf if self.low is None else self.low
        high = np.inf if self.high is None else self.high
        return float(low), float(high)


@dataclass(frozen=True)
class Kind:
    """What a parameter kind acts on, how by default, and what it may be."""

    targets: Literal["joints", "bodies", "none"]
    apply: Literal["scale", "add"]
    resample: Literal["episode", "step"]
    unit: str
    help: str
    noise: bool = False  # may be drawn every step
    nonnegative: bool = False  # the randomized value itself must stay >= 0 (a std, a resolution, a latency)
    applies: tuple[str, ...] = ("scale", "add")


KINDS: dict[str, Kind] = {
    "link_mass": Kind("bodies", "scale", "episode", "x or kg", "mass of each body (its inertia scales with it)"),
    "link_com": Kind("bodies", "add", "episode", "m", "centre-of-mass offset, drawn per axis", applies=("add",)),
    "joint_damping": Kind("joints", "scale", "episode", "x or N·m·s/rad", "viscous damping of each joint"),
    "joint_frictionloss": Kind("joints", "scale", "episode", "x or N·m", "dry friction of each joint"),
    "joint_armature": Kind("joints", "scale", "episode", "x or kg·m²", "rotor inertia reflected at each joint"),
    "actuator_kp": Kind("joints", "scale", "episode", "x or N·m/rad", "position gain of the joint's servo"),
    "actuator_kv": Kind("joints", "scale", "episode", "x or N·m·s/rad", "velocity gain of the joint's servo"),
    "actuator_force_limit": Kind("joints", "scale", "episode", "x or N·m", "torque limit of the joint's servo"),
    "geom_friction": Kind("bodies", "scale", "episode", "x", "sliding friction of the body's geoms"),
    "gravity_tilt": Kind("none", "add", "episode", "rad", "tilt of gravity about a random horizontal axis", applies=("add",)),
    "latency_steps": Kind(
        "none", "add", "episode", "control steps", "whole control periods between a command and its effect (rounded down)",
        nonnegative=True, applies=("add",),
    ),
    "latency_substeps": Kind(
        "none", "add", "episode", "fraction of a period", "extra delay within a period (0 to 1)", nonnegative=True, applies=("add",)
    ),
    "action_noise": Kind(
        "joints", "add", "step", "joint_delta action units", "noise on each joint target, x the robot's joint_delta scale", noise=True, applies=("add",)
    ),
    "obs_joint_pos_noise": Kind("joints", "add", "step", "rad", "noise on measured joint positions", noise=True, applies=("add",)),
    "obs_joint_vel_noise": Kind("joints", "add", "step", "rad/s", "noise on measured joint velocities", noise=True, applies=("add",)),
    "obs_ee_noise": Kind("none", "add", "step", "m", "noise on the observed end-effector position", noise=True, applies=("add",)),
    "encoder_resolution": Kind(
        "joints", "add", "episode", "rad", "quantization step of measured joint positions", nonnegative=True, applies=("add",)
    ),
    "init_joint_noise": Kind("joints", "add", "episode", "rad", "offset of the start pose from home", applies=("add",)),
    "goal_workspace_scale": Kind(
        "none", "scale", "episode", "x", "size of the goal box about its centre", nonnegative=True, applies=("scale",)
    ),
    # Only the deploy bus emulators act on it (simrl.deploy.reality); the training env ignores it.
    "reply_drop_rate": Kind(
        "none", "add", "episode", "probability", "chance that a motor's reply is lost on the bus (bus emulators only)",
        nonnegative=True, applies=("add",),
    ),
}

# Kinds whose value is a fraction, with what it is a fraction of (for the error message).
AT_MOST_ONE = {"latency_substeps": "a fraction of a control period", "reply_drop_rate": "a probability"}

# Model fields each kind writes (the physics backends' PER_WORLD_FIELDS); the rest live in the env layer.
MODEL_KINDS = {
    "link_mass": ("body_mass", "body_inertia"),
    "link_com": ("body_ipos",),
    "joint_damping": ("dof_damping",),
    "joint_frictionloss": ("dof_frictionloss",),
    "joint_armature": ("dof_armature",),
    "actuator_kp": ("actuator_gainprm", "actuator_biasprm"),
    "actuator_kv": ("actuator_biasprm",),
    "actuator_force_limit": ("actuator_forcerange",),
    "geom_friction": ("geom_friction",),
    "gravity_tilt": ("opt.gravity",),
}


class Profile(StrictModel):
    """The schema of a profile after its ``robots:`` overrides for one arm are merged in."""

    description: str = ""
    physics_variants: Optional[int] = pydantic.Field(
        None,
        ge=1,
        description="draw this many sets of model values at each episode start and give each block of neighbouring worlds one of them; "
        "unset: every world draws its own (the cpu backend then steps one model per world, ~10 % slower at 4096 worlds)",
    )
    link_mass: Optional[ParameterSpec] = None
    link_com: Optional[ParameterSpec] = None
    joint_damping: Optional[ParameterSpec] = None
    joint_frictionloss: Optional[ParameterSpec] = None
    joint_armature: Optional[ParameterSpec] = None
    actuator_kp: Optional[ParameterSpec] = None
    actuator_kv: Optional[ParameterSpec] = None
    actuator_force_limit: Optional[ParameterSpec] = None
    geom_friction: Optional[ParameterSpec] = None
    gravity_tilt: Optional[ParameterSpec] = None
    latency_steps: Optional[ParameterSpec] = None
    latency_substeps: Optional[ParameterSpec] = None
    action_noise: Optional[ParameterSpec] = None
    obs_joint_pos_noise: Optional[ParameterSpec] = None
    obs_joint_vel_noise: Optional[ParameterSpec] = None
    obs_ee_noise: Optional[ParameterSpec] = None
    encoder_resolution: Optional[ParameterSpec] = None
    init_joint_noise: Optional[ParameterSpec] = None
    goal_workspace_scale: Optional[ParameterSpec] = None
    reply_drop_rate: Optional[ParameterSpec] = None

    @pydantic.field_validator(*KINDS)
    @classmethod
    def _kind_rules(cls, spec: ParameterSpec | None, info: pydantic.ValidationInfo) -> ParameterSpec | None:
        if spec is not None:
            _check_kind(info.field_name, KINDS[info.field_name], spec)
        return spec

    def parameters(self) -> dict[str, ParameterSpec]:
        return {name: spec for name in KINDS if (spec := getattr(self, name)) is not None}


def _check_kind(name: str, kind: Kind, spec: ParameterSpec) -> None:
    """The rules that depend on the kind (raised as ValueError so pydantic attributes them to ``name``)."""
    apply = spec.apply or kind.apply
    if apply not in kind.applies:
        raise ValueError(f"{name}: apply '{apply}' is not possible (allowed: {', '.join(kind.applies)})")
    if spec.resample == "step" and not kind.noise:
        raise ValueError(f"{name}: resample 'step' is only for noise (action_noise, obs_*_noise); use 'episode'")
    for field, wanted in (("joints", "joints"), ("bodies", "bodies")):
        if getattr(spec, field) is not None and kind.targets != wanted:
            takes = f"takes '{kind.targets}'" if kind.targets != "none" else "applies to the whole robot"
            raise ValueError(f"{name}: has no '{field}' ({name} {takes})")
    low, _ = spec.bounds()
    if apply == "scale" and low < 0:
        raise ValueError(f"{name}: a scale must not be negative, but the distribution reaches {low} (set low >= 0)")
    if kind.nonnegative and low < 0:
        raise ValueError(f"{name}: must not be negative, but the distribution reaches {low} (set low >= 0)")
    if name in AT_MOST_ONE and spec.bounds()[1] > 1:
        raise ValueError(f"{name}: {AT_MOST_ONE[name]} must be at most 1, got high = {spec.bounds()[1]}")


def _override(base: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """A robot's entries over the base: an entry naming a ``distribution`` replaces the base entry whole
    (its bounds belong to the old distribution); one without, e.g. only ``joints:``, is merged into it."""
    merged = dict(base)
    for kind, entry in section.items():
        if isinstance(entry, dict) and "distribution" not in entry and isinstance(base.get(kind), dict):
            merged[kind] = {**base[kind], **entry}
        else:
            merged[kind] = entry
    return merged


PROFILES_HINT = "a profile name in randomization/ or a path to a .yaml file"


def profile_path(name_or_path: str | Path) -> Path:
    """``default`` → ``randomization/default.yaml``; an existing path is taken as it is."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = data_dir("randomization") / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = available_profiles()
    suggestion = did_you_mean(str(name_or_path), names)
    raise SimrlError(f"unknown randomization profile '{name_or_path}'{suggestion}; available: {', '.join(names)}, or {PROFILES_HINT}")


def available_profiles() -> list[str]:
    return sorted(p.stem for p in data_dir("randomization").glob("*.yaml"))


def load_profile(name_or_path: str | Path, robot: str | None = None) -> tuple[Profile, Path]:
    """Read and validate a profile; with ``robot``, its ``robots: {robot: ...}`` entries are merged in.

    Without ``robot`` every override section is still validated, so
    ``simrl randomization validate FILE`` catches a mistake in any of them.
    """
    path = profile_path(name_or_path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SimrlError(f"{path}: a randomization profile must be a mapping of parameters, got {type(data).__name__}")
    overrides = data.pop("robots", None) or {}
    if not isinstance(overrides, dict):
        raise SimrlError(f"{path}: field 'robots' must map robot names to parameter overrides")
    base = validate_model(path, Profile, data)
    merged = {}
    for name, section in overrides.items():
        if not isinstance(section, dict):
            raise SimrlError(f"{path}: field 'robots.{name}' must be a mapping of parameters")
        merged[name] = _override(data, section)
    with_robots = validate_model(path, _WithRobots, {"robots": merged})  # errors read 'robots.<arm>.<field>'
    return (with_robots.robots[robot] if robot in with_robots.robots else base), path


class _WithRobots(StrictModel):
    """Every ``robots:`` override merged over the base, validated at once."""

    robots: dict[str, Profile]


@dataclass(frozen=True)
class ResolvedParameter:
    """A parameter bound to one robot: the joints or bodies it covers, by name and index."""

    kind: str
    spec: ParameterSpec
    apply: str
    resample: str
    names: tuple[str, ...]  # joint or body names; () for whole-robot kinds
    arm_index: np.ndarray  # positions among the arm joints (joint kinds)
    ids: np.ndarray  # MuJoCo joint ids (joint kinds) or body ids (body kinds)


@dataclass(frozen=True)
class ResolvedProfile:
    """A validated profile resolved against a robot, ready to sample."""

    name: str
    path: Path
    profile: Profile
    parameters: tuple[ResolvedParameter, ...]

    def get(self, kind: str) -> ResolvedParameter | None:
        return next((p for p in self.parameters if p.kind == kind), None)

    @property
    def model_fields(self) -> tuple[str, ...]:
        """Model fields this profile varies per world (in PER_WORLD_FIELDS order of appearance)."""
        fields: list[str] = []
        for p in self.parameters:
            for field in MODEL_KINDS.get(p.kind, ()):
                if field not in fields:
                    fields.append(field)
        return tuple(fields)


def _match(path: Path, field: str, targets: Targets, valid: list[str]) -> list[str]:
    """Names selected by ``targets`` among ``valid``; an unknown name or a regex matching nothing is an error."""
    if targets == "all":
        return list(valid)
    if isinstance(targets, str) and targets.startswith("re:"):
        try:
            pattern = re.compile(targets[3:])
        except re.error as exc:
            raise SimrlError(f"{path}: field '{field}' = {targets!r}: invalid regular expression ({exc})") from None
        chosen = [n for n in valid if pattern.fullmatch(n)]
        if not chosen:
            raise SimrlError(f"{path}: field '{field}' = {targets!r} matches none of: {', '.join(valid)}")
        return chosen
    names = [targets] if isinstance(targets, str) else list(targets)
    for name in names:
        if name not in valid:
            suggestion = did_you_mean(name, valid)
            raise SimrlError(f"{path}: field '{field}' = {name!r}: unknown{suggestion}; valid: all, re:<pattern>, {', '.join(valid)}")
    return names


def robot_bodies(robot: Robot) -> list[str]:
    """Bodies a profile may name: every named body but the world."""
    import mujoco

    return [mujoco.mj_id2name(robot.model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(1, robot.model.nbody)]


def resolve_profile(name_or_path: str | Path, robot: Robot) -> ResolvedProfile:
    """Load ``name_or_path`` for ``robot`` and bind every parameter to joint or body indices."""
    import mujoco

    profile, path = load_profile(name_or_path, robot.name)
    overridden = ((read_yaml(path) or {}).get("robots") or {}).get(robot.name) or {}
    arm_joints = list(robot.config.arm_joints)
    bodies = robot_bodies(robot)
    resolved = []
    for name, spec in profile.parameters().items():
        kind = KINDS[name]
        field = f"robots.{robot.name}.{name}" if name in overridden else name
        if kind.targets == "joints":
            names = _match(path, f"{field}.joints", spec.joints if spec.joints is not None else "all", arm_joints)
            arm_index = np.array([arm_joints.index(n) for n in names], dtype=np.int32)
            ids = np.asarray(robot.arm_joint_ids, dtype=np.int32)[arm_index]
        elif kind.targets == "bodies":
            names = _match(path, f"{field}.bodies", spec.bodies if spec.bodies is not None else "all", bodies)
            arm_index = np.zeros(0, dtype=np.int32)
            ids = np.array([mujoco.mj_name2id(robot.model, mujoco.mjtObj.mjOBJ_BODY, n) for n in names], dtype=np.int32)
        else:
            names, arm_index, ids = [], np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
        resolved.append(
            ResolvedParameter(
                kind=name,
                spec=spec,
                apply=spec.apply or kind.apply,
                resample=spec.resample or kind.resample,
                names=tuple(names),
                arm_index=arm_index,
                ids=ids,
            )
        )
    return ResolvedProfile(name=path.stem, path=path, profile=profile, parameters=tuple(resolved))
