"""Excitation schedules for system identification: per-tick joint targets and MIT gains, pure numpy.

A deploy log of a policy run excites the arm only where the policy went; the
gap checker needs motion that separates the parameters it fits. A schedule
plays one signal per *group* of joints while every other motor holds home at
its nominal gains, so an inertial or gravity coupling between joints cannot
trade one joint's parameter for another's. Groups are one joint each (in the
order given; default: every arm joint, the gripper holds): the duration is
shared equally, so the default 30 s gives a 7-joint arm about 4 s per joint;
for a full identification give more (``--duration 120``) or fewer joints.

Each group's time is split into *pieces*, each starting and ending at home with
zero velocity (a sin² fade at both ends), so gains only change while the
target is at home. Every piece has its own gain level, because the emulated
and the real MIT motor apply ``kd (dq* - dq)`` beside the joint's own viscous
damping: at one kd only their sum is identifiable, at two it splits (same for
kp and a torque-constant error). The levels (kp ×1 / ×0.6, kd ×1 / ×2 of the
config's gains) come in the order (1, 1), (0.6, 1), (1, 2), (0.6, 2).

A position servo (control law ``servo``: Feetech, Dynamixel) takes no gains
with its goal: its loop runs on P and D in its control table, which sit in
EEPROM and must not be rewritten every tick. Its joints get one gain level, the
servo's own, in all four pieces (the schedule's kp and kd stay the config's 0,
as the bridge sends them); the signals, the joint order, the limits and the
holds are the same. With one level the servo's own damping and the joint's
are told apart only by the torque cap the servo hits while it moves fast,
where its damping term is cut and the joint's is not.

``mixed`` (the default) gives each of those four pieces a job:

- slow triangle ramps with reversals (one slow cycle, two faster ones):
  constant-velocity stretches and sign changes for Coulomb friction and the
  dead-band around zero velocity;
- a staircase of small steps (a seeded random walk): the response onset
  measures the command latency, the settling the kp scale;
- a multisine (log-spaced 0.2-3 Hz, seeded phases, amplitude ∝ 1/f so the
  velocity spectrum is flat) at full amplitude, then again at a third of it:
  broadband content for inertia and damping, and two amplitudes so viscous
  damping (∝ velocity) and Coulomb friction (constant) scale differently.

3 Hz stays far below the 25 Hz Nyquist rate of a 50 Hz loop and within the
bandwidth a 20 ms command period can shape (8 ticks per cycle at least).
``chirp``, ``multisine``, ``steps`` and ``ramps`` play one kind only, in four
pieces at the four gain levels.

Safety is designed in, not left to the bridge's clamps: offsets stay within
the joint limits less ``LIMIT_MARGIN`` (scaled separately above and below home
when home is near a limit), and each piece is scaled down until no target moves
more than ``STEP_SHARE`` of ``max_step`` per tick nor faster than
``VELOCITY_SHARE`` of ``max_velocity``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from simrl.deploy.buses.settings import IMPEDANCE, SERVO
from simrl.errors import SimrlError, did_you_mean

SIGNALS = ("mixed", "chirp", "multisine", "steps", "ramps")
DEFAULT_AMPLITUDE = 0.25  # rad about home: well above encoder noise (~1 mrad) and friction dead-bands, far from the limits
DEFAULT_DURATION = 30.0  # s, all groups together
LIMIT_MARGIN = 0.1  # rad kept clear of each joint limit
STEP_SHARE = 0.5  # of the safety max_step: a target never moves more than this per tick
VELOCITY_SHARE = 0.25  # of the safety max_velocity: the fastest target velocity the signals ask for
KP_LEVELS = (1.0, 0.6)  # x the config's kp; 0.6 keeps every joint well damped and still holds against gravity
KD_LEVELS = (1.0, 2.0)  # x the config's kd; capped at the motor's kd range
GAIN_ORDER = ((0, 0), (1, 0), (0, 1), (1, 1))  # (kp level, kd level) of the four pieces of a group
HOLD_S = 0.1  # at home, nominal gains, before the first group and after the last
F_LOW, F_HIGH = 0.2, 3.0  # Hz, the broadband range
MIN_PIECE_TICKS = 4  # a piece shorter than this cannot rise and fall
MULTISINE_TONES = 8


@dataclass(frozen=True)
class ExcitationRequest:
    """What the user asked for (``simrl deploy --excite``)."""

    signal: str = "mixed"
    joints: tuple[str, ...] | None = None  # None: every arm joint
    amplitude: float | None = None  # rad; None: DEFAULT_AMPLITUDE
    duration: float = DEFAULT_DURATION  # s
    seed: int = 0


@dataclass(frozen=True)
class ArmSetup:
    """The motors as the schedule needs them, arrays (n,) in motor order."""

    joints: tuple[str, ...]
    arm_joints: tuple[str, ...]  # the default excited joints
    home: np.ndarray
    limits: np.ndarray  # (n, 2)
    kp: np.ndarray
    kd: np.ndarray
    kd_max: np.ndarray  # each motor's kd range (Damiao MIT: 0..5)
    laws: tuple[str, ...]  # each motor's control law (``IMPEDANCE`` or ``SERVO``, simrl.deploy.buses.settings)
    period: float
    max_step: float
    max_velocity: float


@dataclass(frozen=True)
class Schedule:
    """One command per tick: targets and gains (T, n) in motor order, the active group (T,), and its description."""

    position: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    group: np.ndarray  # index into description["groups"], -1 while every joint holds home
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def ticks(self) -> int:
        return int(self.position.shape[0])

    def summary(self) -> str:
        """One line for the run summary: what played where, and at which gains."""
        d = self.description
        laws = set(d["control_law"].values())
        gains = [f"kp x{{{', '.join(f'{v:g}' for v in KP_LEVELS)}}}, kd x{{{', '.join(f'{v:g}' for v in KD_LEVELS)}}}"] if IMPEDANCE in laws else []
        gains += ["the servos' own gains (one level)"] if SERVO in laws else []
        return (
            f"{d['signal']} on {', '.join(d['joints'])} ({len(d['groups'])} groups, one at a time), {d['duration_s']:g} s, "
            f"seed {d['seed']}, {'; '.join(gains)}"
        )


def design(request: ExcitationRequest, arm: ArmSetup) -> Schedule:
    """The schedule for ``request`` on ``arm``; the same request gives the same schedule."""
    joints = _check(request, arm)
    groups = [[arm.joints.index(j)] for j in joints]
    hold = max(1, round(HOLD_S / arm.period))
    total = round(request.duration / arm.period)
    per_group = (total - 2 * hold) // len(groups)
    if per_group < 4 * MIN_PIECE_TICKS:
        least = (2 * hold + 4 * MIN_PIECE_TICKS * len(groups)) * arm.period
        raise SimrlError(f"--duration = {request.duration:g} is too short for {len(groups)} joint group(s); allowed: at least {least:g} s (or fewer --joints)")
    amplitude = DEFAULT_AMPLITUDE if request.amplitude is None else request.amplitude
    kp_levels = np.outer(KP_LEVELS, arm.kp)  # (2, n)
    kd_levels = np.stack([arm.kd, _second_kd(arm.kd, arm.kd_max)])
    own_loop = np.array([law == SERVO for law in arm.laws])  # one gain level: the servo's own (level 0)
    v_cap = min(STEP_SHARE * arm.max_step / arm.period, VELOCITY_SHARE * arm.max_velocity)
    up = np.clip(arm.limits[:, 1] - LIMIT_MARGIN - arm.home, 0.0, amplitude)
    down = np.clip(arm.home - arm.limits[:, 0] - LIMIT_MARGIN, 0.0, amplitude)

    rng = np.random.default_rng(request.seed)
    n = len(arm.joints)
    rows = [(np.zeros(n), arm.kp, arm.kd, -1)] * hold
    pieces_described = []
    for g, members in enumerate(groups):
        start = len(rows)
        for kind, fraction_start, fraction_end, scale, levels in _pieces(request.signal):
            kp_level, kd_level = (0, 0) if own_loop[members].all() else levels
            ticks = round(per_group * fraction_end) - round(per_group * fraction_start)
            unit = _window(_SHAPES[kind](ticks, arm.period, rng)) * scale
            offsets = np.zeros((ticks, n))
            for j in members:
                wave = np.where(unit > 0, unit * up[j], unit * down[j])
                offsets[:, j] = wave * _speed_scale(wave, arm.period, v_cap)
            kp, kd = kp_levels[0].copy(), kd_levels[0].copy()
            kp[members], kd[members] = kp_levels[kp_level, members], kd_levels[kd_level, members]
            begin = len(rows)
            rows += [(offsets[t], kp, kd, g) for t in range(ticks)]
            pieces_described.append(
                {"group": g, "kind": kind, "relative_amplitude": _r(scale), "start_s": _r(begin * arm.period),
                 "end_s": _r(len(rows) * arm.period), "kp_level": kp_level, "kd_level": kd_level}
            )  # fmt: skip
        rows += [(np.zeros(n), arm.kp, arm.kd, -1)] * (per_group - (len(rows) - start))  # rounding leftovers: hold
    rows += [(np.zeros(n), arm.kp, arm.kd, -1)] * hold

    return Schedule(
        position=arm.home + np.array([r[0] for r in rows]),
        kp=np.array([r[1] for r in rows], dtype=np.float64),
        kd=np.array([r[2] for r in rows], dtype=np.float64),
        group=np.array([r[3] for r in rows], dtype=np.int64),
        description={
            "signal": request.signal,
            "joints": list(joints),
            "groups": [[arm.joints[i] for i in m] for m in groups],
            "amplitude_rad": {arm.joints[j]: {"up": _r(up[j]), "down": _r(down[j])} for m in groups for j in m},
            "duration_s": _r(len(rows) * arm.period),
            "seed": request.seed,
            "ticks": len(rows),
            "control_law": {arm.joints[j]: arm.laws[j] for m in groups for j in m},
            # N·m/rad and N·m·s/rad, level 0 nominal; a servo's joint has none (its one level is its own loop)
            "kp_levels": {arm.joints[j]: [_r(v) for v in kp_levels[:, j]] for m in groups for j in m if not own_loop[j]},
            "kd_levels": {arm.joints[j]: [_r(v) for v in kd_levels[:, j]] for m in groups for j in m if not own_loop[j]},
            "limit_margin_rad": LIMIT_MARGIN,
            "max_target_speed_rad_s": _r(v_cap),
            "pieces": pieces_described,
        },
    )


def _r(value: float) -> float:
    return float(f"{float(value):.6g}")


def _check(request: ExcitationRequest, arm: ArmSetup) -> tuple[str, ...]:
    """The excited joints; every bad input a one-line error naming the flag, the value and what is allowed."""
    if request.signal not in SIGNALS:
        raise SimrlError(f"--excite = '{request.signal}' is not a signal{did_you_mean(request.signal, SIGNALS)}; allowed: {', '.join(SIGNALS)}")
    joints = request.joints if request.joints is not None else arm.arm_joints
    if not joints:
        raise SimrlError(f"--joints is empty; allowed: a comma-separated list of {', '.join(arm.joints)}")
    for joint in joints:
        if joint not in arm.joints:
            raise SimrlError(f"--joints: '{joint}' is not a joint with a motor{did_you_mean(joint, arm.joints)}; allowed: {', '.join(arm.joints)}")
    if len(set(joints)) != len(joints):
        raise SimrlError(f"--joints = {','.join(joints)} names a joint twice; allowed: each joint once")
    if request.amplitude is not None and not 0 < request.amplitude <= 1.0:
        raise SimrlError(f"--amplitude = {request.amplitude:g}: allowed: radians above 0, at most 1")
    if not request.duration > 0:
        raise SimrlError(f"--duration = {request.duration:g}: allowed: seconds above 0")
    for joint in joints:
        i = arm.joints.index(joint)
        if arm.laws[i] != SERVO and arm.kd[i] == 0:
            raise SimrlError(f"motor '{joint}' has kd 0: an excitation varies kd about the config's value; allowed: a kd above 0")
    return tuple(joints)


def _second_kd(kd: np.ndarray, kd_max: np.ndarray) -> np.ndarray:
    """The higher kd level (x KD_LEVELS[1]) within the motor's range; where that leaves under +25 %, half the kd instead."""
    high = np.minimum(kd * KD_LEVELS[1], kd_max)
    return np.where(high >= 1.25 * kd, high, 0.5 * kd)


def _pieces(signal: str) -> list[tuple[str, float, float, float, tuple[int, int]]]:
    """(shape, start and end as fractions of the group's time, relative amplitude, gain levels) of a group's pieces."""
    if signal == "mixed":
        layout = [("ramps", 0.0, 0.3, 1.0), ("steps", 0.3, 0.5, 1.0), ("multisine", 0.5, 0.75, 1.0), ("multisine", 0.75, 1.0, 1.0 / 3.0)]
    else:
        layout = [(signal, k / 4, (k + 1) / 4, 1.0) for k in range(4)]
    return [(kind, a, b, scale, gains) for (kind, a, b, scale), gains in zip(layout, GAIN_ORDER)]


def _window(signal: np.ndarray) -> np.ndarray:
    """Fade in and out with sin² over up to 0.2 of the piece each side: starts and ends at 0 with zero slope."""
    ticks = len(signal)
    fade = max(1, min(ticks // 5, 25))
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 1) / (fade + 1)) ** 2
    window = np.ones(ticks)
    window[:fade], window[ticks - fade :] = ramp, ramp[::-1]
    window[0] = window[-1] = 0.0
    return signal * window


def _speed_scale(wave: np.ndarray, period: float, v_cap: float) -> float:
    """The factor (at most 1) that keeps ``wave``'s per-tick change within ``v_cap * period``."""
    fastest = float(np.max(np.abs(np.diff(wave)))) if len(wave) > 1 else 0.0
    return 1.0 if fastest <= v_cap * period else v_cap * period / fastest


def _ramps(ticks: int, period: float, rng: np.random.Generator) -> np.ndarray:
    """Triangle ramps in [-1, 1] from 0: one slow cycle in 60 % of the piece, two cycles (3x faster) in the rest."""
    slow = round(0.6 * ticks)
    return np.concatenate([_triangle(slow, 1), _triangle(ticks - slow, 2)])


def _triangle(ticks: int, cycles: int) -> np.ndarray:
    phase = np.arange(ticks) / max(ticks, 1) * cycles  # 0 -> up to 1 -> down to -1 -> 0, per cycle
    return 2.0 / np.pi * np.arcsin(np.sin(2 * np.pi * phase))


def _steps(ticks: int, period: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded random walk over the levels -1, -0.5, 0, 0.5, 1, each held 0.3 s (at least 3 ticks), back to 0 at the end."""
    hold = max(3, round(0.3 / period))
    level, levels = 0, []
    for _ in range(max(2, ticks // hold) - 1):
        move = int(rng.choice((-1, 1)))
        level = level + move if abs(level + move) <= 2 else level - move
        levels.append(level)
    wave = np.repeat(np.array(levels + [0], dtype=float) / 2.0, hold)
    return np.pad(wave, (0, max(0, ticks - len(wave))))[:ticks]


def _multisine(ticks: int, period: float, rng: np.random.Generator) -> np.ndarray:
    """Log-spaced tones from F_LOW (or two cycles per piece) to F_HIGH, amplitude ∝ 1/f, seeded phases; peak 1."""
    t = np.arange(ticks) * period
    low = min(max(F_LOW, 2.0 / max(ticks * period, period)), F_HIGH)
    freqs = np.geomspace(low, F_HIGH, MULTISINE_TONES)
    phases = rng.uniform(0.0, 2 * np.pi, MULTISINE_TONES)
    wave = (np.sin(2 * np.pi * np.outer(t, freqs) + phases) / freqs).sum(axis=1)
    return wave / max(float(np.max(np.abs(wave))), 1e-12)


def _chirp(ticks: int, period: float, rng: np.random.Generator) -> np.ndarray:
    """A logarithmic sweep F_LOW -> F_HIGH, amplitude ∝ 1/f (flat velocity), seeded start phase; peak 1."""
    duration = max(ticks * period, period)
    t = np.arange(ticks) * period
    rate = math.log(F_HIGH / F_LOW) / duration
    phase = 2 * np.pi * F_LOW * (np.exp(rate * t) - 1.0) / rate + rng.uniform(0.0, 2 * np.pi)
    frequency = F_LOW * np.exp(rate * t)
    wave = np.sin(phase) * F_LOW / frequency
    return wave / max(float(np.max(np.abs(wave))), 1e-12)


_SHAPES: dict[str, Callable[[int, float, np.random.Generator], np.ndarray]] = {
    "ramps": _ramps,
    "steps": _steps,
    "multisine": _multisine,
    "chirp": _chirp,
}


def parse_joints(text: str | None) -> tuple[str, ...] | None:
    """``--joints j1,j2`` as a tuple (None: the default joints)."""
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())
