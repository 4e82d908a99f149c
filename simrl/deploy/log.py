"""The deploy log: one ``.npz`` per run, every tick, written atomically whatever ends the run.

It is what the gap checker replays, so it holds what happened (per-tick
timestamps, observation, raw action, commanded and measured joint state,
freshness, each motor's decoded state, overruns, safety codes, goal index;
since format version 2 each row's command was computed from that row's reading
and left at ``t_command``; version 3 logs each motor's state as ``enabled`` and
``fault`` (the reason the bus decoded) instead of a vendor's status code, and
each command's ``effort``; version 4 says in ``meta.control_law`` which law
moved each motor: the commanded gains, or a servo's own loop)
together with what it needs to interpret that (robot and policy metadata, deploy config, the emulated
reality's drawn values, the safety code names, the run summary and the event
list) as one JSON string under ``meta``. Arrays are plain numeric or string
arrays and ``meta`` a 0-d string, so ``np.load`` reads it without pickle.
The format is documented in ``deploy/README.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simrl.files import atomic_write

FORMAT_VERSION = 4
# How a tick's timestamps relate to its command (``meta.timing``): read the state at the deadline,
# compute, send the command at once (``simrl.deploy.bridge``). Version 1 logs (no ``timing`` key)
# sent the previous tick's command at the deadline and read the replies in the same exchange.
TIMING_SCHEME = "read-compute-send"

# Loop phases, per tick.
PHASE_HOME = 0  # ramp to home and settle, before the first goal
PHASE_POLICY = 1  # the policy drives the arm
PHASE_SHUTDOWN = 2  # hold, effort ramp-down
PHASE_EXCITE = 3  # an excitation schedule drives the arm (``simrl deploy --excite``)
PHASES = {"home": PHASE_HOME, "policy": PHASE_POLICY, "shutdown": PHASE_SHUTDOWN, "excite": PHASE_EXCITE}


@dataclass
class Tick:
    """One row of the log: what the loop read and sent on one control tick.

    Times are seconds on the loop's clock (``time.perf_counter``) since the run
    started. Joint arrays are (n_motors,) in the config's motor order, in joint
    space. The state columns are this tick's read; the command columns the
    command computed from that read and sent in this same tick (NaN when none
    left: the read failed or the run stopped on it, so the motors kept the
    previous one). Observation and raw action are NaN on ticks the policy did
    not run.
    """

    t_deadline: float  # when the tick was due
    t_read_send: float  # the state requests went out (at the deadline, unless late)
    t_read: float  # the state replies were in: the reading was taken between t_read_send and this
    t_inference: float  # the policy's action was ready (NaN: no inference this tick)
    t_command: float  # the command went out (exchange started); it acts from here (+ the arm's own latency)
    t_done: float  # the command's replies were in: the tick's work is done
    phase: int
    goal: int  # goal index, -1 outside the goal episodes
    overrun: int  # deadlines missed since the previous tick (0 on time)
    safety: int  # SafetyEvent bits (of the read, the computation and the command's replies)
    command_position: np.ndarray  # the joint targets sent at t_command
    command_kp: np.ndarray
    command_kd: np.ndarray
    command_effort: np.ndarray  # share of each motor's torque the bus may use: 1, ramped to 0 by the safe stop
    command_fresh: np.ndarray  # the motor answered the command
    position: np.ndarray  # measured by this tick's read (the last reply where not fresh)
    velocity: np.ndarray
    torque: np.ndarray  # the torque the motor reports (its current estimate)
    fresh: np.ndarray  # the motor answered this tick's read
    enabled: np.ndarray  # bool: the motor reported its torque on
    fault: tuple[str, ...]  # "" or the fault reason the bus decoded (over-current, overload, ...)
    observation: np.ndarray
    action: np.ndarray  # raw policy output, before any safety


@dataclass
class DeployLog:
    """Rows gathered in memory (a run is thousands of ticks, not millions) and the run's descriptive JSON."""

    joint_names: tuple[str, ...]
    obs_size: int
    action_size: int
    meta: dict[str, Any] = field(default_factory=dict)
    ticks: list[Tick] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, tick: Tick) -> None:
        self.ticks.append(tick)

    def event(self, time: float, name: str, detail: str = "") -> None:
        """Something that happened once (enabled, disabled, fault, interrupted, ...), in order."""
        self.events.append({"tick": len(self.ticks), "time": round(time, 6), "event": name, "detail": detail})

    def arrays(self) -> dict[str, np.ndarray]:
        """The columns of the ``.npz``, empty (0 rows) before any tick."""
        n, m = len(self.ticks), len(self.joint_names)

        def column(name: str, dtype: Any, width: int | None = None) -> np.ndarray:
            shape = (n,) if width is None else (n, width)
            if not n:
                return np.zeros(shape, dtype=dtype)
            return np.asarray([getattr(t, name) for t in self.ticks], dtype=dtype).reshape(shape)

        return {
            **{name: column(name, np.float64) for name in ("t_deadline", "t_read_send", "t_read", "t_inference", "t_command", "t_done")},
            "phase": column("phase", np.int8),
            "goal_index": column("goal", np.int16),
            "overrun": column("overrun", np.int32),
            "safety": column("safety", np.int32),
            "command_position": column("command_position", np.float64, m),
            "command_kp": column("command_kp", np.float64, m),
            "command_kd": column("command_kd", np.float64, m),
            "command_effort": column("command_effort", np.float64, m),
            "command_fresh": column("command_fresh", bool, m),
            "position": column("position", np.float64, m),
            "velocity": column("velocity", np.float64, m),
            "torque": column("torque", np.float64, m),
            "fresh": column("fresh", bool, m),
            "enabled": column("enabled", bool, m),
            "fault": column("fault", np.str_, m),
            "observation": column("observation", np.float32, self.obs_size),
            "action": column("action", np.float32, self.action_size),
            "joint_names": np.array(self.joint_names),
        }

    def write(self, path: Path) -> None:
        """Write the ``.npz`` atomically: a reader never sees half a log, and an old log is replaced only by a whole one."""
        meta = {"format_version": FORMAT_VERSION, "timing": TIMING_SCHEME, "phases": PHASES, **self.meta, "events": self.events}
        arrays = {**self.arrays(), "meta": np.array(json.dumps(meta, default=_json_default))}
        atomic_write(path, lambda f: np.savez(f, **arrays))


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays inside ``meta`` as plain JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_log(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The columns of a deploy log and its decoded ``meta``."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files if key != "meta"}
        meta = json.loads(str(data["meta"]))
    return arrays, meta
