"""Identify the arm from its logs: per-joint dynamics and the command latency, fitted together with ``mujoco.sysid``.

The unknowns are, for every joint the logs move: viscous damping, dry friction
(frictionloss), armature, the motor's kp and kd gain errors, and the torque
limit where the logs drive a motor near it; plus one command latency for the
arm. All are scales of the training model's values (1 = as trained) except the
latency, in milliseconds, so the problem is well scaled.

They are fitted *together* by ``mujoco.sysid.optimize`` (box-constrained
Gauss-Newton; each finite-difference column is one candidate model, and all
candidates' chunks are stepped in one threaded rollout). Fitted alone on the
nominal model, the latency would absorb the servo's own lag (a weaker kp or
more damping lag the joint too) and read far too high; fitted jointly, the
dynamics take their share. The latency is a continuous parameter inside the fit
(``replay.py`` blends a command switch into the physics step it falls in); its
starting point comes from a cross-correlation of real against nominal motion,
and a few starts around it guard against the next period's local minimum.

Confidence intervals come from ``mujoco.sysid.calculate_intervals`` (JᵀJ at the
optimum, residual variance as noise). A parameter the data cannot pin down (an
infinite or very wide interval) is flagged ``identifiable: false``, and the
patch widens its range instead of trusting it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from mujoco import sysid

from simrl.gap.replay import Replayer
from simrl.gap.replay_model import MotorValues, ReplayModel

# Weight of a velocity error against a position error: 1 rad/s counts like 20 mrad.
VELOCITY_WEIGHT = 0.02
# Box bounds of the scale parameters (x the training model's value).
SCALE_BOUNDS = {"damping": (0.05, 20.0), "frictionloss": (0.0, 20.0), "armature": (0.05, 20.0), "kp": (0.2, 3.0), "kv": (0.05, 10.0)}
TORQUE_BOUNDS = (0.2, 1.5)
LATENCY_BOUNDS_MS = (0.0, 100.0)
# A motor whose commanded MIT torque reaches this share of its rated limit tells how strong it is.
SATURATION_SHARE = 0.9
# A fitted value whose 95 % interval half-width exceeds this share of it is not identified by the data.
IDENTIFIABLE_SHARE = 0.15
# Finite-difference step of the Gauss-Newton Jacobian (on scales ~1 and milliseconds).
FD_STEP = 1e-4
# Stop when a step changes no parameter by more than this share (scales ~1: 0.01 % is far below any interval).
STEP_TOLERANCE = 1e-4
QUANTITIES = ("damping", "frictionloss", "armature", "kp", "kv")
# Where each quantity lives in ``MotorValues``.
_FIELD_OF = {"damping": "damping", "frictionloss": "frictionloss", "armature": "armature", "kp": "kp_scale", "kv": "kv_scale", "torque_limit": "torque_limit"}
# mujoco.minimize's settings; its per-iteration lines go to a buffer, not the user's terminal.
_SOLVER = {"eps": FD_STEP, "xtol": STEP_TOLERANCE}


@dataclass(frozen=True)
class FittedValue:
    """One identified quantity: value, its 95 % interval half-width, and whether the data pins it down."""

    name: str
    joint: str | None  # None for the arm-wide latency
    quantity: str  # damping, frictionloss, armature, kp, kv, torque_limit, latency
    scale: float  # x the training model's value (latency: the value itself)
    value: float  # in units
    nominal: float
    interval: float  # half-width, same units as value (inf: not identifiable)
    unit: str
    identifiable: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("joint", "quantity", "value", "nominal", "scale", "unit", "identifiable")}
        out["interval"] = None if not np.isfinite(self.interval) else float(self.interval)
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Fit:
    """The identified arm: per-joint values, the latency, and how well the replay matches before and after."""

    joints: tuple[str, ...]  # fitted joints
    values: list[FittedValue]
    motor_values: MotorValues
    latency_s: float
    cost_nominal: float
    cost_fitted: float
    iterations: int
    not_fitted: dict[str, str] = field(default_factory=dict)  # "joint.quantity" -> why
    block_latencies: dict[str, FittedValue] = field(default_factory=dict)  # each block's own latency fit, by its joints

    def value(self, joint: str | None, quantity: str) -> FittedValue | None:
        return next((v for v in self.values if v.joint == joint and v.quantity == quantity), None)


@dataclass(frozen=True)
class _Layout:
    """Which entry of the parameter vector is which quantity of which motor."""

    entries: tuple[tuple[int, str], ...]  # (motor index, quantity) per vector entry before the latency

    def values(self, nominal: MotorValues, vector: np.ndarray) -> MotorValues:
        fields = {
            "damping": nominal.damping.copy(),
            "frictionloss": nominal.frictionloss.copy(),
            "armature": nominal.armature.copy(),
            "kp": nominal.kp_scale.copy(),
            "kv": nominal.kv_scale.copy(),
            "torque_limit": nominal.torque_limit.copy(),
        }
        for (motor, quantity), scale in zip(self.entries, vector):
            fields[quantity][motor] *= scale
        return MotorValues(
            fields["damping"], fields["frictionloss"], fields["armature"], fields["kp"], fields["kv"], fields["torque_limit"]
        )


def saturating_motors(replayers: Sequence[Replayer]) -> np.ndarray:
    """Per motor: whether the logged commands asked for a torque near its rated limit (so the limit shows)."""
    replay = replayers[0].replay
    peak = np.zeros(len(replay.joints))
    for r in replayers:
        rec, rows = r.recording, r.rows
        asked = rec.command_kp[rows] * np.abs(rec.command_position[rows] - rec.position[rows]) + rec.command_kd[rows] * np.abs(rec.velocity[rows])
        peak = np.maximum(peak, asked.max(axis=0))
    return peak >= SATURATION_SHARE * replay.rated_torque


def _parameters(replay: ReplayModel, joints: Sequence[str], saturating: np.ndarray, latency_ms: float) -> tuple[sysid.ParameterDict, _Layout, dict[str, str]]:
    params = sysid.ParameterDict()
    entries: list[tuple[int, str]] = []
    skipped: dict[str, str] = {}
    nominal = MotorValues.nominal(replay)
    for joint in joints:
        motor = replay.joints.index(joint)
        for quantity in QUANTITIES:
            base = {"damping": nominal.damping, "frictionloss": nominal.frictionloss, "armature": nominal.armature}.get(quantity)
            if base is not None and base[motor] == 0:
                skipped[f"{joint}.{quantity}"] = "0 in the training model: a scale of it cannot be fitted"
                continue
            low, high = SCALE_BOUNDS[quantity]
            params.add(sysid.Parameter(f"{joint}.{quantity}", nominal=1.0, min_value=low, max_value=high))
            entries.append((motor, quantity))
        if saturating[motor]:
            params.add(sysid.Parameter(f"{joint}.torque_limit", nominal=1.0, min_value=TORQUE_BOUNDS[0], max_value=TORQUE_BOUNDS[1]))
            entries.append((motor, "torque_limit"))
        else:
            skipped[f"{joint}.torque_limit"] = f"the logs never ask for {SATURATION_SHARE:.0%} of the rated torque"
    params.add(sysid.Parameter("latency_ms", nominal=latency_ms, min_value=LATENCY_BOUNDS_MS[0], max_value=LATENCY_BOUNDS_MS[1]))
    return params, _Layout(tuple(entries)), skipped


def residual_builder(
    replayers: Sequence[Replayer], layout: _Layout, joints: Sequence[str]
) -> Callable[[np.ndarray], np.ndarray]:
    """``x (n,) or (n, k) -> residuals (m,) or (m, k)``: position and weighted velocity errors of every log, every fitted joint."""
    replay = replayers[0].replay
    nominal = MotorValues.nominal(replay)
    motors = np.array([replay.joints.index(j) for j in joints])
    measured = [r.measured() for r in replayers]

    def residual(x: np.ndarray) -> np.ndarray:
        columns = x.reshape(x.shape[0], -1)
        models = [replay.with_values(layout.values(nominal, column[:-1])) for column in columns.T]
        latencies = [float(column[-1]) / 1000.0 for column in columns.T]
        parts = []
        for r, (q, dq) in zip(replayers, measured):
            p = r.predict(models, latencies)
            parts.append((p.position[..., motors] - q[None, :, motors]).reshape(len(models), -1))
            parts.append(VELOCITY_WEIGHT * (p.velocity[..., motors] - dq[None, :, motors]).reshape(len(models), -1))
        out = np.concatenate(parts, axis=1).T
        return out[:, 0] if x.ndim == 1 else out

    return residual


@dataclass(frozen=True)
class Block:
    """Joints fitted together, from the stretches of the logs where they were the ones excited.

    An excitation moves one group of joints at a time while the others hold;
    fitting each group on its own stretch costs a fraction of one fit of every
    joint on the whole log (each finite-difference column replays only that
    stretch) and keeps a held joint's coupling error out of a moving joint's
    values. A policy log, where every joint moves at once, is one block.
    """

    joints: tuple[str, ...]
    replayers: tuple[Replayer, ...]


@dataclass(frozen=True)
class _BlockFit:
    values: list[FittedValue]  # the block's joints' values, then its latency
    motor_values: MotorValues
    entries: tuple[tuple[int, str], ...]
    cost_nominal: float
    cost_fitted: float
    iterations: int
    skipped: dict[str, str]


def _fit_block(block: Block, seed_ms: float, max_iters: int, starts_ms: Sequence[float], progress: Callable[[str], None]) -> _BlockFit:
    replay = block.replayers[0].replay
    params, layout, skipped = _parameters(replay, block.joints, saturating_motors(block.replayers), seed_ms)
    residual = residual_builder(block.replayers, layout, block.joints)

    def sysid_residual(x: np.ndarray, _params: sysid.ParameterDict) -> tuple[list[np.ndarray], None, None]:
        return [residual(x)], None, None

    x_nominal = params.as_vector()
    x_nominal[-1] = 0.0
    cost_nominal = 0.5 * float(np.sum(residual(x_nominal) ** 2))
    # A few short starts around the seed: the latency's cost has a minimum every command period, and the
    # seed (real against nominal motion) reads high by the servo lag the nominal model lacks, so most starts lie below it.
    starts = []
    for offset in starts_ms:
        start = params.copy()
        start["latency_ms"].value[:] = np.clip(seed_ms + offset, LATENCY_BOUNDS_MS[0] + 1.0, LATENCY_BOUNDS_MS[1] - 1.0)
        found, _ = sysid.optimize(start, sysid_residual, optimizer="mujoco", verbose=False, max_iters=2, output=io.StringIO(), **_SOLVER)
        starts.append((0.5 * float(np.sum(residual(found.as_vector()) ** 2)), found))
    cost, best = min(starts, key=lambda pair: pair[0])
    progress(f"{', '.join(block.joints)}: latency {float(best['latency_ms'].value[0]):.1f} ms from {len(starts)} starts, fitting")
    fitted, result = sysid.optimize(best, sysid_residual, optimizer="mujoco", verbose=False, max_iters=max_iters, output=io.StringIO(), **_SOLVER)
    x = fitted.as_vector()
    r = residual(x)
    jacobian = np.asarray(result.jac) if result.jac is not None else None
    _, intervals = sysid.calculate_intervals([r], jacobian)
    return _BlockFit(
        values=_fitted_values(replay, layout, x, intervals),
        motor_values=layout.values(MotorValues.nominal(replay), x[:-1]),
        entries=layout.entries,
        cost_nominal=cost_nominal,
        cost_fitted=0.5 * float(np.sum(r**2)),
        iterations=len(result.get("extras", {}).get("objective", [])),
        skipped=skipped,
    )


def combined_latency(latencies: Sequence[FittedValue]) -> FittedValue:
    """One latency for the arm from each block's: the inverse-variance mean of the identified ones (the median if none is)."""
    known = [v for v in latencies if v.identifiable and np.isfinite(v.interval) and v.interval > 0]
    if known:
        weights = np.array([1.0 / v.interval**2 for v in known])
        value = float(np.sum(weights * [v.value for v in known]) / weights.sum())
        interval = float(1.0 / np.sqrt(weights.sum()))
    else:
        value, interval = float(np.median([v.value for v in latencies])), float("inf")
    identifiable, reason = _identified(max(value * 1000.0, 1.0), interval * 1000.0)
    return FittedValue("latency", None, "latency", value, value, 0.0, interval, "s", identifiable, reason)


def identify(
    blocks: Sequence[Block],
    latency_seed_s: float,
    max_iters: int = 30,
    latency_starts_ms: Sequence[float] = (-20.0, -10.0, 0.0, 10.0),
    progress: Callable[[str], None] = lambda _: None,
) -> Fit:
    """Fit each block's dynamics jointly with the latency (see the module docstring), then merge the blocks."""
    replay = blocks[0].replayers[0].replay
    seed_ms = float(np.clip(latency_seed_s * 1000.0, *LATENCY_BOUNDS_MS))
    merged = MotorValues.nominal(replay)
    values: list[FittedValue] = []
    block_latencies: dict[str, FittedValue] = {}
    skipped: dict[str, str] = {}
    cost_nominal = cost_fitted = 0.0
    iterations = 0
    for block in blocks:
        part = _fit_block(block, seed_ms, max_iters, latency_starts_ms, progress)
        values += [v for v in part.values if v.joint is not None]
        block_latencies[", ".join(block.joints)] = part.values[-1]
        for motor, quantity in part.entries:
            field_name = _FIELD_OF[quantity]
            getattr(merged, field_name)[motor] = getattr(part.motor_values, field_name)[motor]
        skipped.update(part.skipped)
        cost_nominal += part.cost_nominal
        cost_fitted += part.cost_fitted
        iterations += part.iterations
    latency = combined_latency(list(block_latencies.values()))
    return Fit(
        joints=tuple(j for block in blocks for j in block.joints),
        values=values + [latency],
        motor_values=merged,
        latency_s=latency.value,
        cost_nominal=cost_nominal,
        cost_fitted=cost_fitted,
        iterations=iterations,
        not_fitted=skipped,
        block_latencies=block_latencies,
    )


_UNITS = {"damping": "N·m·s/rad", "frictionloss": "N·m", "armature": "kg·m²", "kp": "x", "kv": "x", "torque_limit": "N·m"}


def _fitted_values(replay: ReplayModel, layout: _Layout, x: np.ndarray, intervals: np.ndarray) -> list[FittedValue]:
    nominal = MotorValues.nominal(replay)
    base = {
        "damping": nominal.damping,
        "frictionloss": nominal.frictionloss,
        "armature": nominal.armature,
        "kp": nominal.kp_scale,
        "kv": nominal.kv_scale,
        "torque_limit": nominal.torque_limit,
    }
    out = []
    for (motor, quantity), scale, half in zip(layout.entries, x[:-1], intervals[:-1]):
        unit_value = float(base[quantity][motor])
        value, width = scale * unit_value, float(half) * unit_value
        identifiable, reason = _identified(scale, float(half))
        out.append(
            FittedValue(
                name=f"{replay.joints[motor]}.{quantity}", joint=replay.joints[motor], quantity=quantity, scale=float(scale),
                value=float(value), nominal=unit_value, interval=width, unit=_UNITS[quantity], identifiable=identifiable, reason=reason,
            )
        )
    latency_ms, half = float(x[-1]), float(intervals[-1])
    identifiable, reason = _identified(max(latency_ms, 1.0), half)
    out.append(
        FittedValue(
            name="latency", joint=None, quantity="latency", scale=latency_ms / 1000.0, value=latency_ms / 1000.0, nominal=0.0,
            interval=half / 1000.0, unit="s", identifiable=identifiable, reason=reason,
        )
    )
    return out


def _identified(value: float, half_width: float) -> tuple[bool, str]:
    if not np.isfinite(half_width):
        return False, "the data do not constrain it (infinite interval)"
    if half_width > IDENTIFIABLE_SHARE * abs(value):
        return False, f"95 % interval ±{half_width / max(abs(value), 1e-12):.0%} of the value"
    return True, ""
