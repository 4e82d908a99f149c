"""Load and validate a robot: its MJCF model plus ``robot.yaml``.

``robot.yaml`` says what the MJCF alone cannot: which joints the policy moves,
the home pose, the control period, the end-effector site and the box goals are
drawn from. It is checked twice: its shape by pydantic, then its names and
values against the compiled MuJoCo model, so a typo names the field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated

import mujoco
import numpy as np
import pydantic

from simrl.config import StrictModel, load_yaml_model
from simrl.errors import SimrlError, did_you_mean
from simrl.paths import data_dir

Vec3 = Annotated[tuple[float, float, float], pydantic.Field(description="x, y, z in metres, world frame")]


class Workspace(StrictModel):
    """Axis-aligned box (world frame, metres) that reach goals are drawn from."""

    low: Vec3
    high: Vec3

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "Workspace":
        for axis, lo, hi in zip("xyz", self.low, self.high):
            if lo >= hi:
                raise ValueError(f"low.{axis} = {lo} must be below high.{axis} = {hi}")
        return self


class ActionScale(StrictModel):
    """Largest change one action of magnitude 1 asks for in one control step."""

    joint_delta: float = pydantic.Field(gt=0, le=1.0, description="rad per control step")
    ee_delta: float = pydantic.Field(gt=0, le=0.2, description="metres per control step")


class RobotConfig(StrictModel):
    """The schema of ``robots/<name>/robot.yaml``."""

    name: str = pydantic.Field(pattern=r"^[a-z0-9_]+$")
    description: str
    mjcf: str = "robot.xml"
    control_dt: float = pydantic.Field(gt=0, le=0.1, description="seconds per policy step")
    arm_joints: list[str] = pydantic.Field(min_length=1, description="joints the policy moves, base to tip")
    gripper_joints: list[str] = pydantic.Field(default_factory=list, description="actuated, held at home in reach")
    ee_site: str
    home: dict[str, float] = pydantic.Field(description="joint name -> home position (rad or m)")
    goal_workspace: Workspace
    action_scale: ActionScale


@dataclass(frozen=True)
class Robot:
    """A validated robot: the compiled MuJoCo model and the indices code needs.

    All index arrays are numpy so both the JAX and the numpy (deployment) paths
    can use them.
    """

    config: RobotConfig
    directory: Path
    model: mujoco.MjModel
    arm_qpos_adr: np.ndarray  # (n_arm,) indices of the arm joints in qpos
    arm_dof_adr: np.ndarray  # (n_arm,) indices of the arm joints in qvel
    arm_actuators: np.ndarray  # (n_arm,) actuator ids driving the arm joints
    gripper_actuators: np.ndarray  # (n_gripper,)
    home_qpos: np.ndarray  # (nq,)
    home_ctrl: np.ndarray  # (nu,) actuator targets that hold the home pose
    ee_site_id: int
    substeps: int  # physics steps per control step

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def n_arm(self) -> int:
        return len(self.config.arm_joints)

    @property
    def arm_joint_ids(self) -> list[int]:
        """MuJoCo joint ids of the arm joints, base to tip."""
        return [self.model.joint(j).id for j in self.config.arm_joints]

    @property
    def arm_ranges(self) -> np.ndarray:
        """(n_arm, 2) joint limits of the arm joints."""
        return self.model.jnt_range[self.arm_joint_ids].copy()

    @property
    def ctrl_ranges(self) -> np.ndarray:
        """(nu, 2) actuator control ranges."""
        return self.model.actuator_ctrlrange.copy()

    @cached_property
    def reach(self) -> float:
        """Largest distance from the first arm joint's anchor to the ee site, in metres.

        Sampled over 20,000 configurations inside the joint limits (seeded), so it
        is a property of the model as written, not a quoted figure.
        """
        data = mujoco.MjData(self.model)
        rng = np.random.default_rng(0)
        lo, hi = self.arm_ranges.T
        first_joint = self.arm_joint_ids[0]
        best = 0.0
        for q in rng.uniform(lo, hi, size=(20_000, self.n_arm)):
            data.qpos[:] = self.home_qpos
            data.qpos[self.arm_qpos_adr] = q
            mujoco.mj_kinematics(self.model, data)
            anchor = data.xanchor[first_joint]
            best = max(best, float(np.linalg.norm(data.site_xpos[self.ee_site_id] - anchor)))
        return best


def available_robots() -> list[str]:
    """Names of the robots shipped in ``robots/``."""
    root = data_dir("robots")
    return sorted(p.name for p in root.iterdir() if (p / "robot.yaml").is_file())


def _resolve(name_or_path: str | Path) -> Path:
    """Map a robot name or a user path (directory or robot.yaml) to its robot.yaml."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    if path.is_dir() and (path / "robot.yaml").is_file():
        return path / "robot.yaml"
    candidate = data_dir("robots") / str(name_or_path) / "robot.yaml"
    if candidate.is_file():
        return candidate
    names = available_robots()
    suggestion = did_you_mean(str(name_or_path), names)
    raise SimrlError(f"unknown robot '{name_or_path}'{suggestion}; available: {', '.join(names)}")


def _names(model: mujoco.MjModel, obj: mujoco.mjtObj, count: int) -> list[str]:
    return [mujoco.mj_id2name(model, obj, i) or "" for i in range(count)]


def _check_name(yaml_path: Path, field: str, name: str, valid: list[str]) -> None:
    if name not in valid:
        suggestion = did_you_mean(name, valid, lead="; ")
        raise SimrlError(f"{yaml_path}: field '{field}' = '{name}' is not in the model{suggestion} (valid: {', '.join(valid)})")


def _compile(yaml_path: Path, mjcf_path: Path) -> mujoco.MjModel:
    if not mjcf_path.is_file():
        raise SimrlError(f"{yaml_path}: field 'mjcf' = '{mjcf_path.name}': file not found next to robot.yaml")
    try:
        return mujoco.MjModel.from_xml_path(str(mjcf_path))
    except ValueError as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise SimrlError(f"{mjcf_path}: MuJoCo cannot compile it: {first_line}") from None


def _actuator_for_joint(model: mujoco.MjModel, yaml_path: Path, joint: str) -> int:
    """The single actuator whose transmission is ``joint``."""
    joint_id = model.joint(joint).id
    hits = [
        i
        for i in range(model.nu)
        if model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT and model.actuator_trnid[i, 0] == joint_id
    ]
    if len(hits) != 1:
        raise SimrlError(f"{yaml_path}: joint '{joint}' must be driven by exactly one actuator in the MJCF, found {len(hits)}")
    return hits[0]


def load_robot(name_or_path: str | Path) -> Robot:
    """Load a shipped robot by name (``"so101"``) or a user's robot folder / robot.yaml."""
    yaml_path = _resolve(name_or_path)
    config = load_yaml_model(yaml_path, RobotConfig)
    model = _compile(yaml_path, yaml_path.parent / config.mjcf)

    joints = _names(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt)
    for i, joint in enumerate(config.arm_joints):
        _check_name(yaml_path, f"arm_joints[{i}]", joint, joints)
        if model.joint(joint).type[0] != mujoco.mjtJoint.mjJNT_HINGE:
            raise SimrlError(f"{yaml_path}: field 'arm_joints[{i}]' = '{joint}' must be a hinge joint")
    for i, joint in enumerate(config.gripper_joints):
        _check_name(yaml_path, f"gripper_joints[{i}]", joint, joints)
    _check_name(yaml_path, "ee_site", config.ee_site, _names(model, mujoco.mjtObj.mjOBJ_SITE, model.nsite))

    home_qpos = model.qpos0.copy()
    for joint, value in config.home.items():
        _check_name(yaml_path, f"home.{joint}", joint, joints)
        jnt = model.joint(joint)
        lo, hi = jnt.range
        if jnt.limited[0] and not lo <= value <= hi:
            raise SimrlError(f"{yaml_path}: field 'home.{joint}' = {value} is outside the joint range [{lo:g}, {hi:g}]")
        home_qpos[jnt.qposadr[0]] = value
    for joint in config.arm_joints + config.gripper_joints:
        if joint not in config.home:
            raise SimrlError(f"{yaml_path}: field 'home' has no value for joint '{joint}'")

    ratio = config.control_dt / model.opt.timestep
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise SimrlError(
            f"{yaml_path}: field 'control_dt' = {config.control_dt} must be a whole multiple of the MJCF timestep {model.opt.timestep}"
        )

    arm_actuators = np.array([_actuator_for_joint(model, yaml_path, j) for j in config.arm_joints])
    gripper_actuators = np.array([_actuator_for_joint(model, yaml_path, j) for j in config.gripper_joints], dtype=int)
    home_ctrl = np.zeros(model.nu)
    for joint, act in zip(config.arm_joints + config.gripper_joints, np.concatenate([arm_actuators, gripper_actuators])):
        home_ctrl[act] = home_qpos[model.joint(joint).qposadr[0]]

    return Robot(
        config=config,
        directory=yaml_path.parent,
        model=model,
        arm_qpos_adr=np.array([model.joint(j).qposadr[0] for j in config.arm_joints]),
        arm_dof_adr=np.array([model.joint(j).dofadr[0] for j in config.arm_joints]),
        arm_actuators=arm_actuators,
        gripper_actuators=gripper_actuators,
        home_qpos=home_qpos,
        home_ctrl=home_ctrl,
        ee_site_id=model.site(config.ee_site).id,
        substeps=int(round(ratio)),
    )
