"""The figures of a deploy run, computed from its log columns (so a saved log gives the same figures).

Timing is judged on the policy ticks: the period is the time between two
consecutive commands going out (``t_send``), jitter its distance from the
nominal period, lateness how long after its deadline a tick sent, and the
exchange time from command out to the last reply in. Overruns are the
deadlines skipped because a tick's work ran past the next one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from simrl.deploy.log import PHASE_POLICY
from simrl.deploy.safety import SafetyEvent, event_counts

EXIT_CODES = {"completed": 0, "fault": 1, "interrupted": 130, "terminated": 143}


@dataclass(frozen=True)
class DeploySummary:
    """What ``simrl deploy --json`` prints (times in ms, distances in mm)."""

    robot: str
    policy: str
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
    period_p50_ms: float | None
    period_p99_ms: float | None
    jitter_p99_ms: float | None
    jitter_max_ms: float | None
    lateness_p99_ms: float | None
    overruns: int
    exchange_p50_ms: float | None
    exchange_max_ms: float | None
    inference_p99_ms: float | None
    safety_events: dict[str, int]
    stale_replies: int
    final_status: list[int]
    log: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.stop_reason, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The summary for a person."""
        distances = ", ".join("-" if d is None else f"{d:.1f}" for d in self.final_distances_mm)
        timing = (
            f"period p50 {_ms(self.period_p50_ms)} / p99 {_ms(self.period_p99_ms)} ms, jitter p99 {_ms(self.jitter_p99_ms)} ms, "
            f"overruns {self.overruns}, exchange max {_ms(self.exchange_max_ms)} ms, inference p99 {_ms(self.inference_p99_ms)} ms"
        )
        events = ", ".join(f"{name} {count}" for name, count in self.safety_events.items()) or "none"
        return [
            f"{self.stop_reason}{': ' + self.detail if self.detail else ''} after {self.ticks} ticks at {self.rate_hz:g} Hz",
            f"goals reached {self.goals_reached}/{self.goals_total} within {self.success_radius_mm:g} mm; final distances (mm): {distances}",
            timing,
            f"safety events: {events}; stale replies {self.stale_replies}; final motor status {self.final_status}",
            f"log: {self.log}",
        ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _max(values: np.ndarray) -> float | None:
    return float(values.max()) if values.size else None


def timing(arrays: dict[str, np.ndarray], period: float) -> dict[str, Any]:
    """Loop timing figures (ms) over the policy ticks, overruns over the whole run."""
    policy = arrays["phase"] == PHASE_POLICY
    send = arrays["t_send"]
    consecutive = policy[1:] & policy[:-1]
    periods = np.diff(send)[consecutive] * 1000
    jitter = np.abs(periods - period * 1000)
    lateness = (send - arrays["t_deadline"])[policy] * 1000
    exchange = (arrays["t_read"] - send) * 1000
    exchange = exchange[np.isfinite(exchange)]
    inference = (arrays["t_inference"] - arrays["t_read"])[policy] * 1000
    inference = inference[np.isfinite(inference)]
    return {
        "period_p50_ms": _percentile(periods, 50),
        "period_p99_ms": _percentile(periods, 99),
        "jitter_p99_ms": _percentile(jitter, 99),
        "jitter_max_ms": _max(jitter),
        "lateness_p99_ms": _percentile(lateness, 99),
        "overruns": int(arrays["overrun"].sum()),
        "exchange_p50_ms": _percentile(exchange, 50),
        "exchange_max_ms": _max(exchange),
        "inference_p99_ms": _percentile(inference, 99),
    }


def summarize(arrays: dict[str, np.ndarray], period: float, **fields: Any) -> DeploySummary:
    """The summary of a run from its log columns; ``fields`` are what the log columns do not hold (names, goals, outcome)."""
    read = (arrays["safety"] & SafetyEvent.BUS_ERROR) == 0  # a tick whose exchange raised has no replies to count
    return DeploySummary(
        ticks=int(arrays["phase"].size),
        policy_ticks=int(np.count_nonzero(arrays["phase"] == PHASE_POLICY)),
        safety_events=event_counts(arrays["safety"]),
        stale_replies=int(np.count_nonzero(~arrays["fresh"][read])),
        **timing(arrays, period),
        **fields,
    )
