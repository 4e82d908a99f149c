"""Per-joint measures of how a simulated arm differs from the real one on the same commands.

Each takes the real readings and a replay's predictions at the same instants
(rows of a ``Replayer``): tracking error, delay (cross-correlation of the two
motions, to a fraction of a tick), step response (rise time, overshoot,
dead-band) and the share of the real motion inside a randomized envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Delays searched by the cross-correlation (ticks either way).
MAX_LAG_TICKS = 10
# A command jump of at least this (rad) in one tick, then held, is a step.
STEP_MIN_RAD = 0.02
# Ticks a step's target must hold to be measured (0.4 s at 50 Hz).
STEP_HOLD_TICKS = 20


def rmse(error: np.ndarray) -> np.ndarray:
    """Per joint over rows: (rows, n) -> (n,)."""
    return np.sqrt(np.mean(error**2, axis=0))


def max_abs(error: np.ndarray) -> np.ndarray:
    return np.max(np.abs(error), axis=0)


def delay_ticks(real: np.ndarray, simulated: np.ndarray, max_lag: int = MAX_LAG_TICKS) -> float:
    """How many ticks ``real`` lags ``simulated`` (negative: it leads), to a fraction of a tick; NaN with no motion.

    Compares the tick-to-tick changes (so a constant offset does not count),
    finds the lag of the largest correlation and refines it with a parabola
    through its two neighbours.
    """
    a, b = np.diff(real), np.diff(simulated)
    if np.std(a) == 0 or np.std(b) == 0 or len(a) <= 2 * max_lag + 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    lags = np.arange(-max_lag, max_lag + 1)
    n = len(a)
    scores = np.array([np.dot(a[max(lag, 0) : n + min(lag, 0)], b[max(-lag, 0) : n - max(lag, 0)]) for lag in lags])
    best = int(np.argmax(scores))
    if 0 < best < len(lags) - 1:
        left, mid, right = scores[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
        return float(lags[best] + offset)
    return float(lags[best])


@dataclass(frozen=True)
class StepResponse:
    """Medians over a joint's steps: 10-90 % rise time (s), overshoot (share of the step), dead-band (rad at the end of the hold)."""

    steps: int
    rise_time_s: float
    overshoot: float
    deadband_rad: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in self.__dict__.items()}


def find_steps(command: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) rows of steps in one joint's command: a jump of at least ``STEP_MIN_RAD``, then held ``STEP_HOLD_TICKS``."""
    jumps = np.flatnonzero(np.abs(np.diff(command)) >= STEP_MIN_RAD) + 1
    steps = []
    for start in jumps:
        end = start + STEP_HOLD_TICKS
        if end <= len(command) and np.ptp(command[start:end]) < 1e-9:
            steps.append((int(start), int(end)))
    return steps


def step_response(command: np.ndarray, position: np.ndarray, times: np.ndarray) -> StepResponse:
    """The step response of one joint (rows of a log: command, measured or simulated position, time)."""
    rises, overshoots, deadbands = [], [], []
    for start, end in find_steps(command):
        before, target = position[start - 1], command[start]
        size = target - before
        if abs(size) < STEP_MIN_RAD / 2:
            continue
        progress = (position[start:end] - before) / size
        t = times[start:end] - times[start - 1]
        ten, ninety = np.argmax(progress >= 0.1), np.argmax(progress >= 0.9)
        if progress.max() >= 0.9:
            rises.append(t[ninety] - t[ten])
        overshoots.append(max(progress.max() - 1.0, 0.0))
        deadbands.append(abs(target - position[end - 1]))
    median = lambda values: float(np.median(values)) if values else float("nan")  # noqa: E731
    return StepResponse(len(overshoots), median(rises), median(overshoots), median(deadbands))


def inside_envelope(real: np.ndarray, worlds: np.ndarray, tolerance: float) -> np.ndarray:
    """Per joint, the share of rows where the real position lies within the worlds' range (± ``tolerance``).

    ``worlds``: (n_worlds, rows, n). Says whether training, which drew those
    worlds, could have seen an arm that moves like this one.
    """
    low, high = worlds.min(axis=0) - tolerance, worlds.max(axis=0) + tolerance
    return np.mean((real >= low) & (real <= high), axis=0)
