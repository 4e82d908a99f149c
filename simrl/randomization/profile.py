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

The per-joint and per-body model kinds (``LIST_KINDS``) may instead be a list of
entries, each naming its own ``joints:`` or ``bodies:``, so a system
identification can centre each joint's range on its own fitted value (damping
x1.8 +- 10 % on the shoulder, x1.0 +- 30 % on the wrist). Entries of one kind
may not share a joint or body: a joint drawn twice would get the product of
two draws, which no entry describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Union

import numpy as np
import pydantic

from simrl.config import StrictModel, one_or_list, read_yaml, validate_model
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
    # Only the deploy bus emulators act on it (simrl.deploy.emulation.reality); the training env ignores it.
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

# Kinds that may be a list of entries, each on its own joints or bodies: the model kinds with per-joint or per-body
# targets. The env-layer kinds are read as one value per kind (latency, noise), so a list would have no single meaning there.
LIST_KINDS = tuple(name for name in MODEL_KINDS if KINDS[name].targets != "none")

Entries = one_or_list(ParameterSpec)
TARGET_WORD = {"joints": "joint", "bodies": "body"}


class Profile(StrictModel):
    """The schema of a profile after its ``robots:`` overrides for one arm are merged in."""

    description: str = ""
    link_mass: Optional[Entries] = None
    link_com: Optional[Entries] = None
    joint_damping: Optional[Entries] = None
    joint_frictionloss: Optional[Entries] = None
    joint_armature: Optional[Entries] = None
    actuator_kp: Optional[Entries] = None
    actuator_kv: Optional[Entries] = None
    actuator_force_limit: Optional[Entries] = None
    geom_friction: Optional[Entries] = None
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

    @pydantic.field_validator(*(name for name in KINDS if name not in LIST_KINDS), mode="before")
    @classmethod
    def _one_entry(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        if isinstance(value, list):
            raise ValueError(f"a list of entries is allowed only for {', '.join(LIST_KINDS)}; give {info.field_name} one entry")
        return value

    @pydantic.field_validator(*KINDS)
    @classmethod
    def _kind_rules(cls, value: ParameterSpec | list[ParameterSpec] | None, info: pydantic.ValidationInfo) -> Any:
        name = info.field_name
        if isinstance(value, list):
            targets = KINDS[name].targets
            for i, spec in enumerate(value):
                _check_kind(f"{name}.{i}", KINDS[name], spec)
                if getattr(spec, targets) is None:
                    raise ValueError(f"{name}.{i}: every entry of a list names its {targets} ({targets}: names, all or re:<pattern>)")
        elif value is not None:
            _check_kind(name, KINDS[name], value)
        return value

    def parameters(self) -> dict[str, ParameterSpec | list[ParameterSpec]]:
        """The kinds this profile sets, each one entry or (``LIST_KINDS``) a list of them."""
        return {name: value for name in KINDS if (value := getattr(self, name)) is not None}

    def entries(self) -> list[tuple[str, Optional[int], ParameterSpec]]:
        """Every entry as (kind, position in its kind's list or None for a single entry, spec), in kind order."""
        return [
            (name, i if isinstance(value, list) else None, spec)
            for name, value in self.parameters().items()
            for i, spec in (enumerate(value) if isinstance(value, list) else [(0, value)])
        ]


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


def _override(label: Path, robot: str, base: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """A robot's entries over the base: an entry naming a ``distribution`` replaces the base entry whole
    (its bounds belong to the old distribution); one without, e.g. only ``joints:``, is merged into it.
    A list replaces the base whole too, and a base list can only be replaced (which of its entries would a
    partial entry change?)."""
    merged = dict(base)
    for kind, entry in section.items():
        if isinstance(entry, dict) and "distribution" not in entry and isinstance(base.get(kind), list):
            raise SimrlError(
                f"{label}: field 'robots.{robot}.{kind}' = {entry!r}: the base {kind} is a list, which an override replaces whole; "
                "give a full entry (with its distribution) or a list"
            )
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


@dataclass(frozen=True)
class InlineProfile:
    """A profile held in memory rather than in a file (e.g. the one a policy's metadata carries).

    ``label`` stands where a file's path would in error messages and in ``ResolvedProfile.path``.
    """

    name: str
    label: Path
    data: Mapping[str, Any]


ProfileSource = Union[str, Path, InlineProfile]


def _read(source: ProfileSource) -> tuple[str, Path, dict[str, Any]]:
    """(name, path or label, the parsed mapping) of a profile name, file or in-memory profile."""
    if isinstance(source, InlineProfile):
        name, label, data = source.name, source.label, source.data
    else:
        label = profile_path(source)
        name, data = label.stem, read_yaml(label)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SimrlError(f"{label}: a randomization profile must be a mapping of parameters, got {type(data).__name__}")
    if "physics_variants" in data:  # a field of earlier profiles: say why it went rather than only that it is unknown
        raise SimrlError(
            f"{label}: field 'physics_variants' = {data['physics_variants']!r} is gone: every world draws its own model values, "
            "at no cost since the cpu backend runs on mujoco.batch (experiments/results/randomization.md); delete the line"
        )
    return name, label, dict(data)


def load_profile(source: ProfileSource, robot: str | None = None) -> tuple[Profile, Path]:
    """Read and validate a profile; with ``robot``, its ``robots: {robot: ...}`` entries are merged in.

    Without ``robot`` every override section is still validated, so
    ``simrl randomization validate FILE`` catches a mistake in any of them.
    Returns the profile and its path (an ``InlineProfile``'s label).
    """
    _, label, data = _read(source)
    return _validated(label, data, robot), label


def _validated(label: Path, data: dict[str, Any], robot: str | None) -> Profile:
    overrides = data.pop("robots", None) or {}
    if not isinstance(overrides, dict):
        raise SimrlError(f"{label}: field 'robots' must map robot names to parameter overrides")
    base = validate_model(label, Profile, data)
    merged = {}
    for name, section in overrides.items():
        if not isinstance(section, dict):
            raise SimrlError(f"{label}: field 'robots.{name}' must be a mapping of parameters")
        merged[name] = _override(label, name, data, section)
    with_robots = validate_model(label, _WithRobots, {"robots": merged})  # errors read 'robots.<arm>.<field>'
    return with_robots.robots[robot] if robot in with_robots.robots else base


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
    entry: Optional[int] = None  # position in its kind's list of entries; None for a kind given as one entry

    @property
    def label(self) -> str:
        """The entry as a profile names it: ``joint_damping``, or ``joint_damping.1`` for the second of a list."""
        return self.kind if self.entry is None else f"{self.kind}.{self.entry}"


@dataclass(frozen=True)
class ResolvedProfile:
    """A validated profile resolved against a robot, ready to sample."""

    name: str
    path: Path
    profile: Profile
    parameters: tuple[ResolvedParameter, ...]

    def get(self, kind: str) -> ResolvedParameter | None:
        """The parameter of ``kind``, None if the profile leaves it out.

        For the kinds read as one value (latency, noise, ...); a kind given as a
        list of several entries has no single parameter, so asking for one is a bug.
        """
        found = self.entries(kind)
        if len(found) > 1:
            raise ValueError(f"{kind} has {len(found)} entries in profile '{self.name}'; use entries({kind!r})")
        return found[0] if found else None

    def entries(self, kind: str) -> tuple[ResolvedParameter, ...]:
        """Every entry of ``kind``, each on its own joints or bodies (one for a kind given as one entry)."""
        return tuple(p for p in self.parameters if p.kind == kind)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds the profile randomizes, in profile order, each once."""
        return tuple(dict.fromkeys(p.kind for p in self.parameters))

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


def resolve_profile(source: ProfileSource, robot: Robot) -> ResolvedProfile:
    """Load ``source`` for ``robot`` and bind every entry to joint or body indices.

    Entries of one kind that would cover the same joint or body are refused,
    naming the later entry's field and the joint.
    """
    import mujoco

    name, path, data = _read(source)
    overridden = (data.get("robots") or {}).get(robot.name) or {}
    profile = _validated(path, data, robot.name)
    arm_joints = list(robot.config.arm_joints)
    bodies = robot_bodies(robot)
    resolved = []
    covered: dict[tuple[str, str], str] = {}  # (kind, joint or body) -> the field of the entry covering it
    for kind_name, entry, spec in profile.entries():
        kind = KINDS[kind_name]
        field = f"robots.{robot.name}.{kind_name}" if kind_name in overridden else kind_name
        field = field if entry is None else f"{field}.{entry}"
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
        for target in names:
            if (kind_name, target) in covered:
                raise SimrlError(
                    f"{path}: field '{field}.{kind.targets}' = {getattr(spec, kind.targets)!r}: {target} is already covered by "
                    f"{covered[kind_name, target]}; each {TARGET_WORD[kind.targets]} takes at most one entry of {kind_name}"
                )
            covered[kind_name, target] = field
        resolved.append(
            ResolvedParameter(
                kind=kind_name,
                spec=spec,
                apply=spec.apply or kind.apply,
                resample=spec.resample or kind.resample,
                names=tuple(names),
                arm_index=arm_index,
                ids=ids,
                entry=entry,
            )
        )
    return ResolvedProfile(name=name, path=path, profile=profile, parameters=tuple(resolved))
