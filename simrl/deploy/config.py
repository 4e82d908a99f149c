"""``deploy/<arm>.yaml``: how to reach an arm's motors and how carefully to drive them.

The file is checked twice, like ``robot.yaml``: its shape by pydantic (one-line
errors naming file, field, value and what is allowed, "did you mean" for typos),
then its joint names and limits against the robot, so a motor mapped to a
misspelled joint or a limit past the joint's range is refused before any bus is
opened. The ``bus:`` block and the motor entries belong to the motor family
``bus.kind`` names: their models come from the bus registry
(``simrl.deploy.buses.BUS_KINDS``), everything else here is the runtime's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Union

import numpy as np
import pydantic

from simrl.config import StrictModel, read_yaml, validate_model
from simrl.deploy.buses import BUS_KINDS
from simrl.errors import SimrlError, did_you_mean
from simrl.paths import data_dir
from simrl.robots import Robot


# Each family's ``bus:`` block and motor entry, tagged by ``kind`` (the registry decides which families exist).
BusConfig = Annotated[Union[tuple(kind.bus for kind in BUS_KINDS.values())], pydantic.Field(discriminator="kind")]  # type: ignore[misc]
MotorConfig = Annotated[Union[tuple(kind.motor for kind in BUS_KINDS.values())], pydantic.Field(discriminator="kind")]  # type: ignore[misc]

# A reply timeout of at most this share of the period. A tick waits on two exchanges (the state read, then the
# command), so only a motor silent in both leaves under 20 % for inference; a tick that then runs late is an
# overrun, counted. Less would report a loaded emulator's (or socketcand's) late replies as silent motors.
REPLY_SHARE = 0.4


class SafetyConfig(StrictModel):
    """Limits the bridge enforces on every tick, whatever the policy asks."""

    max_step_rad: float = pydantic.Field(0.1, gt=0, le=1.0)
    max_velocity_rad_s: float = pydantic.Field(8.0, gt=0, le=50.0)
    stale_ticks: int = pydantic.Field(2, ge=1, le=100)


class StartupConfig(StrictModel):
    """The slow move to the home pose before the policy runs."""

    home: dict[str, float] = pydantic.Field(default_factory=dict, description="joint -> rad, overrides robot.yaml's home")
    home_speed_rad_s: float = pydantic.Field(0.5, gt=0, le=3.0)
    settle_s: float = pydantic.Field(0.5, ge=0, le=10.0)


class ShutdownConfig(StrictModel):
    """How the motors are let go: hold, lower their effort while moving to the rest pose, disable."""

    hold_s: float = pydantic.Field(0.2, ge=0, le=10.0)
    effort_ramp_s: float = pydantic.Field(1.0, ge=0, le=10.0, description="each motor's effort 1 -> 0 (what that means is the bus's)")
    rest: dict[str, float] = pydantic.Field(
        default_factory=dict, description="joint -> rad the targets move to during the effort ramp (at home_speed_rad_s); others hold"
    )


class TimingConfig(StrictModel):
    """How the loop thread keeps its deadlines (see ``simrl.deploy.clock``)."""

    realtime_priority: int | None = pydantic.Field(10, ge=1, le=99, description="SCHED_FIFO priority; null: normal scheduling")
    spin_s: float = pydantic.Field(0.0005, ge=0, le=0.01, description="busy-wait this long before each deadline")


class DeployConfig(StrictModel):
    """The schema of ``deploy/<arm>.yaml``."""

    robot: str
    rate_hz: float = pydantic.Field(50.0, gt=0, le=2000.0)
    bus: BusConfig
    motors: list[MotorConfig] = pydantic.Field(min_length=1)
    joint_limits: dict[str, tuple[float, float]] = pydantic.Field(default_factory=dict, description="joint -> [low, high] rad")
    safety: SafetyConfig = SafetyConfig()
    startup: StartupConfig = StartupConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    timing: TimingConfig = TimingConfig()
    success_radius_m: float = pydantic.Field(0.03, gt=0, le=0.5)

    _file: Path = pydantic.PrivateAttr(Path("deploy config"))  # set by load_deploy_config; errors found later name it

    @property
    def file(self) -> Path:
        """The file this config was read from (what later errors, e.g. a missing calibration, name)."""
        return self._file

    @pydantic.model_validator(mode="before")
    @classmethod
    def _motors_of_the_bus_kind(cls, data: Any) -> Any:
        """Each motor entry is validated as the bus's family's: copy ``bus.kind`` into it (a file does not repeat it)."""
        if not isinstance(data, dict) or not isinstance(data.get("bus"), dict) or not isinstance(data.get("motors"), list):
            return data
        kind = data["bus"].get("kind")
        motors = [{**motor, "kind": kind} if isinstance(motor, dict) else motor for motor in data["motors"]]
        return {**data, "motors": motors}

    @property
    def period(self) -> float:
        """Seconds per control tick."""
        return 1.0 / self.rate_hz

    @property
    def reply_timeout(self) -> float:
        """How long one exchange waits for the replies: the bus's timeout, at most ``REPLY_SHARE`` of the period."""
        return min(self.bus.reply_timeout_s, REPLY_SHARE * self.period)


def config_path(robot: str, path: str | Path | None = None) -> Path:
    """The user's file, else the shipped ``deploy/<robot>.yaml``."""
    if path is not None:
        return Path(path)
    shipped = data_dir("deploy") / f"{robot}.yaml"
    if not shipped.is_file():
        names = sorted(p.stem for p in data_dir("deploy").glob("*.yaml"))
        raise SimrlError(f"no deploy config for robot '{robot}'{did_you_mean(robot, names)}; shipped: {', '.join(names)}; give one with --config")
    return shipped


# Fields of earlier deploy files: (section, old name) -> why it went and what replaces it.
_RENAMED = {
    ("shutdown", "gain_ramp_s"): "is now 'shutdown.effort_ramp_s': the safe stop ramps each motor's effort, which each bus maps onto its motors; rename the line",
    ("bus", "mode"): "is now each Dynamixel motor's 'mode' (position, extended_position or current_position), as LeRobot runs the "
    "arm joints and the gripper in different modes; move it into the motor entries",
}


def _refuse_renamed(file: Path, data: Any) -> None:
    """A field of an earlier deploy file gets a line saying what replaces it, not only that it is unknown."""
    for (section, name), why in _RENAMED.items():
        block = data.get(section) if isinstance(data, dict) else None
        if isinstance(block, dict) and name in block:
            raise SimrlError(f"{file}: field '{section}.{name}' = {block[name]!r} {why}")


def load_deploy_config(robot: Robot, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> DeployConfig:
    """Read and check a deploy file for ``robot``; ``overrides`` (dotted keys, e.g. ``bus.port``) are CLI flags, checked alike."""
    return with_overrides(read_deploy_file(robot, path), overrides or {}, robot)


def read_deploy_file(robot: Robot, path: str | Path | None = None) -> DeployConfig:
    """The deploy file for ``robot`` (the user's, else the shipped one), its shape validated; not yet checked against the robot."""
    file = config_path(robot.name, path)
    data = read_yaml(file)
    _refuse_renamed(file, data)
    config = validate_model(file, DeployConfig, data)
    config._file = file
    return config


def with_overrides(config: DeployConfig, overrides: dict[str, Any], robot: Robot) -> DeployConfig:
    """``config`` with dotted keys replaced (``bus.port``: a flag, or an emulated arm's port), validated and checked again."""
    file = config.file
    if overrides:
        data = config.model_dump()
        for dotted, value in overrides.items():
            *parents, key = dotted.split(".")
            node = data
            for part in parents:
                node = node[part]
            node[key] = value
        config = validate_model(file, DeployConfig, data)
        config._file = file
    check_against_robot(file, config, robot)
    return config


def _joint_error(file: Path, field: str, joint: str, valid: list[str], what: str) -> SimrlError:
    return SimrlError(f"{file}: field '{field}' = '{joint}' is not {what}{did_you_mean(joint, valid, '; ')}; allowed: {', '.join(valid)}")


def check_against_robot(file: Path, config: DeployConfig, robot: Robot) -> None:
    """Names, coverage and limits against the robot: every arm joint has a motor, limits lie within the MJCF ranges."""
    if config.robot != robot.name:
        raise SimrlError(f"{file}: field 'robot' = '{config.robot}' but the robot is '{robot.name}'")
    actuated = list(robot.config.arm_joints) + list(robot.config.gripper_joints)
    for key in ("joint", *type(config.motors[0]).unique_fields):  # the bus checks ids too, but only once it is built
        values = [getattr(m, key) for m in config.motors]
        for i, value in enumerate(values):
            if values.index(value) != i:
                raise SimrlError(f"{file}: field 'motors.{i}.{key}' = {value!r} repeats motors.{values.index(value)}; allowed: one motor per {key}")
    for i, motor in enumerate(config.motors):
        if motor.joint not in actuated:
            raise _joint_error(file, f"motors.{i}.joint", motor.joint, actuated, f"an actuated joint of {robot.name}")
    missing = [j for j in robot.config.arm_joints if j not in {m.joint for m in config.motors}]
    if missing:
        raise SimrlError(f"{file}: field 'motors' has no motor for arm joint(s) {', '.join(missing)}; every arm joint needs one")
    for joint in config.joint_limits:
        if joint not in actuated:
            raise _joint_error(file, f"joint_limits.{joint}", joint, actuated, f"an actuated joint of {robot.name}")
    for joint, (low, high) in config.joint_limits.items():
        lo, hi = robot.model.jnt_range[robot.model.joint(joint).id]
        if not low < high:
            raise SimrlError(f"{file}: field 'joint_limits.{joint}' = [{low}, {high}]: allowed: low below high")
        if low < lo - 1e-9 or high > hi + 1e-9:
            raise SimrlError(f"{file}: field 'joint_limits.{joint}' = [{low}, {high}] is outside the joint's range; allowed: within [{lo:g}, {hi:g}]")
    config.bus.check_against_robot(file, config.motors, robot)
    driven = [m.joint for m in config.motors]
    limits = joint_limits(config, robot)
    for section, pose in (("startup.home", config.startup.home), ("shutdown.rest", config.shutdown.rest)):
        for joint, value in pose.items():
            if joint not in driven:
                raise _joint_error(file, f"{section}.{joint}", joint, driven, "a joint with a motor")
            low, high = limits[driven.index(joint)]
            if not low <= value <= high:
                raise SimrlError(f"{file}: field '{section}.{joint}' = {value} is outside the joint limits; allowed: [{low:g}, {high:g}]")


def joint_limits(config: DeployConfig, robot: Robot) -> np.ndarray:
    """(n_motors, 2) target limits in motor order: the file's, else the joint's MJCF range."""
    rows = []
    for motor in config.motors:
        default = robot.model.jnt_range[robot.model.joint(motor.joint).id]
        rows.append(config.joint_limits.get(motor.joint, tuple(default)))
    return np.array(rows, dtype=np.float64)


def home_pose(config: DeployConfig, robot: Robot) -> np.ndarray:
    """(n_motors,) home angles in motor order: robot.yaml's, with the file's overrides."""
    return np.array([config.startup.home.get(m.joint, robot.config.home[m.joint]) for m in config.motors], dtype=np.float64)


def rest_pose(config: DeployConfig) -> np.ndarray:
    """(n_motors,) the shutdown's rest targets in motor order; NaN where a joint holds its last target."""
    return np.array([config.shutdown.rest.get(m.joint, math.nan) for m in config.motors], dtype=np.float64)
