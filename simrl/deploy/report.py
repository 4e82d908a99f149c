"""The figures of a deploy run, computed from its log columns (so a saved log gives the same figures).

Timing is judged on the ticks of the run's main phase (policy or excitation):
the period is the time between two consecutive state reads going out
(``t_read_send``), jitter its distance from the nominal period, lateness how
long after its deadline a read went out, the read time from request out to the
last reply in, inference from the reading to the action, and the
observation-to-actuation delay from the reading (``t_read``) to the command
computed from it going out (``t_command``): the delay the arm sees beyond its
own. Overruns are the deadlines skipped because a tick's work ran past the next
one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from simrl.deploy.log import PHASE_EXCITE, PHASE_POLICY
from simrl.deploy.safety import SafetyEvent, event_counts

EXIT_CODES = {"completed": 0, "fault": 1, "interrupted": 130, "terminated": 143}


@dataclass(frozen=True)
class DeploySummary:
    """What ``simrl deploy --json`` prints (times in ms, distances in mm)."""

    robot: str
    policy: str | None  # None for an excitation run
    excitation: str | None  # what an excitation run played (``Excitation.summary``), else None
    rate_hz: float
    policy_rate_hz: float  # 1 / the policy's control_dt: a different rate changes the motion per second
    stop_reason: str
    detail: str
    goals_reached: int
    goals_total: int
    success_radius_mm: float
    final_distances_mm: list[float | None]
    ticks: int
    policy_ticks: int
    excite_ticks: int
    period_p50_ms: float | None
    period_p99_ms: float | None
    jitter_p50_ms: float | None
    jitter_p99_ms: float | None
    jitter_max_ms: float | None
    lateness_p99_ms: float | None
    overruns: int
    read_p50_ms: float | None
    read_max_ms: float | None
    command_exchange_max_ms: float | None
    inference_p99_ms: float | None
    obs_to_command_p50_ms: float | None  # t_command - t_read: observation-to-actuation delay added by the loop
    obs_to_command_p99_ms: float | None
    obs_to_command_max_ms: float | None
    safety_events: dict[str, int]
    stale_replies: int
    final_enabled: list[bool | None]  # each motor's torque after disable: False confirms it off, None: no reply
    final_faults: list[str]  # each motor's fault reason after disable, "" for none
    log: str
    warnings: list[str] = field(default_factory=list)  # e.g. a policy trained without domain randomization

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.stop_reason, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The summary for a person."""
        distances = ", ".join("-" if d is None else f"{d:.1f}" for d in self.final_distances_mm)
        timing = (
            f"period p50 {_ms(self.period_p50_ms)} / p99 {_ms(self.period_p99_ms)} ms, jitter p50 {_ms(self.jitter_p50_ms)} / p99 {_ms(self.jitter_p99_ms)} ms, "
            f"overruns {self.overruns}, read max {_ms(self.read_max_ms)} ms, command exchange max {_ms(self.command_exchange_max_ms)} ms, "
            f"inference p99 {_ms(self.inference_p99_ms)} ms"
        )
        delay = (
            f"observation to command out: p50 {_ms(self.obs_to_command_p50_ms)} / p99 {_ms(self.obs_to_command_p99_ms)} / "
            f"max {_ms(self.obs_to_command_max_ms)} ms (plus the arm's own latency)"
        )
        if self.excitation is not None:
            what = f"excitation {self.excitation}: {self.excite_ticks} ticks"
        else:
            what = f"goals reached {self.goals_reached}/{self.goals_total} within {self.success_radius_mm:g} mm; final distances (mm): {distances}"
        events = ", ".join(f"{name} {count}" for name, count in self.safety_events.items()) or "none"
        return [
            f"{self.stop_reason}{': ' + self.detail if self.detail else ''} after {self.ticks} ticks at {self.rate_hz:g} Hz",
            what,
            timing,
            delay,
            f"safety events: {events}; stale replies {self.stale_replies}; motors after disable: {self._final_motors()}",
            f"log: {self.log}",
        ]


    def _final_motors(self) -> str:
        """Each motor's last word: off, on, no reply, or its fault."""
        states = [fault or {None: "no reply", True: "on", False: "off"}[on] for on, fault in zip(self.final_enabled, self.final_faults)]
        return ", ".join(states) or "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _max(values: np.ndarray) -> float | None:
    return float(values.max()) if values.size else None


def timing(arrays: dict[str, np.ndarray], period: float) -> dict[str, Any]:
    """Loop timing figures (ms) over the main phase's ticks (policy or excitation), overruns over the whole run."""
    main = np.isin(arrays["phase"], (PHASE_POLICY, PHASE_EXCITE))
    read_send = arrays["t_read_send"]
    consecutive = main[1:] & main[:-1]
    periods = np.diff(read_send)[consecutive] * 1000
    jitter = np.abs(periods - period * 1000)
    lateness = (read_send - arrays["t_deadline"])[main] * 1000

    def finite(values: np.ndarray) -> np.ndarray:
        return values[np.isfinite(values)]

    read = finite((arrays["t_read"] - read_send) * 1000)
    command = finite((arrays["t_done"] - arrays["t_command"]) * 1000)
    inference = finite((arrays["t_inference"] - arrays["t_read"])[main] * 1000)
    delay = finite((arrays["t_command"] - arrays["t_read"])[main] * 1000)
    return {
        "period_p50_ms": _percentile(periods, 50),
        "period_p99_ms": _percentile(periods, 99),
        "jitter_p50_ms": _percentile(jitter, 50),
        "jitter_p99_ms": _percentile(jitter, 99),
        "jitter_max_ms": _max(jitter),
        "lateness_p99_ms": _percentile(lateness, 99),
        "overruns": int(arrays["overrun"].sum()),
        "read_p50_ms": _percentile(read, 50),
        "read_max_ms": _max(read),
        "command_exchange_max_ms": _max(command),
        "inference_p99_ms": _percentile(inference, 99),
        "obs_to_command_p50_ms": _percentile(delay, 50),
        "obs_to_command_p99_ms": _percentile(delay, 99),
        "obs_to_command_max_ms": _max(delay),
    }


def summarize(arrays: dict[str, np.ndarray], period: float, **fields: Any) -> DeploySummary:
    """The summary of a run from its log columns; ``fields`` are what the log columns do not hold (names, goals, outcome)."""
    read = (arrays["safety"] & SafetyEvent.BUS_ERROR) == 0  # a tick whose exchange raised has no replies to count
    return DeploySummary(
        ticks=int(arrays["phase"].size),
        policy_ticks=int(np.count_nonzero(arrays["phase"] == PHASE_POLICY)),
        excite_ticks=int(np.count_nonzero(arrays["phase"] == PHASE_EXCITE)),
        safety_events=event_counts(arrays["safety"]),
        stale_replies=int(np.count_nonzero(~arrays["fresh"][read])),
        **timing(arrays, period),
        **fields,
    )
