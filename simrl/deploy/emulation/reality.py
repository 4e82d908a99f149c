"""The "real" arm behind a bus emulator: MuJoCo with hidden parameters that differ from the training model.

A reality is a randomization profile (``deploy/realities/*.yaml`` or any
``randomization/*.yaml``) drawn once with a seed: heavier links, more friction,
weaker motors, command latency, encoder noise, lost replies. ``RealityPlant``
simulates the arm under it the way Damiao motors drive the real one: every
motor runs its MIT law ``tau = kp (q_des - q) + kd (dq_des - dq) + tau_ff`` at
every physics substep (the motor's own current loop, far faster than the bus),
clamped to its torque limit. The torque a motor reports is what its firmware
believes it applies (its current estimate times its nominal torque constant):
the MIT law with the commanded gains, clamped to the rated limit, before the
reality's gain and torque-limit errors, which a real motor cannot see either. The gap checker's job is to recover these values
from deploy logs, so ``Reality.describe()`` says what they were.

Kinds a reality acts on: the model kinds (masses, centres of mass, damping,
friction, armature, geom friction, gravity tilt), ``actuator_kp`` /
``actuator_kv`` / ``actuator_force_limit`` as scales of the motor's commanded
gains and torque limit (a torque-constant or current-loop error),
``latency_steps`` + ``latency_substeps`` as command latency,
``obs_joint_pos_noise`` / ``obs_joint_vel_noise`` / ``encoder_resolution`` on
the motor's reply, and ``reply_drop_rate``. The policy-side kinds
(``action_noise``, ``obs_ee_noise``, ``init_joint_noise``,
``goal_workspace_scale``) belong to the bridge or the task and are ignored: the
arm starts at home.

No JAX here (``simrl.deploy`` runs on the robot's computer): sampling goes
through ``simrl.randomization.apply`` with numpy.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Sequence

import mujoco
import numpy as np

from simrl.deploy.emulation.plant import MotorSample
from simrl.errors import SimrlError, did_you_mean
from simrl.paths import data_dir
from simrl.randomization import apply
from simrl.randomization.profile import ResolvedParameter, ResolvedProfile, available_profiles, profile_path, resolve_profile
from simrl.randomization.table import describe as describe_distribution
from simrl.robots import Robot, load_robot

# Within this of a physics substep's start, a command that falls due acts in that substep (float rounding).
TIME_EPS = 1e-9


def _seed_streams(seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """Independent streams for the one-time draw and for the plant's per-reply noise and drops."""
    draw, runtime = np.random.SeedSequence(seed).spawn(2)
    return draw, runtime


def available_realities() -> list[str]:
    """Reality files shipped in ``deploy/realities/``."""
    return sorted(p.stem for p in (data_dir("deploy") / "realities").glob("*.yaml"))


def reality_path(name_or_path: str | Path) -> Path:
    """``openarm-test`` → ``deploy/realities/openarm-test.yaml``; a profile name (``strong``) → its
    ``randomization/`` file; a path as it is."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = data_dir("deploy") / "realities" / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    if str(name_or_path) in available_profiles():
        return profile_path(name_or_path)
    names = available_realities() + available_profiles()
    suggestion = did_you_mean(str(name_or_path), names)
    raise SimrlError(f"unknown reality '{name_or_path}'{suggestion}; available: {', '.join(names)}, or a path to a profile .yaml")


@dataclass(frozen=True)
class Reality:
    """One draw of a profile for one robot: the values the emulated arm hides from the policy."""

    name: str
    seed: int
    robot: Robot
    profile: ResolvedProfile
    model: dict[str, np.ndarray]  # model fields the profile varies, as drawn (no world axis)
    values: dict[str, np.ndarray]  # the other kinds, drawn once: (covered joints,) or a scalar

    @property
    def command_latency(self) -> float:
        """Seconds from a command's arrival to its effect: whole control periods plus a fraction of one."""
        periods = float(self.values.get("latency_steps", 0)) + float(self.values.get("latency_substeps", 0.0))
        return periods * self.robot.config.control_dt

    @property
    def reply_drop_rate(self) -> float:
        return float(self.values.get("reply_drop_rate", 0.0))

    def joint_values(self, kind: str) -> np.ndarray:
        """This draw of a per-joint kind over all arm joints (n_arm,), 0 where absent or not covered."""
        param = self.profile.get(kind)
        if param is None or kind not in self.values:
            return np.zeros(self.robot.n_arm)
        return apply.spread_over_joints(np, self.values[kind][None], param, self.robot.n_arm)[0]

    def per_step_noise(self, kind: str) -> ResolvedParameter | None:
        """The parameter of a noise kind drawn anew at every reply (``resample: step``), else None."""
        param = self.profile.get(kind)
        return param if param is not None and param.resample == "step" else None

    def _actuator_ratio(self, field: str, column: int) -> np.ndarray:
        """Drawn / nominal value of an arm actuator parameter (n_arm,), 1 where undrawn or nominally 0."""
        return apply.actuator_ratio(self.robot.model, self.model, field, self.robot.arm_actuators, column)

    @property
    def kp_scale(self) -> np.ndarray:
        """Effective / commanded position gain per arm joint (``actuator_kp``)."""
        return self._actuator_ratio("actuator_gainprm", 0)

    @property
    def kv_scale(self) -> np.ndarray:
        """Effective / commanded velocity gain per arm joint (``actuator_kv``)."""
        return self._actuator_ratio("actuator_biasprm", 2)

    @property
    def force_limit_scale(self) -> np.ndarray:
        """Available / rated torque per arm joint (``actuator_force_limit``)."""
        return self._actuator_ratio("actuator_forcerange", 1)

    def apply_to(self, model: mujoco.MjModel) -> None:
        """Write the drawn model fields into ``model`` (a copy of the robot's)."""
        for field, value in self.model.items():
            attrgetter(field)(model)[...] = value

    def describe(self) -> dict[str, Any]:
        """What differs from the nominal robot, JSON-ready, for the deploy report (and the gap checker's truth)."""
        model, joints = self.robot.model, list(self.robot.config.arm_joints)
        bodies = [model.body(i).name for i in range(model.nbody)]
        geoms = [model.geom(i).name or f"geom{i}" for i in range(model.ngeom)]
        dofs = model.jnt_dofadr[self.robot.arm_joint_ids]
        ones, zeros = np.ones(len(joints)), np.zeros(len(joints))
        rows = {
            "link_mass": (bodies, model.body_mass, self.model.get("body_mass")),
            "link_com": (bodies, model.body_ipos, self.model.get("body_ipos")),
            "joint_damping": (joints, model.dof_damping[dofs], self._drawn("dof_damping", dofs)),
            "joint_frictionloss": (joints, model.dof_frictionloss[dofs], self._drawn("dof_frictionloss", dofs)),
            "joint_armature": (joints, model.dof_armature[dofs], self._drawn("dof_armature", dofs)),
            "geom_friction": (geoms, model.geom_friction[:, 0], self._drawn("geom_friction", (slice(None), 0))),
            "gravity": (["world"], model.opt.gravity[None], self._drawn("opt.gravity", None)),
            "kp_scale": (joints, ones, self.kp_scale),
            "kv_scale": (joints, ones, self.kv_scale),
            "force_limit_scale": (joints, ones, self.force_limit_scale),
            "obs_joint_pos_bias": (joints, zeros, self.joint_values("obs_joint_pos_noise")),
            "obs_joint_vel_bias": (joints, zeros, self.joint_values("obs_joint_vel_noise")),
            "encoder_resolution": (joints, zeros, self.joint_values("encoder_resolution")),
        }
        out: dict[str, Any] = {name: diff for name, (names, nominal, drawn) in rows.items() if (diff := _differing(names, nominal, drawn))}
        for kind in ("obs_joint_pos_noise", "obs_joint_vel_noise"):
            if (param := self.per_step_noise(kind)) is not None:
                out[kind] = {"distribution": describe_distribution(param.spec, None, "step"), "joints": list(param.names)}
        for name, value in (("command_latency_s", self.command_latency), ("reply_drop_rate", self.reply_drop_rate)):
            if value:
                out[name] = _rounded(value)
        return {"reality": self.name, "seed": self.seed, **out}

    def _drawn(self, field: str, index: Any) -> np.ndarray | None:
        """``field[index]`` as drawn, None where the profile leaves the field nominal."""
        return self.model[field][index] if field in self.model else None


def _rounded(value: Any) -> Any:
    """A float (or list of floats) to 6 significant digits, for a report a person reads."""
    array = np.asarray(value, dtype=float)
    return float(f"{float(array):.6g}") if array.ndim == 0 else [float(f"{v:.6g}") for v in array.ravel()]


def _differing(names: Sequence[str], nominal: np.ndarray, drawn: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """``{name: {nominal, reality}}`` for the rows of ``drawn`` that differ from ``nominal`` (beyond float32 rounding)."""
    if drawn is None:
        return {}
    return {
        name: {"nominal": _rounded(a), "reality": _rounded(b)}
        for name, a, b in zip(names, nominal, drawn)
        if not np.allclose(a, b, rtol=1e-6, atol=1e-12)
    }


def load_reality(name_or_path: str | Path, robot: Robot | str, seed: int) -> Reality:
    """Draw a reality from a profile for ``robot``; the same seed gives the same arm."""
    robot = robot if isinstance(robot, Robot) else load_robot(robot)
    profile = resolve_profile(reality_path(name_or_path), robot)
    nominal = apply.nominal_fields(robot, profile.model_fields)
    source = apply.GeneratorSource(np.random.default_rng(_seed_streams(seed)[0]))
    model, values = apply.sample_episode(np, source, profile.parameters, nominal, apply.ModelIndex.for_robot(robot), 1)
    return Reality(
        name=profile.name,
        seed=seed,
        robot=robot,
        profile=profile,
        model={field: np.array(value[0]) for field, value in model.items()},
        values={kind: np.array(value[0]) for kind, value in values.items()},
    )


class RealityPlant:
    """A ``MotorPlant``: the robot under a reality, its motor joints driven by MIT-law torques.

    Motors start disabled at the home pose (zero torque: the arm sags under
    gravity until enabled). Joints without a motor keep their MJCF position
    actuator holding home (e.g. the gripper when only the arm is on the bus).
    Time moves only through ``advance`` (or a ``RealTimeStepper``); every
    method is safe to call from another thread.
    """

    def __init__(self, robot: Robot, reality: Reality, motor_joints: Sequence[str], motor_limits: Sequence[float]):
        if reality.robot.name != robot.name:
            raise SimrlError(f"reality '{reality.name}' was drawn for robot '{reality.robot.name}', not '{robot.name}'")
        self.robot, self.reality = robot, reality
        self.num_motors = len(motor_joints)
        actuated = _actuator_of_joint(robot)
        _check_motors(robot, motor_joints, motor_limits, actuated)
        self.model = copy.deepcopy(robot.model)
        reality.apply_to(self.model)
        for joint in motor_joints:  # the motor's MIT law replaces the MJCF servo
            self.model.actuator_gainprm[actuated[joint]] = 0.0
            self.model.actuator_biasprm[actuated[joint]] = 0.0
        self._data = mujoco.MjData(self.model)
        self._data.qpos[:] = robot.home_qpos
        self._data.ctrl[:] = robot.home_ctrl
        mujoco.mj_forward(self.model, self._data)

        self._qpos_adr = np.array([robot.model.joint(j).qposadr[0] for j in motor_joints])
        self._dof_adr = np.array([robot.model.joint(j).dofadr[0] for j in motor_joints])
        arm = list(robot.config.arm_joints)
        self._arm_index = [arm.index(j) if j in arm else None for j in motor_joints]
        self._kp_scale = self._per_motor(reality.kp_scale, 1.0)
        self._kv_scale = self._per_motor(reality.kv_scale, 1.0)
        self._rated = np.asarray(motor_limits, dtype=float)
        self._limit = self._rated * self._per_motor(reality.force_limit_scale, 1.0)
        self._share = np.ones(self.num_motors)  # the firmware's torque cap, a share of the limit
        self._deadband = np.zeros(self.num_motors)  # rad
        self._pos_bias = self._per_motor(reality.joint_values("obs_joint_pos_noise"), 0.0)
        self._vel_bias = self._per_motor(reality.joint_values("obs_joint_vel_noise"), 0.0)
        self._resolution = self._per_motor(reality.joint_values("encoder_resolution"), 0.0)
        self._pos_noise = self._per_step_noise("obs_joint_pos_noise")
        self._vel_noise = self._per_step_noise("obs_joint_vel_noise")

        self._rng = np.random.default_rng(_seed_streams(reality.seed)[1])
        self._noise = apply.GeneratorSource(self._rng)
        self._lock = threading.Lock()
        self._enabled = np.zeros(self.num_motors, dtype=bool)
        self._silent = np.zeros(self.num_motors, dtype=bool)
        self._commands = np.zeros((self.num_motors, 5))  # per motor: position, velocity, kp, kd, torque (all 0: no torque)
        self._pending: deque[tuple[float, int, tuple[float, ...]]] = deque()  # (due time, motor, command), due times ascending
        self._torque = np.zeros(self.num_motors)  # applied to the joints
        self._reported = np.zeros(self.num_motors)  # what the firmware believes it applies
        self._steps = 0
        self._remainder = 0.0

    def _per_motor(self, arm_values: np.ndarray, default: float) -> np.ndarray:
        """An (n_arm,) per-joint array as (num_motors,), ``default`` for motors off the arm (the gripper)."""
        return np.array([default if j is None else float(arm_values[j]) for j in self._arm_index])

    def _per_step_noise(self, kind: str) -> list[ResolvedParameter | None]:
        """Per motor: the noise parameter drawn at every reply where it covers the motor's joint."""
        param = self.reality.per_step_noise(kind)
        covered = set() if param is None else {int(i) for i in param.arm_index}
        return [param if j in covered else None for j in self._arm_index]

    @property
    def time(self) -> float:
        """Simulated seconds since the plant was made (whole physics substeps)."""
        with self._lock:
            return self._steps * self.model.opt.timestep

    @property
    def qpos(self) -> np.ndarray:
        with self._lock:
            return self._data.qpos.copy()

    @property
    def qvel(self) -> np.ndarray:
        with self._lock:
            return self._data.qvel.copy()

    def set_enabled(self, motor: int, enabled: bool) -> None:
        """Torque on or off, at once (the enable frame switches the motor's driver, not its set point)."""
        with self._lock:
            self._enabled[motor] = enabled

    def set_command(self, motor: int, position: float, velocity: float, kp: float, kd: float, torque: float) -> None:
        """Queue the set point; it acts from the first substep at or after now + the reality's command latency."""
        with self._lock:
            due = self._steps * self.model.opt.timestep + self.reality.command_latency
            self._pending.append((due, motor, (position, velocity, kp, kd, torque)))

    def set_torque_limit(self, motor: int, share: float) -> None:
        """Cap the torque at ``share`` of the (reality's) limit from the next substep; the reported torque is capped alike."""
        if not 0.0 <= share <= 1.0:
            raise SimrlError(f"set_torque_limit: share = {share} must lie in [0, 1]")
        with self._lock:
            self._share[motor] = share

    def set_deadband(self, motor: int, radians: float) -> None:
        """A position error within ``radians`` of the set point drives no proportional torque (the servo's dead zone)."""
        if radians < 0:
            raise SimrlError(f"set_deadband: radians = {radians} must not be negative")
        with self._lock:
            self._deadband[motor] = radians

    @property
    def applied_torque(self) -> np.ndarray:
        """(num_motors,) the torque each motor really applied on the last substep: the truth behind the reported torque."""
        with self._lock:
            return self._torque.copy()

    def sample(self, motor: int) -> MotorSample:
        """Encoder reading (with the reality's noise and resolution) and the torque the motor believes it applied last.

        Like a real motor's current-based estimate, the reported torque is the MIT
        law with the commanded gains, clamped to the rated limit: the reality's kp,
        kv and torque-limit scales act on the arm but not on this report.
        """
        with self._lock:
            position = self._data.qpos[self._qpos_adr[motor]] + self._pos_bias[motor] + self._draw(self._pos_noise[motor])
            velocity = self._data.qvel[self._dof_adr[motor]] + self._vel_bias[motor] + self._draw(self._vel_noise[motor])
            position = apply.quantize(np, position, self._resolution[motor])
            return MotorSample(position=float(position), velocity=float(velocity), torque=float(self._reported[motor]))

    def _draw(self, param: ResolvedParameter | None) -> float:
        return 0.0 if param is None else float(apply.draw(np, self._noise, param.spec, ()))

    def drops_reply(self, motor: int) -> bool:
        """Lost on the wire: always for a silenced motor, else with the reality's reply drop rate."""
        with self._lock:
            return bool(self._silent[motor]) or bool(self._rng.random() < self.reality.reply_drop_rate)

    def place(self, motor: int, position: float) -> None:
        """A hand moves ``motor``'s joint to ``position`` (rad) and holds it still there, as a user does while
        calibrating with the torque off; the physics takes over again at the next ``advance``."""
        with self._lock:
            self._data.qpos[self._qpos_adr[motor]] = position
            self._data.qvel[self._dof_adr[motor]] = 0.0
            mujoco.mj_forward(self.model, self._data)

    def silence(self, motor: int, silent: bool = True) -> None:
        """Make a motor stop answering (or answer again), as a loose connector would; it still obeys commands."""
        with self._lock:
            self._silent[motor] = silent

    def advance(self, seconds: float) -> None:
        """Step the physics by the whole substeps that fit in ``seconds`` plus what earlier calls left over."""
        if seconds < 0:
            raise SimrlError(f"advance: seconds = {seconds} must not be negative")
        dt = self.model.opt.timestep
        with self._lock:
            total = self._remainder + seconds
            steps = int(np.floor(total / dt + TIME_EPS))
            self._remainder = max(total - steps * dt, 0.0)
            for _ in range(steps):
                self._substep(dt)

    def _substep(self, dt: float) -> None:
        """One physics step with every motor's MIT law evaluated on the current state (caller holds the lock)."""
        now = self._steps * dt
        while self._pending and self._pending[0][0] <= now + TIME_EPS:
            _, motor, command = self._pending.popleft()
            self._commands[motor] = command
        q, dq = self._data.qpos[self._qpos_adr], self._data.qvel[self._dof_adr]
        target, rate, kp, kd, ff = self._commands.T
        error = np.where(np.abs(target - q) <= self._deadband, 0.0, target - q)
        tau = self._kp_scale * kp * error + self._kv_scale * kd * (rate - dq) + ff
        limit, rated = self._limit * self._share, self._rated * self._share
        self._torque = np.where(self._enabled, np.clip(tau, -limit, limit), 0.0)
        believed = kp * error + kd * (rate - dq) + ff
        self._reported = np.where(self._enabled, np.clip(believed, -rated, rated), 0.0)
        self._data.qfrc_applied[self._dof_adr] = self._torque
        mujoco.mj_step(self.model, self._data)
        self._steps += 1


def _actuator_of_joint(robot: Robot) -> dict[str, int]:
    """The MJCF actuator of every actuated joint the robot names (arm and gripper)."""
    joints = list(robot.config.arm_joints) + list(robot.config.gripper_joints)
    return dict(zip(joints, (int(a) for a in np.concatenate([robot.arm_actuators, robot.gripper_actuators]))))


def _check_motors(robot: Robot, joints: Sequence[str], limits: Sequence[float], actuated: dict[str, int]) -> None:
    """Each motor drives one actuated joint of the robot, once, with a positive torque limit."""
    if len(joints) != len(limits):
        raise SimrlError(f"motor_limits has {len(limits)} entries for {len(joints)} motor joints")
    for i, (joint, limit) in enumerate(zip(joints, limits)):
        if joint not in actuated:
            valid = ", ".join(actuated)
            raise SimrlError(f"motor {i}: joint '{joint}' is not an actuated joint of {robot.name}{did_you_mean(joint, actuated)}; valid: {valid}")
        if joints.index(joint) != i:
            raise SimrlError(f"motor {i}: joint '{joint}' is already driven by motor {joints.index(joint)}")
        if not limit > 0:
            raise SimrlError(f"motor {i} ({joint}): torque limit = {limit} must be positive")


class RealTimeStepper:
    """Keeps a plant's simulated time level with the wall clock, so an emulator serves a live arm.

    A thread advances the plant by the wall time passed since its last advance
    and sleeps ``slice_s`` between advances; a setter waits for the plant's
    lock at most as long as one advance takes.
    """

    def __init__(self, plant: RealityPlant, slice_s: float = 0.001):
        self.plant = plant
        self.slice_s = slice_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise SimrlError("RealTimeStepper: already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="reality-stepper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            self.plant.advance(now - last)  # the plant carries the part of a substep left over
            last = now
            self._stop.wait(self.slice_s)

    def __enter__(self) -> "RealTimeStepper":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
