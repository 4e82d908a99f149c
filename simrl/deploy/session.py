"""One ``simrl deploy`` run put together: config, policy checks and goals (or an excitation schedule), bus (real or emulated), loop, log.

Everything a user can get wrong (config, policy, goals, flags) is checked
before a motor is enabled. From the moment the bus is built, the log is
written whatever ends the run, including an exception nobody planned for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from simrl.deploy.bridge import Bridge, BridgeOutcome, LoopSettings
from simrl.deploy.buses import make_bus
from simrl.deploy.buses.base import MotorBus
from simrl.deploy.calibration import Calibration
from simrl.deploy.clock import Clock, WallClock, collector_paused, realtime_scheduling
from simrl.deploy.config import DeployConfig, home_pose, joint_limits, read_deploy_file, with_overrides
from simrl.deploy.emulation.emulated_arm import EmulatedArm
from simrl.deploy.emulation.emulator_process import EmulatorProcess
from simrl.deploy.emulation.wire import EMULATED_WIRES
from simrl.deploy.excitation import ArmSetup, ExcitationRequest, Schedule, design
from simrl.deploy.goals import GoalSpec
from simrl.deploy.log import DeployLog
from simrl.deploy.policy_runtime import PolicyRuntime
from simrl.deploy.report import DeploySummary, summarize
from simrl.deploy.safety import event_names
from simrl.deploy.stop import StopRequest
from simrl.errors import SimrlError, did_you_mean
from simrl.robots import Robot, load_robot
from simrl.tasks.reach import ReachTask, load_reach_config


@dataclass(frozen=True)
class DeployRequest:
    """What ``simrl deploy`` was asked for: a policy toward goals, or an excitation schedule."""

    robot: str
    policy: Path | None = None  # required unless ``excitation`` is given
    goals: GoalSpec = GoalSpec()
    excitation: ExcitationRequest | None = None
    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config keys (``bus.port``) from flags; None = not given
    # (a ``bus.`` key is the flag of the same name: ``bus.port`` is ``--port``)
    duration: float | None = None  # seconds per goal; default: the task's episode_steps ticks
    rate: float | None = None
    emulate: bool = False
    reality: str | None = None  # None: the robot's shipped test reality
    reality_seed: int = 0
    log: Path | None = None


@dataclass(frozen=True)
class Plan:
    """A request checked and resolved: what the loop will drive, with what (a policy toward goals, or a schedule)."""

    robot: Robot
    config: DeployConfig
    policy: PolicyRuntime | None
    task: ReachTask | None
    goals: np.ndarray  # (G, 3); (0, 3) for an excitation
    goal_source: str
    ticks_per_goal: int
    schedule: Schedule | None = None

    @property
    def warnings(self) -> list[str]:
        """What the user should know before trusting the run (a policy trained without randomization); an excitation has none."""
        warning = None if self.policy is None else self.policy.randomization_warning
        return [] if warning is None else [warning]

    def new_log(self) -> DeployLog:
        """An empty log carrying everything that describes this run."""
        obs_size, action_size = (self.task.observation_size, self.task.action_size) if self.task is not None else (0, 0)
        log = DeployLog(tuple(m.joint for m in self.config.motors), obs_size, action_size)
        log.meta.update(
            robot=self.robot.name,
            policy=None if self.policy is None else str(self.policy.path),
            policy_metadata=None if self.policy is None else self.policy.metadata,
            excitation=None if self.schedule is None else self.schedule.description,
            deploy_config=self.config.model_dump(mode="json"),
            control_law={m.joint: m.impedance().law for m in self.config.motors},
            rate_hz=self.config.rate_hz,
            goals=self.goals.tolist(),
            goal_source=self.goal_source,
            ticks_per_goal=self.ticks_per_goal,
            reply_timeout_s=self.config.reply_timeout,
            reality=None,
            safety_codes=event_names(),
        )
        return log

    def calibration(self) -> Calibration:
        """Joint space <-> motor space as the config's motor family gives it (a servo arm: its calibration file)."""
        return Calibration.from_config(self.config, self.robot)

    def drive(self, bus: MotorBus, clock: Clock, log: DeployLog, stop: StopRequest) -> BridgeOutcome:
        """Run the loop on ``bus``, timed by ``clock``: the schedule if there is one, else the policy toward every goal."""
        settings = LoopSettings.from_config(self.config, self.robot)
        bridge = Bridge(bus, self.calibration(), settings, clock, log, stop)
        if self.schedule is not None:
            return bridge.run_excitation(self.schedule)
        assert self.policy is not None and self.task is not None  # prepare() gives a plan one or the other
        return bridge.run(self.policy, self.task, self.goals, self.ticks_per_goal)


def prepare(request: DeployRequest) -> Plan:
    """Everything checked before any bus is touched: robot, config and its calibration, then the policy against both
    and the goals, or the schedule. An emulated arm brings its own wire and calibration, which are checked once it runs."""
    robot = load_robot(request.robot)
    config = read_deploy_file(robot, request.config)
    flags = {key: value for key, value in request.overrides.items() if value is not None}
    _check_bus_flags(config, flags, request.emulate)
    if request.rate is not None:
        flags["rate_hz"] = request.rate
    config = with_overrides(config, flags, robot)
    plan = _prepare_excitation(request, robot, config) if request.excitation is not None else _prepare_policy(request, robot, config)
    if not request.emulate:
        plan.calibration()  # a servo arm without its calibration file is refused here, not after the bus opened
    return plan


BUS_FLAGS = ("port", "calibration", "interface", "channel", "host", "fd")  # `simrl deploy` flags that set the bus field of their name
MOTOR_MODE_FLAGS = ("fd",)  # bus flags that say how the motors are set, not where they are: an emulated arm's motors take them too


def _check_bus_flags(config: DeployConfig, flags: dict[str, Any], emulate: bool) -> None:
    """Bus flags name fields of the config's bus kind (``--channel`` means nothing to a serial bus); with --emulate only ``MOTOR_MODE_FLAGS``."""
    bus_flags = {key.removeprefix("bus."): value for key, value in flags.items() if key.startswith("bus.")}
    wire_flags = [name for name in bus_flags if name not in MOTOR_MODE_FLAGS]
    if emulate and wire_flags:
        given = ", ".join(f"--{name}" for name in wire_flags)
        raise SimrlError(f"{given} and --emulate both given; allowed: one of them (the emulated arm brings its own bus and calibration)")
    fields = [name for name in type(config.bus).model_fields if name != "kind"]
    for name, value in bus_flags.items():
        if name not in fields:
            raise SimrlError(
                f"--{name} = {value!r}: the {config.robot} bus in {config.file} is kind '{config.bus.kind}', which has no '{name}'"
                f"{did_you_mean(name, fields)}; allowed flags for it: "
                f"{', '.join(f'--{flag}' for flag in BUS_FLAGS if flag in fields)}"
            )


def _prepare_policy(request: DeployRequest, robot: Robot, config: DeployConfig) -> Plan:
    """A policy plan: the policy checked against robot and task, the goals resolved."""
    if request.policy is None:
        raise SimrlError("--policy is missing: give an ONNX policy written by `simrl export`, or --excite SIGNAL to play an excitation without one")
    policy = PolicyRuntime(request.policy)
    task = policy.task_for(robot, load_reach_config())
    goals, source = request.goals.resolve(task)
    if request.duration is not None and not request.duration > 0:
        raise SimrlError(f"--duration = {request.duration}: allowed: seconds above 0")
    ticks = task.config.episode_steps if request.duration is None else max(1, round(request.duration * config.rate_hz))
    return Plan(robot, config, policy, task, goals, source, ticks)


def _prepare_excitation(request: DeployRequest, robot: Robot, config: DeployConfig) -> Plan:
    """An excitation plan: no policy, no goals, the schedule designed for this arm's config."""
    if request.policy is not None:
        raise SimrlError(f"--policy = {request.policy} and --excite both given; allowed: one of them (an excitation runs no policy)")
    if any(value is not None for value in (request.goals.goal, request.goals.file, request.goals.random)):
        raise SimrlError("--goal, --goals and --random-goals belong to a policy run; allowed with --excite: none of them")
    gains = [m.impedance() for m in config.motors]
    arm = ArmSetup(
        joints=tuple(m.joint for m in config.motors),
        arm_joints=tuple(robot.config.arm_joints),
        home=home_pose(config, robot),
        limits=joint_limits(config, robot),
        kp=np.array([g.kp for g in gains]),
        kd=np.array([g.kd for g in gains]),
        kd_max=np.array([g.kd_max for g in gains]),
        laws=tuple(g.law for g in gains),
        period=config.period,
        max_step=config.safety.max_step_rad,
        max_velocity=config.safety.max_velocity_rad_s,
    )
    schedule = design(request.excitation, arm)  # type: ignore[arg-type]
    return Plan(robot, config, None, None, np.zeros((0, 3)), "none (excitation)", 0, schedule)


def default_log_path(robot: str) -> Path:
    return Path("runs") / "deploy" / f"{robot}-{time.strftime('%Y%m%d-%H%M%S')}.npz"


@contextlib.contextmanager
def _arm(request: DeployRequest, plan: Plan) -> Iterator[tuple[MotorBus, Plan, dict[str, Any] | None]]:
    """The bus to drive, the plan to drive it with, and the emulated reality's description (None on hardware).

    An emulated arm's wire settings (its channel or pty, its calibration file)
    replace the file's for the run: the plan drives, and the log records, the
    arm that is really there. Its motor family's entry says whether it runs in
    this process or in one of its own (``wire.EMULATED_WIRES``).
    """
    if not request.emulate:
        yield make_bus(plan.config), plan, None
        return
    apart = EMULATED_WIRES[plan.config.bus.kind].own_process
    emulated = (EmulatorProcess if apart else EmulatedArm)(plan.robot, plan.config, request.reality, request.reality_seed)
    with emulated.started(plan.config.timing.realtime_priority):
        config = with_overrides(plan.config, emulated.overrides(), plan.robot)
        yield make_bus(config), dataclasses.replace(plan, config=config), emulated.describe_reality()


def run_deploy(request: DeployRequest, plan: Plan, stop: StopRequest) -> DeploySummary:
    """Run ``plan`` on the arm (or its emulator); the log is written however it ends."""
    path = request.log or default_log_path(plan.robot.name)
    log = plan.new_log()
    outcome: BridgeOutcome | None = None
    try:
        with _arm(request, plan) as (bus, driven, reality), realtime_scheduling(plan.config.timing.realtime_priority) as scheduling, collector_paused():
            log.meta.update(reality=reality, scheduling=scheduling, deploy_config=driven.config.model_dump(mode="json"))
            clock = WallClock(min(plan.config.timing.spin_s, plan.config.period / 4))
            outcome = driven.drive(bus, clock, log, stop)
    finally:
        summary = summarize_run(plan, log, path, outcome)
        log.meta["summary"] = summary.to_dict()
        log.write(path)
    return summary


def summarize_run(plan: Plan, log: DeployLog, path: Path, outcome: BridgeOutcome | None) -> DeploySummary:
    """The run's figures; a run cut short by an unexpected error (no outcome) reads as a fault."""
    goals = outcome.goals if outcome is not None else []
    distances = [None if g.final_distance is None else round(g.final_distance * 1000, 2) for g in goals]
    return summarize(
        log.arrays(),
        plan.config.period,
        robot=plan.robot.name,
        policy=None if plan.policy is None else str(plan.policy.path),
        excitation=None if plan.schedule is None else plan.schedule.summary(),
        rate_hz=plan.config.rate_hz,
        policy_rate_hz=round(1.0 / plan.robot.config.control_dt, 6),
        stop_reason=outcome.stop_reason if outcome else "fault",
        detail=outcome.detail if outcome else "unexpected error (see the traceback)",
        goals_reached=sum(g.reached for g in goals),
        goals_total=len(plan.goals),
        success_radius_mm=plan.config.success_radius_m * 1000,
        final_distances_mm=distances,
        final_enabled=outcome.final_enabled if outcome else [],
        final_faults=outcome.final_faults if outcome else [],
        log=str(path),
        warnings=plan.warnings,
    )
