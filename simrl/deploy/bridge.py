"""The real-time loop between a motor bus and what drives it (a policy, or an excitation schedule), and the way it stops.

Every tick on a fixed grid of deadlines (``t_k = k * period``) does, in order:

1. at the deadline, a state ``read``: every motor's position, velocity and
   torque, no new set point (Damiao: a refresh request per motor);
2. the next command from that fresh state: for the policy the training env's
   own code (``ReachTask.ee_position`` / ``observe`` for the observation,
   ``ReachTask.next_target`` for the action mapping, ``xp = numpy``), or the
   home ramp, the hold, the excitation schedule; then the safety functions
   (``simrl.deploy.safety``) get the last word;
3. that command sent at once with ``exchange`` (its replies, state too, are
   checked for faults and freshness).

So a command acts about one inference time after the state it was computed
from, as in the training env (observe, then act for one period), instead of a
whole period later as with a single exchange per tick that sends the previous
tick's command.

A tick whose work runs past the next deadline is an overrun: the deadlines it
missed are skipped (the grid is kept) and counted in the log, never absorbed.

Stopping is one path whatever the cause (goals or schedule done, Ctrl-C /
SIGTERM, a motor silent for ``stale_ticks``, a motor fault, a ``BusError``):
hold the last targets, then ramp every motor's ``effort`` from 1 to 0 while the
targets move to the config's rest pose (if it has one) no faster than the home
ramp, then disable the motors and close the bus. What a falling effort means is
each bus's business (Damiao: kp scaled down with kd kept, so the arm settles
under damping instead of dropping; a servo: its torque limit), so the bridge
needs no special case per motor kind. Each step survives the bus failing under
it; the caller writes the log whatever happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from simrl.deploy.buses.base import BusError, MotorBus
from simrl.deploy.calibration import Calibration, JointState
from simrl.deploy.clock import Clock
from simrl.deploy.config import DeployConfig, home_pose, joint_limits, rest_pose
from simrl.deploy.excitation import Schedule
from simrl.deploy.log import PHASE_EXCITE, PHASE_HOME, PHASE_POLICY, PHASE_SHUTDOWN, DeployLog, Tick
from simrl.deploy.policy_runtime import PolicyRuntime
from simrl.deploy.safety import SafetyEvent, check_action, check_velocity, clamp_target
from simrl.deploy.stop import StopRequest
from simrl.robots import Robot
from simrl.tasks.reach import ReachState, ReachTask


def observe(task: ReachTask, joint_pos: np.ndarray, joint_vel: np.ndarray, state: ReachState) -> np.ndarray:
    """The policy's observation from measured arm joints: the env's ``_observe`` lines, in float32 like the env."""
    pos = np.asarray(joint_pos, dtype=np.float32)
    vel = np.asarray(joint_vel, dtype=np.float32)
    return task.observe(np, pos, vel, task.ee_position(np, pos), state)


def episode_start(task: ReachTask, goal: np.ndarray, joint_pos: np.ndarray) -> ReachState:
    """A goal's episode starts like the env's: targets at the measured pose, no previous action."""
    return task.initial_state(np, np.asarray(goal, dtype=np.float32), np.asarray(joint_pos, dtype=np.float32))


@dataclass(frozen=True)
class LoopSettings:
    """The deploy config as the loop uses it: per-motor arrays in bus order, durations in ticks."""

    period: float
    kp: np.ndarray
    kd: np.ndarray
    limits: np.ndarray  # (n, 2)
    home: np.ndarray
    arm: np.ndarray  # index of each arm joint (robot order) in the motor order
    max_step: float
    max_velocity: float
    stale_ticks: int
    home_speed: float
    settle_ticks: int
    hold_ticks: int
    effort_ramp_ticks: int
    rest: np.ndarray  # (n,) joint targets the effort ramp moves to; NaN: hold the last target
    success_radius: float

    @classmethod
    def from_config(cls, config: DeployConfig, robot: Robot) -> "LoopSettings":
        joints = [m.joint for m in config.motors]
        rate = config.rate_hz
        return cls(
            period=config.period,
            kp=np.array([m.impedance().kp for m in config.motors]),
            kd=np.array([m.impedance().kd for m in config.motors]),
            limits=joint_limits(config, robot),
            home=home_pose(config, robot),
            arm=np.array([joints.index(j) for j in robot.config.arm_joints]),
            max_step=config.safety.max_step_rad,
            max_velocity=config.safety.max_velocity_rad_s,
            stale_ticks=config.safety.stale_ticks,
            home_speed=config.startup.home_speed_rad_s,
            settle_ticks=round(config.startup.settle_s * rate),
            hold_ticks=round(config.shutdown.hold_s * rate),
            effort_ramp_ticks=round(config.shutdown.effort_ramp_s * rate),
            rest=rest_pose(config),
            success_radius=config.success_radius_m,
        )


class _Stop(Exception):
    """Leave the running phase for the shutdown path."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason, self.detail = reason, detail


@dataclass
class GoalResult:
    goal: list[float]
    final_distance: float | None  # m from the measured ee; None when the run stopped before the goal's episode ended
    reached: bool


@dataclass
class BridgeOutcome:
    stop_reason: str  # completed, interrupted, terminated or fault
    detail: str
    goals: list[GoalResult]  # empty for an excitation run
    final_enabled: list[bool | None]  # each motor's torque state after disable (False confirms it off; None: no reply)
    final_faults: list[str]  # each motor's fault after disable ("" healthy or no reply)


class Bridge:
    """Drive ``bus`` (policy toward goals, or an excitation schedule), logging every tick into ``log``."""

    def __init__(
        self,
        bus: MotorBus,
        calibration: Calibration,
        settings: LoopSettings,
        clock: Clock,
        log: DeployLog,
        stop: StopRequest,
    ) -> None:
        self.bus, self.calibration, self.settings = bus, calibration, settings
        self.clock, self.log, self.stop = clock, log, stop
        n = len(calibration.joints)
        self._deadline = 0.0
        self._missed = 0
        self._silent_ticks = np.zeros(n, dtype=np.int64)
        self._command = np.full(n, np.nan)
        self._kp = settings.kp.copy()
        self._kd = settings.kd.copy()
        self._effort = np.ones(n)
        self._joint: JointState | None = None
        self._nan_obs = np.full(log.obs_size, np.nan, dtype=np.float32)
        self._nan_action = np.full(log.action_size, np.nan, dtype=np.float32)

    def run(self, policy: PolicyRuntime, task: ReachTask, goals: np.ndarray, ticks_per_goal: int) -> BridgeOutcome:
        """Enable, ramp home, run one episode of ``ticks_per_goal`` ticks per goal, then always shut down."""
        results = [GoalResult(goal=[float(v) for v in g], final_distance=None, reached=False) for g in goals]
        return self._run(lambda: self._episodes(policy, task, goals, ticks_per_goal, results), results)

    def run_excitation(self, schedule: Schedule) -> BridgeOutcome:
        """Enable, ramp home, play ``schedule`` (one row per tick), then always shut down."""
        return self._run(lambda: self._excite(schedule), [])

    def _run(self, main_phase: Callable[[], None], results: list[GoalResult]) -> BridgeOutcome:
        reason, detail = "fault", "unexpected error"  # what an exception other than these leaves (it is re-raised)
        try:
            self._start()
            self._home()
            main_phase()
            reason, detail = "completed", ""
        except _Stop as stop:
            reason, detail = stop.reason, stop.detail
        except BusError as exc:
            reason, detail = "fault", str(exc)
            self.log.event(self.clock.now(), "bus_error", detail)
        except KeyboardInterrupt:  # Ctrl-C where no signal handler was installed (library use)
            reason, detail = "interrupted", ""
            self.log.event(self.clock.now(), reason)
        finally:
            final_enabled, final_faults = self._shutdown()
            self.log.event(self.clock.now(), "stopped", reason + (f": {detail}" if detail else ""))
        return BridgeOutcome(reason, detail, results, final_enabled, final_faults)

    # -- phases

    def _start(self) -> None:
        self.bus.open()
        readings = self.calibration.to_joint(self.bus.enable())
        self.log.event(self.clock.now(), "enabled", _torque_text(self.calibration.joints, readings))
        if not (readings.fresh.all() and np.isfinite(readings.position).all()):
            silent = [j for j, ok in zip(self.calibration.joints, readings.fresh) if not ok]
            raise _Stop("fault", f"no position from {', '.join(silent) or 'some motor'} at enable")
        self._joint = readings
        # Hold where the arm is: the first command must not move it.
        self._command = np.clip(readings.position, self.settings.limits[:, 0], self.settings.limits[:, 1])
        self._deadline = self.clock.now()

    def _home(self) -> None:
        """Ramp every target from where the arm was found to home at ``home_speed``, then settle."""
        s = self.settings
        start = self._command.copy()
        ramp = max(1, math.ceil(float(np.max(np.abs(s.home - start))) / (s.home_speed * s.period)))
        for k in range(1, ramp + 1):
            self._tick(PHASE_HOME, -1)
            self._command = start + (s.home - start) * (k / ramp)
            self._send()
        for _ in range(s.settle_ticks):
            self._tick(PHASE_HOME, -1)
            self._send()

    def _episodes(self, policy: PolicyRuntime, task: ReachTask, goals: np.ndarray, ticks_per_goal: int, results: list[GoalResult]) -> None:
        """The policy phase: one episode per goal, each starting from the pose the previous one left."""
        s = self.settings
        arm, low, high = s.arm, s.limits[s.arm, 0], s.limits[s.arm, 1]
        index = 0
        state = episode_start(task, goals[0], np.clip(self._joint.position[arm], low, high))  # type: ignore[union-attr]
        self._command[arm] = state.target
        self.log.event(self.clock.now(), "goal", f"0: {results[0].goal}")
        ticks = 0
        while True:
            joint = self._tick(PHASE_POLICY, index)
            if not joint.fresh.all():  # a silent motor: hold this tick (``_tick`` stops the run if it stays silent)
                self._send()
                ticks += 1
                continue
            q, dq = joint.position[arm], joint.velocity[arm]
            if ticks >= ticks_per_goal:
                distance = float(task.distance(np, task.ee_position(np, q), np.asarray(results[index].goal)))
                results[index].final_distance = distance
                results[index].reached = distance < s.success_radius
                self.log.event(self.clock.now(), "goal_done", f"{index}: {distance * 1000:.1f} mm")
                index += 1
                if index == len(goals):
                    self._send()  # hold: the shutdown takes over from here
                    return
                state = episode_start(task, goals[index], np.clip(q, low, high))
                self._command[arm] = state.target
                self.log.ticks[-1].goal = index  # this tick's observation and action belong to the new goal
                self.log.event(self.clock.now(), "goal", f"{index}: {results[index].goal}")
                ticks = 0
            obs = observe(task, q, dq, state)
            action = policy.act(obs)
            tick = self.log.ticks[-1]
            tick.t_inference = self.clock.now()
            events = check_action(action) | check_velocity(joint.velocity, s.max_velocity)
            if not events:
                target = task.next_target(np, action.astype(np.float32), state.target)
                target, events = clamp_target(target.astype(np.float64), self._command[arm], s.limits[arm], s.max_step)
                state = ReachState(goal=state.goal, target=target.astype(np.float32), last_action=action.astype(np.float32))
                self._command[arm] = target
            tick.safety |= int(events)
            tick.observation, tick.action = obs, action.astype(np.float32)
            self._send()
            ticks += 1

    def _excite(self, schedule: Schedule) -> None:
        """The excitation phase: row k of ``schedule`` (targets and gains) is this tick's command, through the same safety."""
        s = self.settings
        for k in range(schedule.ticks):
            joint = self._tick(PHASE_EXCITE, -1)
            events = check_velocity(joint.velocity, s.max_velocity) if joint.fresh.all() else SafetyEvent.STALE_REPLY
            if not events:
                self._command, events = clamp_target(schedule.position[k], self._command, s.limits, s.max_step)
                self._kp, self._kd = schedule.kp[k].copy(), schedule.kd[k].copy()
            self.log.ticks[-1].safety |= int(events)
            self._send()

    def _shutdown(self) -> tuple[list[bool | None], list[str]]:
        """Hold, ramp the effort down (moving to the rest pose), disable, close: each step tolerates the bus failing under it."""
        s = self.settings
        now = self.clock.now()
        self._deadline = max(self._deadline, now)
        if self._joint is not None and np.isfinite(self._command).all():
            try:
                for _ in range(s.hold_ticks):
                    self._tick(PHASE_SHUTDOWN, -1, strict=False)
                    self._send(strict=False)
                rest = np.where(np.isnan(s.rest), self._command, s.rest)
                step = s.home_speed * s.period
                for k in range(1, s.effort_ramp_ticks + 1):
                    self._tick(PHASE_SHUTDOWN, -1, strict=False)
                    self._effort = np.full_like(self._effort, 1.0 - k / s.effort_ramp_ticks)
                    self._command = self._command + np.clip(rest - self._command, -step, step)
                    self._send(strict=False)
            except BusError as exc:
                self.log.event(self.clock.now(), "bus_error", f"during shutdown: {exc}")
        n = len(self.calibration.joints)
        enabled: list[bool | None] = [None] * n
        faults = [""] * n
        try:
            readings = self.calibration.to_joint(self.bus.disable())
            enabled = [bool(on) if fresh else None for on, fresh in zip(readings.enabled, readings.fresh)]
            faults = list(readings.fault)
            self.log.event(self.clock.now(), "disabled", _torque_text(self.calibration.joints, readings))
        except BusError as exc:
            self.log.event(self.clock.now(), "disable_failed", str(exc))
        finally:
            try:
                self.bus.close()
            except BusError as exc:
                self.log.event(self.clock.now(), "close_failed", str(exc))
        return enabled, faults

    # -- one tick: read at the deadline (``_tick``), compute (the phase), send at once (``_send``)

    def _tick(self, phase: int, goal: int, strict: bool = True) -> JointState:
        """Wait for the deadline, read every motor's state, start the row (its command is filled in by ``_send``).

        ``strict`` (every phase but shutdown) turns a stop request, a fault or a
        motor silent for ``stale_ticks`` into ``_Stop`` after logging the tick.
        """
        if strict and self.stop.requested:
            self.log.event(self.clock.now(), self.stop.reason)
            raise _Stop(self.stop.reason)
        self.clock.wait_until(self._deadline)
        read_send = self.clock.now()
        try:
            readings = self.bus.read()
        except BusError:
            self._append(phase, goal, read_send, self.clock.now(), None, SafetyEvent.BUS_ERROR)
            self._record_done()
            raise
        read = self.clock.now()
        joint = self.calibration.to_joint(readings)
        self._silent_ticks = np.where(joint.fresh, 0, self._silent_ticks + 1)
        events, problem = self._check_silence(joint)
        if not problem:
            more, problem = self._check_state(joint)
            events |= more
        self._append(phase, goal, read_send, read, joint, events)
        if joint.fresh.all():
            self._joint = joint
        if strict and problem:
            self._record_done()
            self.log.event(read, "fault", problem)
            raise _Stop("fault", problem)
        return joint

    def _send(self, strict: bool = True) -> None:
        """Send the current command at once, check its replies, finish the row (``strict`` as in ``_tick``)."""
        tick = self.log.ticks[-1]
        tick.command_position, tick.command_kp, tick.command_kd = self._command.copy(), self._kp.copy(), self._kd.copy()
        tick.command_effort = self._effort.copy()
        tick.t_command = self.clock.now()
        try:
            readings = self.bus.exchange(self.calibration.to_motor(self._command, self._kp, self._kd, self._effort))
        except BusError:
            tick.safety |= int(SafetyEvent.BUS_ERROR)
            self._record_done()
            raise
        joint = self.calibration.to_joint(readings)
        tick.command_fresh = joint.fresh
        self._silent_ticks[joint.fresh] = 0  # a motor that answered the command is not silent
        events, problem = self._check_state(joint)
        tick.safety |= int(events)
        self._record_done()
        if strict and problem:
            self.log.event(self.clock.now(), "fault", problem)
            raise _Stop("fault", problem)

    def _check_silence(self, joint: JointState) -> tuple[SafetyEvent, str]:
        """A state read's freshness events, and why the run must stop ("" if it need not)."""
        if joint.fresh.all():
            return SafetyEvent(0), ""
        silent = [self.calibration.joints[i] for i in np.flatnonzero(self._silent_ticks >= self.settings.stale_ticks)]
        if silent:
            return SafetyEvent.STALE_REPLY | SafetyEvent.STALE_STOP, f"no reply from {', '.join(silent)} for {self.settings.stale_ticks} ticks"
        return SafetyEvent.STALE_REPLY, ""

    def _check_state(self, joint: JointState) -> tuple[SafetyEvent, str]:
        """What the fresh replies of a read or a command exchange say: NaN or a motor fault stop the run."""
        fresh = joint.fresh
        if not np.isfinite(joint.position[fresh]).all() or not np.isfinite(joint.velocity[fresh]).all():
            return SafetyEvent.BAD_READING, "a reply decoded to NaN"
        names = self.calibration.joints
        faulty = [f"{names[i]} ({joint.fault[i]})" for i in np.flatnonzero(fresh) if joint.fault[i]]
        if faulty:
            return SafetyEvent.MOTOR_FAULT, f"motor fault: {', '.join(faulty)}"
        off = [names[i] for i in np.flatnonzero(fresh & ~joint.enabled)]
        if off:  # torque off without a fault: the motor reset or lost its enable
            return SafetyEvent.MOTOR_FAULT, f"motor not enabled: {', '.join(off)}"
        return SafetyEvent(0), ""

    def _append(self, phase: int, goal: int, read_send: float, read: float, joint: JointState | None, events: SafetyEvent) -> None:
        """Start this tick's row with its state reading; the command columns stay NaN until ``_send``."""
        n = len(self.calibration.joints)
        nan = np.full(n, np.nan)
        self.log.add(
            Tick(
                t_deadline=self._deadline,
                t_read_send=read_send,
                t_read=read,
                t_inference=math.nan,
                t_command=math.nan,
                t_done=math.nan,
                phase=phase,
                goal=goal,
                overrun=self._missed,
                safety=int(events),
                command_position=nan,
                command_kp=nan,
                command_kd=nan,
                command_effort=nan,
                command_fresh=np.zeros(n, bool),
                position=nan if joint is None else joint.position,
                velocity=nan if joint is None else joint.velocity,
                torque=nan if joint is None else joint.torque,
                fresh=np.zeros(n, bool) if joint is None else joint.fresh,
                enabled=np.zeros(n, bool) if joint is None else joint.enabled,
                fault=("",) * n if joint is None else joint.fault,
                observation=self._nan_obs,
                action=self._nan_action,
            )
        )

    def _record_done(self) -> None:
        """Stamp the tick's end and move the deadline on, skipping (and counting) deadlines already missed."""
        done = self.clock.now()
        self.log.ticks[-1].t_done = done
        self._deadline += self.settings.period
        self._missed = 0
        if done > self._deadline:
            self._missed = int((done - self._deadline) // self.settings.period) + 1
            self._deadline += self._missed * self.settings.period


def _torque_text(joints: tuple[str, ...], state: JointState) -> str:
    """Each motor's reply to enable or disable, for the event log: on, off, no reply, or its fault."""
    replies = zip(joints, state.enabled, state.fault, state.fresh)
    return ", ".join(f"{joint} {fault or ('on' if on else 'off') if fresh else 'no reply'}" for joint, on, fault, fresh in replies)
