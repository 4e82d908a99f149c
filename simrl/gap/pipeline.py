"""``simrl gap``: replay deploy logs, measure the gap per joint, identify the arm, validate, write the report and the patch.

One function per stage, timed (replay, delay, fit, report), so a slow stage
shows in the summary. Nothing is written until every log has been read and
checked: a refused log leaves no half-made output folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simrl.errors import SimrlError
from simrl.gap import metrics
from simrl.gap.envelope import Envelope, training_envelope
from simrl.deploy.log import PHASE_EXCITE
from simrl.gap.identify import Block, Fit, identify
from simrl.gap.recording import Recording, read_meta, read_recording
from simrl.gap.replay import MAX_LATENCY_S, Replayer
from simrl.gap.replay_model import MotorValues, ReplayModel, build_replay_model
from simrl.robots import Robot, load_robot


@dataclass(frozen=True)
class GapRequest:
    logs: tuple[Path, ...]
    validate: Path | None = None
    worlds: int = 32  # randomized worlds for the envelope
    fit: bool = True


@dataclass
class JointGap:
    """One joint of one log: how the nominal (and fitted) replay differ from the real arm."""

    joint: str
    rmse_nominal: float
    max_nominal: float
    delay_ticks: float  # real behind nominal replay
    rmse_fitted: float | None = None
    max_fitted: float | None = None
    delay_fitted_ticks: float | None = None
    inside_envelope: float | None = None
    step_real: metrics.StepResponse | None = None
    step_nominal: metrics.StepResponse | None = None
    step_fitted: metrics.StepResponse | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, metrics.StepResponse):
                value = value.to_dict()
            elif isinstance(value, float) and not np.isfinite(value):
                value = None
            out[key] = value
        return out


@dataclass
class LogGap:
    """What one log says: its timing, per-joint gaps, and the traces the report plots."""

    recording: Recording
    joints: list[JointGap]
    times: np.ndarray  # (rows,) reading times of the replayed rows
    real: np.ndarray  # (rows, n)
    command: np.ndarray
    nominal: np.ndarray
    fitted: np.ndarray | None = None
    envelope: tuple[np.ndarray, np.ndarray] | None = None  # (low, high) (rows, n)

    def timing(self) -> dict[str, Any]:
        delay = self.recording.command_to_read_delay
        delay = delay[np.isfinite(delay)] * 1000.0
        return {
            "format_version": self.recording.version,
            "observation_to_command_ms": {
                "p50": round(float(np.percentile(delay, 50)), 3),
                "p99": round(float(np.percentile(delay, 99)), 3),
                "max": round(float(delay.max()), 3),
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.recording.describe(), "timing": self.timing(), "joints": [j.to_dict() for j in self.joints]}


@dataclass
class GapResult:
    robot: Robot
    logs: list[LogGap]
    validation: LogGap | None
    fit: Fit | None
    envelope: Envelope | None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _read_all(robot_name: str | None, paths: tuple[Path, ...]) -> tuple[Robot, list[Recording]]:
    if not paths:
        raise SimrlError("simrl gap needs at least one deploy log")
    first = Path(paths[0])
    if robot_name is None:
        robot_name = read_meta(first).get("robot")
        if not isinstance(robot_name, str):
            raise SimrlError(f"{first}: corrupt deploy log: its meta names no robot ({robot_name!r})")
    robot = load_robot(robot_name)
    recordings = [read_recording(Path(p), robot) for p in paths]
    for rec in recordings[1:]:
        _check_same_motors(rec, recordings[0])
    return robot, recordings


def _check_same_motors(rec: Recording, first: Recording) -> None:
    """Logs replayed on one model drive the same motors under the same control laws."""
    if rec.joints != first.joints:
        raise SimrlError(f"{rec.path}: its motors {list(rec.joints)} differ from {first.path}'s {list(first.joints)}")
    if rec.laws != first.laws:
        raise SimrlError(f"{rec.path}: its motors' control laws {list(rec.laws)} differ from {first.path}'s {list(first.laws)}")


def _joint_gaps(rec: Recording, replayer: Replayer, nominal: np.ndarray) -> list[JointGap]:
    real = rec.position[replayer.rows]
    command = rec.command_position[replayer.rows]
    times = rec.read_time[replayer.rows]
    error = nominal - real
    rmse, peak = metrics.rmse(error), metrics.max_abs(error)
    gaps = []
    for i, joint in enumerate(rec.joints):
        gaps.append(
            JointGap(
                joint=joint,
                rmse_nominal=float(rmse[i]),
                max_nominal=float(peak[i]),
                delay_ticks=metrics.delay_ticks(real[:, i], nominal[:, i]),
                step_real=metrics.step_response(command[:, i], real[:, i], times),
                step_nominal=metrics.step_response(command[:, i], nominal[:, i], times),
            )
        )
    return gaps


def _add_fitted(gap: LogGap, fitted: np.ndarray) -> None:
    error = fitted - gap.real
    rmse, peak = metrics.rmse(error), metrics.max_abs(error)
    gap.fitted = fitted
    for i, joint in enumerate(gap.joints):
        joint.rmse_fitted, joint.max_fitted = float(rmse[i]), float(peak[i])
        joint.delay_fitted_ticks = metrics.delay_ticks(gap.real[:, i], fitted[:, i])
        joint.step_fitted = metrics.step_response(gap.command[:, i], fitted[:, i], gap.times)


def excitation_groups(rec: Recording) -> dict[tuple[str, ...], np.ndarray]:
    """Rows of an excitation log by the group of joints moving in them (from the schedule in its meta); {} for other logs.

    Row k of the excitation phase played schedule tick k; each piece's rows run
    on by ``MAX_LATENCY_S`` so the response to its last commands stays with it.
    """
    description = rec.meta.get("excitation") or {}
    pieces, groups = description.get("pieces"), description.get("groups")
    if not pieces or not groups:
        return {}
    excite = np.flatnonzero(rec.phase == PHASE_EXCITE)
    tail = int(np.ceil(MAX_LATENCY_S / rec.period))
    out: dict[tuple[str, ...], np.ndarray] = {}
    for piece in pieces:
        joints = tuple(groups[piece["group"]])
        first, last = round(piece["start_s"] / rec.period), round(piece["end_s"] / rec.period) + tail
        rows = excite[first : min(last, len(excite))]
        mask = out.setdefault(joints, np.zeros(len(rec.phase), bool))
        mask[rows] = True
    return out


def fit_blocks(replay: ReplayModel, recordings: list[Recording], moving: tuple[str, ...]) -> list[Block]:
    """One block per excited group when every log is an excitation, else one block of every moving joint on all rows."""
    grouped = [excitation_groups(rec) for rec in recordings]
    if not all(grouped):
        return [Block(moving, tuple(Replayer(replay, rec) for rec in recordings))]
    joints_of = sorted({joints for groups in grouped for joints in groups}, key=lambda g: moving.index(g[0]) if g[0] in moving else len(moving))
    return [
        Block(joints, tuple(Replayer(replay, rec, rows=groups[joints]) for rec, groups in zip(recordings, grouped) if joints in groups))
        for joints in joints_of
    ]


def latency_seed(gaps: list[LogGap], moving: tuple[str, ...]) -> float:
    """Seconds the real arm trails the nominal replay: the median cross-correlation delay over the moving joints."""
    delays = [j.delay_ticks * g.recording.period for g in gaps for j in g.joints if j.joint in moving and np.isfinite(j.delay_ticks)]
    return float(np.median(delays)) if delays else 0.0


def run_gap(request: GapRequest, progress: Callable[[str], None] = lambda _: None, robot_name: str | None = None) -> GapResult:
    """Every stage of ``simrl gap`` but writing the outputs (``simrl.gap.report`` does that)."""
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    robot, recordings = _read_all(robot_name, request.logs)
    validation = read_recording(Path(request.validate), robot) if request.validate else None
    if validation is not None:
        _check_same_motors(validation, recordings[0])
    replay = build_replay_model(robot, recordings[0].joints, recordings[0].laws)
    nominal_model = replay.with_values(MotorValues.nominal(replay))
    replayers = [Replayer(replay, rec) for rec in recordings]
    held = [Replayer(replay, validation)] if validation is not None else []
    try:
        progress("replaying the logs on the nominal model")
        gaps = []
        for rec, replayer in zip(recordings, replayers):
            nominal = replayer.predict([nominal_model], [0.0]).position[0]
            gaps.append(_log_gap(rec, replayer, nominal))
        if validation is not None:
            nominal = held[0].predict([nominal_model], [0.0]).position[0]
            validation_gap = _log_gap(validation, held[0], nominal)
        else:
            validation_gap = None
        seconds["replay"] = time.perf_counter() - clock
        clock = time.perf_counter()
        envelope = training_envelope(robot, replay, recordings[0].meta, recordings[0].path, request.worlds)
        if envelope is not None:
            progress(f"replaying on {envelope.worlds} worlds of the training profile '{envelope.profile}'")
            for gap, replayer in zip(gaps, replayers):
                envelope.apply(gap, replayer)
        seconds["envelope"] = time.perf_counter() - clock
        clock = time.perf_counter()
        moving = tuple(j for j in recordings[0].joints if any(j in rec.moving_joints for rec in recordings))
        seed = latency_seed(gaps, moving)
        seconds["delay"] = time.perf_counter() - clock
        clock = time.perf_counter()
        fit = None
        notes = _servo_notes(replay, recordings + ([validation] if validation is not None else []))
        if envelope is None:
            notes.append("no training randomization profile in the log's policy metadata: the envelope is not computed")
        if request.fit:
            progress(f"identifying {', '.join(moving)} and the latency (seed {seed * 1000:.1f} ms)")
            blocks = fit_blocks(replay, recordings, moving)
            block_replayers = [r for block in blocks for r in block.replayers]
            try:
                fit = identify(blocks, seed, progress=progress)
            finally:
                for replayer in block_replayers:
                    replayer.close()
            fitted_model = replay.with_values(fit.motor_values)
            for gap, replayer in zip(gaps, replayers):
                _add_fitted(gap, replayer.predict([fitted_model], [fit.latency_s]).position[0])
            if validation_gap is not None:
                _add_fitted(validation_gap, held[0].predict([fitted_model], [fit.latency_s]).position[0])
        seconds["fit"] = time.perf_counter() - clock
    finally:
        for replayer in replayers + held:
            replayer.close()
    return GapResult(robot=robot, logs=gaps, validation=validation_gap, fit=fit, envelope=envelope, seconds=seconds, notes=notes)


def _servo_notes(replay: ReplayModel, recordings: list[Recording]) -> list[str]:
    """What the figures mean for motors that close their own loop: the gains they are replayed with, and the rows left out."""
    if not replay.servo.any():
        return []
    servos = [j for j, servo in zip(replay.joints, replay.servo) if servo]
    gains = ", ".join(f"{j} {kp:.4g}/{kv:.4g}" for j, kp, kv, s in zip(replay.joints, replay.model_kp, replay.model_kv, replay.servo) if s)
    notes = [
        f"{', '.join(servos)} close their own position loop (control law servo): the replay runs it at the model's actuator kp/kv "
        f"({gains} N·m/rad / N·m·s/rad), so their kp and kv below are the servo loop's effective gains against the model's "
        "(a servo's dead zone, which the model lacks, reads as a lower kp); a stiff servo's replay is chaotic in its parameters, "
        "which the 95 % intervals count as noise, so they read narrow (on the emulated SO-101 half the true values fell outside "
        "them): trust the held-out log's RMSE (--validate) over the intervals"
    ]
    for rec in recordings:
        if rec.capped.any():
            notes.append(
                f"{rec.path.name}: {int(rec.capped.sum())} rows in which the safe stop had lowered a servo's torque cap are not replayed "
                "(the replay model's cap is fixed)"
            )
    return notes


def _log_gap(rec: Recording, replayer: Replayer, nominal: np.ndarray) -> LogGap:
    return LogGap(
        recording=rec,
        joints=_joint_gaps(rec, replayer, nominal),
        times=rec.read_time[replayer.rows],
        real=rec.position[replayer.rows],
        command=rec.command_position[replayer.rows],
        nominal=nominal,
    )

