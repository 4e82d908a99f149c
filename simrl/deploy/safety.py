"""What the bridge checks on every tick before a joint target reaches a motor: pure functions, one event code each.

Each tick's events are OR-ed into one integer (``SafetyEvent`` bits) and
logged, so a run shows what fired when; ``event_counts`` turns a log column
back into counts per name. "Hold" means the joint targets stay where they were:
the motors keep their last set points, so nothing moves that was not already
moving.
"""

from __future__ import annotations

import enum

import numpy as np


class SafetyEvent(enum.IntFlag):
    """Bits of the per-tick safety code in the deploy log."""

    NAN_ACTION = 1  # the policy returned NaN or inf: hold
    ACTION_RANGE = 2  # an action outside [-1, 1] (beyond float rounding): hold
    JOINT_LIMIT = 4  # a target was clamped into the joint limits
    MAX_STEP = 8  # a target moved more than max_step in one tick: clamped
    VELOCITY = 16  # a measured joint moved faster than max_velocity: hold
    STALE_REPLY = 32  # a motor did not answer this tick: hold
    MOTOR_FAULT = 64  # a motor reported a state other than enabled: stop
    BUS_ERROR = 128  # the bus failed (BusError): stop
    STALE_STOP = 256  # a motor stayed silent for stale_ticks ticks: stop
    BAD_READING = 512  # a reply decoded to NaN: stop


# Slack on |action| <= 1 for float32 rounding in the graph's output.
ACTION_TOLERANCE = 1e-6


def check_action(action: np.ndarray) -> SafetyEvent:
    """The events that turn this action into a hold (none: use it)."""
    if not np.all(np.isfinite(action)):
        return SafetyEvent.NAN_ACTION
    if np.any(np.abs(action) > 1.0 + ACTION_TOLERANCE):
        return SafetyEvent.ACTION_RANGE
    return SafetyEvent(0)


def check_velocity(velocity: np.ndarray, max_velocity: float) -> SafetyEvent:
    """VELOCITY when any measured joint velocity exceeds ``max_velocity`` (rad/s)."""
    return SafetyEvent.VELOCITY if np.any(np.abs(velocity) > max_velocity) else SafetyEvent(0)


def clamp_target(target: np.ndarray, previous: np.ndarray, limits: np.ndarray, max_step: float) -> tuple[np.ndarray, SafetyEvent]:
    """``target`` moved at most ``max_step`` from ``previous`` per joint, then into ``limits`` (n, 2).

    The step limit comes first so a target outside the limits still ends inside
    them; the events say which clamp changed anything.
    """
    stepped = np.clip(target, previous - max_step, previous + max_step)
    clamped = np.clip(stepped, limits[:, 0], limits[:, 1])
    events = SafetyEvent(0)
    if np.any(stepped != target):
        events |= SafetyEvent.MAX_STEP
    if np.any(clamped != stepped):
        events |= SafetyEvent.JOINT_LIMIT
    return clamped, events


def event_counts(codes: np.ndarray) -> dict[str, int]:
    """Ticks on which each event fired, by name (only those that fired)."""
    codes = np.asarray(codes, dtype=np.int64)
    counts = {event.name: int(np.count_nonzero(codes & event.value)) for event in SafetyEvent}
    return {name: count for name, count in counts.items() if count and name}


def event_names() -> dict[str, int]:
    """Name -> bit, written into the log so a reader needs no simrl to decode the column."""
    return {event.name: int(event.value) for event in SafetyEvent if event.name}
