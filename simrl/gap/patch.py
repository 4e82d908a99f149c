"""From an identified arm to what training needs: ``fitted.yaml`` and a randomization profile centred on it.

The patch is a whole profile that ``simrl train --randomization`` takes as it is.
It starts from the profile the policy trained with (or ``default`` when the
logs carry none) and replaces what the fit measured with per-joint ranges
centred on the fitted values:

- an identified value gets ``±max(FLOOR, 2 x its 95 % interval)``. The floor
  (15 %) is what a fit cannot see: the test-reality recovery is within 10 % on
  damping and 20 % on friction (``tests/test_gap_identify.py``), and a real
  arm's friction and damping drift with temperature and wear between the
  logging session and the next deploy;
- a value the data could not pin down keeps the base profile's range for that
  kind, centred on the training model (no evidence to move it);
- the latency becomes ``latency_steps`` + ``latency_substeps`` around the fitted
  delay, at least ``LATENCY_FLOOR_S`` either way (the bus and the physics step
  jitter by about that much).

Every range is a scale of the training model's value, which is what the
profile's kinds scale in training: ``actuator_kp`` / ``actuator_kv`` scale the
MJCF servo's gains, so for an impedance motor (its commanded gains are the
MJCF's) the fitted applied / commanded ratio, and for a position servo its
loop's effective gain over the model's, which the fit measured directly;
``actuator_force_limit`` scales the MJCF force range, the rated torque either
fit is against.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from simrl.gap.identify import Fit, FittedValue
from simrl.randomization.profile import ProfileSource, resolve_profile
from simrl.robots import Robot

# Least half-width of a fitted scale's range (share of the value); see the module docstring.
FLOOR = 0.15
LATENCY_FLOOR_S = 0.005
# Fitted quantity -> the profile kind that varies it.
KIND_OF = {
    "damping": "joint_damping",
    "frictionloss": "joint_frictionloss",
    "armature": "joint_armature",
    "kp": "actuator_kp",
    "kv": "actuator_kv",
    "torque_limit": "actuator_force_limit",
}


def fitted_document(fit: Fit, robot: str, logs: list[str]) -> dict[str, Any]:
    """``fitted.yaml``: every value with its interval and whether it is identified, per joint, plus the latency."""
    joints: dict[str, dict[str, Any]] = {}
    for value in fit.values:
        if value.joint is not None:
            joints.setdefault(value.joint, {})[value.quantity] = value.to_dict()
    latency = fit.value(None, "latency")
    return {
        "robot": robot,
        "logs": logs,
        "latency": latency.to_dict() if latency else None,
        "joints": joints,
        "not_fitted": dict(fit.not_fitted),
        "latency_profile": {f"{latency * 1000:.1f} ms": cost for latency, cost in fit.latency_profile.items()},
        "cost": {"nominal": fit.cost_nominal, "fitted": fit.cost_fitted},
    }


def _scale_range(value: FittedValue) -> tuple[float, float]:
    half = max(FLOOR, 2.0 * value.interval / max(abs(value.value), 1e-12)) * value.scale
    return max(value.scale - half, 0.0), value.scale + half


def _latency_entries(latency: FittedValue, control_dt: float) -> dict[str, Any]:
    half = max(LATENCY_FLOOR_S, 2.0 * (latency.interval if math.isfinite(latency.interval) else LATENCY_FLOOR_S))
    low, high = max(latency.value - half, 0.0) / control_dt, (latency.value + half) / control_dt
    if math.floor(low) == math.floor(high):
        whole = math.floor(low)
        return {
            "latency_steps": {"distribution": "fixed", "value": whole},
            "latency_substeps": {"distribution": "uniform", "low": round(low - whole, 4), "high": round(min(high - whole, 1.0), 4)},
        }
    return {
        "latency_steps": {"distribution": "uniform", "low": math.floor(low), "high": math.floor(high)},
        "latency_substeps": {"distribution": "uniform", "low": 0.0, "high": 1.0},
    }


def randomization_patch(fit: Fit, robot: Robot, base: ProfileSource) -> dict[str, Any]:
    """The profile: ``base`` with the fitted kinds replaced by per-joint ranges around the fitted values.

    A joint the fit could not pin down keeps the base entry that covered it (a
    base may itself be a list of per-joint entries, e.g. an earlier patch).
    """
    resolved = resolve_profile(base, robot)
    dumped = resolved.profile.model_dump(mode="json", exclude_none=True)
    document = {"description": f"centred on the arm identified by simrl gap (base: {resolved.name})"}
    document.update({name: dumped[name] for name in resolved.profile.parameters()})
    for quantity, kind in KIND_OF.items():
        entries: list[dict[str, Any]] = []
        kept: list[str] = []
        for joint in robot.config.arm_joints:
            value = fit.value(joint, quantity)
            if value is not None and value.identifiable:
                low, high = _scale_range(value)
                entries.append({"distribution": "uniform", "low": round(low, 4), "high": round(high, 4), "joints": [joint]})
            else:
                kept.append(joint)
        if not entries:
            continue
        for param in resolved.entries(kind):
            if joints := [j for j in param.names if j in kept]:
                entries.append({**param.spec.model_dump(mode="json", exclude_none=True, exclude={"joints"}), "joints": joints})
        document[kind] = entries
    latency = fit.value(None, "latency")
    if latency is not None and latency.identifiable:
        document.update(_latency_entries(latency, robot.config.control_dt))
    return document


def write_yaml(path: Path, document: dict[str, Any], header: str) -> None:
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)
    path.write_text(text)
