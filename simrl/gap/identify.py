"""Identify the arm from its logs: per-joint dynamics and the command latency, fitted jointly with ``mujoco.sysid``.

The unknowns are, for every joint the logs move: viscous damping, dry friction
(frictionloss), armature, the motor's kp and kd gain errors, and the torque
limit where the commands exceed it; plus one command latency for the
arm. All are scales of the training model's values (1 = as trained) except the
latency, in milliseconds, so the problem is well scaled.

Fitted alone on the nominal model, the latency would absorb the servo's own
lag (a weaker kp or more damping lag the joint too) and read far too high; so
it is fitted jointly with the dynamics, in two stages, both through
``mujoco.sysid.optimize`` (box-constrained Gauss-Newton; each finite-difference
column is one candidate model, and all candidates' chunks are stepped in one
threaded rollout):

1. the latency's profile: on a grid around the cross-correlation estimate
   (real against nominal motion), every block's kp, kd and damping scales are
   fitted at each latency from the training model and the costs summed; then
   the physics-step grid around the best point and a parabola through the
   least costs. The cost has a local minimum every command period; a search
   that looks at every point is not misled by them, where a gradient started
   at the wrong one was. Profiling refits the dynamics at each latency, so the
   latency's interval (from the parabola's curvature) allows for them;
2. at that latency, each block's full set of values to convergence, with the
   other joints held at their values from a first round (a held joint sags
   under its own gains while another swings).

Link masses are not fitted: with positions alone, masses scaled together with
armature, damping, friction and gains leave the motion unchanged, and the
torque a Damiao motor reports is its own estimate from the commanded law, not
a measurement of what the link needed (``Fit.not_fitted`` says so).

A position servo (control law ``servo``) is replayed at the model's actuator
gains, so its kp and kv are its loop's effective gains against the model's.
A stiff servo makes the replay chaotic in its parameters (``FD_STEP_SERVO``),
so a block with one takes larger finite-difference steps and its final fit
runs from several starts (``SERVO_STARTS``); and its armature is held at the
training model's, the scale its gains, cap, damping and friction are fitted on
(a light joint's motion moves alike when all of them scale with it).

Confidence intervals come from ``mujoco.sysid.calculate_intervals`` (JᵀJ of
the data rows at the optimum, residual variance as noise). A weak prior toward
the training model keeps a direction the data cannot see in place; a value the
data cannot pin down (an infinite or wide interval) is flagged
``identifiable: false``, and the patch keeps the base range for it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import scipy.special
from mujoco import sysid

from simrl.gap.replay import Replayer
from simrl.gap.replay_model import MotorValues, ReplayModel

# Weight of a velocity error against a position error: 1 rad/s counts like 20 mrad.
VELOCITY_WEIGHT = 0.02
# Box bounds of the scale parameters (x the training model's value).
SCALE_BOUNDS = {"damping": (0.05, 20.0), "frictionloss": (0.01, 20.0), "armature": (0.3, 5.0), "kp": (0.2, 3.0), "kv": (0.05, 10.0)}
TORQUE_BOUNDS = (0.2, 1.5)
LATENCY_BOUNDS_MS = (0.0, 100.0)
# Readings in which the commanded MIT torque must exceed the rated limit for the limit to be fitted.
SATURATION_TICKS = 5
# A fitted value whose 95 % interval half-width exceeds this share of it is not identified by the data.
IDENTIFIABLE_SHARE = 0.15
# Finite-difference step of the Gauss-Newton Jacobian (on scales ~1 and milliseconds).
FD_STEP = 1e-4
# ... for a block with a position servo. At the training model's stiff servo (the SO-101's kp 998 N·m/rad saturates
# 3.4 mrad from its goal, and a 5 ms physics step crosses that while the joint moves, so the torque flips between the
# caps from one step to the next) the replay is chaotic in its parameters: on a 30 s excitation of a synthetic SO-101
# servo plant (tests/gap_logs.py), scaling wrist_flex's torque cap by 1 + 1e-5 moved its replay by 0.14 mrad rms, by 1
# + 1e-2 no more (0.41 mrad). A 1e-4 difference measures that chatter, not the trend: Gauss-Newton stopped at the
# training model (every scale 1.00, cost 5.8x the truth's); with 3 % steps it followed the trend (kp and cap within 10
# % of the truth).
FD_STEP_SERVO = 3e-2
# Where a servo block's final fit starts (every scale at once). On that rugged cost a run stops in the nearest dip:
# on the wrists, runs from these starts ended 2-5x apart in cost; the lowest is kept (on 30 s of a synthetic SO-101
# servo plant: kp and cap within 3.5 % of the truth's on four joints, kp 11 % high on wrist_flex). The starts span
# the servo strengths a sagging supply or a softer loop make plausible.
SERVO_STARTS = (1.0, 0.85, 0.7, 1.2)
# Stop when a step changes no parameter by more than this share (scales ~1: 0.01 % is far below any interval).
STEP_TOLERANCE = 1e-4
QUANTITIES = ("damping", "frictionloss", "armature", "kp", "kv", "torque_limit")
# What the latency profile refits at each latency: the values that trade with a delay (a softer or more damped
# servo lags too). Fewer unknowns converge alike at every point, so the profile is smooth where the full set was not.
PROFILE_QUANTITIES = ("kp", "kv", "damping")
# ... on a servo joint, with its torque cap: a stiff servo saturates in every move, so a weaker one lags as well. Its
# motion is so sensitive to timing that the latency must land within a millisecond: on 12 s of a synthetic SO-101
# servo plant, a profile without the cap read 28.7 ms for 29.6 (the truth's cost there 7x its cost at 30.0), and the
# dynamics fitted at it took the difference (elbow damping x1.47 and cap x0.78 for x1.8 and x0.85).
PROFILE_QUANTITIES_SERVO = PROFILE_QUANTITIES + ("torque_limit",)
# The latency profile: a grid (ms) around the cross-correlation seed, and Gauss-Newton steps of the dynamics at each point.
# 7.5 ms is three physics steps, well under the 20 ms between the cost's local minima.
GRID_STEP_MS, GRID_BELOW_MS, GRID_ABOVE_MS = 7.5, 30.0, 0.0
PROFILE_ITERS = 4
COUPLING_ROUNDS = 2
FINE_STEP_MS = 2.5  # the openarm's physics step: the grid the emulated (and a real) motor applies commands on
# Weight of the prior's rows, PRIOR_WEIGHT * log(scale): with ~1 mrad of noise per reading this says "within about
# 10 % of the training model" (log-scale std 0.1): a few seconds of excitation pin a seen value far tighter than that.
PRIOR_WEIGHT = 1e-2


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
    latency_profile: dict[float, float] = field(default_factory=dict)  # latency (s) -> cost with the dynamics fitted at it

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
    """Per motor: whether the logged commands asked for more than its rated torque in ``SATURATION_TICKS`` readings or more.

    Only a motor the logs drive into its limit says how strong it is; below it
    the limit changes nothing and a fit of it would only add an unknown.
    """
    replay = replayers[0].replay
    count = np.zeros(len(replay.joints), dtype=int)
    for r in replayers:
        rec, rows = r.recording, r.rows
        kp, kd = replay.gains(rec.command_kp[rows], rec.command_kd[rows])
        asked = kp * np.abs(rec.command_position[rows] - rec.position[rows]) + kd * np.abs(rec.velocity[rows])
        count += np.sum(asked > replay.rated_torque, axis=0)
    return count >= SATURATION_TICKS


def _parameters(
    replay: ReplayModel, joints: Sequence[str], saturating: np.ndarray, quantities: Sequence[str] = QUANTITIES
) -> tuple[sysid.ParameterDict, _Layout, dict[str, str]]:
    """The dynamics parameters of ``joints`` (scales, all starting at 1) and what is left out, and why."""
    params = sysid.ParameterDict()
    entries: list[tuple[int, str]] = []
    skipped: dict[str, str] = {}
    nominal = MotorValues.nominal(replay)
    for joint in joints:
        motor = replay.joints.index(joint)
        for quantity in (q for q in quantities if q != "torque_limit"):
            base = {"damping": nominal.damping, "frictionloss": nominal.frictionloss, "armature": nominal.armature}.get(quantity)
            if base is not None and base[motor] == 0:
                skipped[f"{joint}.{quantity}"] = "0 in the training model: a scale of it cannot be fitted"
                continue
            if quantity == "armature" and replay.servo[motor]:
                skipped[f"{joint}.{quantity}"] = SERVO_ARMATURE
                continue
            low, high = SCALE_BOUNDS[quantity]
            params.add(sysid.Parameter(f"{joint}.{quantity}", nominal=1.0, min_value=low, max_value=high))
            entries.append((motor, quantity))
        if saturating[motor] and "torque_limit" in quantities:
            params.add(sysid.Parameter(f"{joint}.torque_limit", nominal=1.0, min_value=TORQUE_BOUNDS[0], max_value=TORQUE_BOUNDS[1]))
            entries.append((motor, "torque_limit"))
        elif "torque_limit" in quantities:
            skipped[f"{joint}.torque_limit"] = f"the logs ask for more than the rated torque in fewer than {SATURATION_TICKS} readings"
    return params, _Layout(tuple(entries)), skipped


def residual_builder(
    pieces: Sequence[tuple[Replayer, Sequence[str]]], layout: _Layout, latency_ms: float, held: MotorValues | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """``x (n,) or (n, k) -> residuals (m,) or (m, k)`` at a latency: each replayer's position and weighted
    velocity errors on its joints, then the prior's rows (``PRIOR_WEIGHT * log(scale)``).

    The prior is what keeps a direction the data cannot see (on a wrist joint,
    armature, gains, damping and friction scaled together move it the same)
    at the training model instead of wandering to a bound; it is far too weak
    to move anything the data do see. ``held`` gives the joints ``layout``
    does not fit their values (default: the training model's).
    """
    replay = pieces[0][0].replay
    nominal = MotorValues.nominal(replay)
    if held is not None:
        nominal = held.with_motors(nominal, [motor for motor, _ in layout.entries])
    motors = [np.array([replay.joints.index(j) for j in joints]) for _, joints in pieces]
    measured = [r.measured() for r, _ in pieces]

    def residual(x: np.ndarray) -> np.ndarray:
        columns = x.reshape(x.shape[0], -1)
        models = [replay.with_values(layout.values(nominal, column)) for column in columns.T]
        parts = []
        for (r, _), m, (q, dq) in zip(pieces, motors, measured):
            p = r.predict(models, [latency_ms / 1000.0] * len(models))
            parts.append((p.position[..., m] - q[None, :, m]).reshape(len(models), -1))
            parts.append(VELOCITY_WEIGHT * (p.velocity[..., m] - dq[None, :, m]).reshape(len(models), -1))
        parts.append(PRIOR_WEIGHT * np.log(np.maximum(columns.T, 1e-12)))
        out = np.concatenate(parts, axis=1).T
        return out[:, 0] if x.ndim == 1 else out

    return residual


def _solve(
    params: sysid.ParameterDict, residual: Callable[[np.ndarray], np.ndarray], max_iters: int, eps: float
) -> tuple[sysid.ParameterDict, Any]:
    """``mujoco.sysid.optimize`` (mujoco's Gauss-Newton, finite-difference step ``eps``) on ``residual``; its per-iteration lines go to a buffer."""
    return sysid.optimize(
        params, lambda x, _p: ([residual(x)], None, None), optimizer="mujoco", verbose=False, max_iters=max_iters, output=io.StringIO(),
        eps=eps, xtol=STEP_TOLERANCE,
    )  # fmt: skip


def _cost(residual: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> float:
    return 0.5 * float(np.sum(residual(x) ** 2))


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

    @property
    def servo(self) -> bool:
        """A joint of the block is a position servo's (its replay is chaotic in the parameters: ``FD_STEP_SERVO``)."""
        replay = self.replayers[0].replay
        return any(replay.servo[replay.joints.index(j)] for j in self.joints)


@dataclass
class _BlockFit:
    """One block's dynamics fitted at one latency."""

    params: sysid.ParameterDict
    cost: float
    residual: np.ndarray
    result: Any


def _fit_block(
    block: Block,
    params: sysid.ParameterDict,
    layout: _Layout,
    latency_ms: float,
    iterations: int,
    held: MotorValues | None = None,
    final: bool = False,
) -> _BlockFit:
    """The block's dynamics fitted at ``latency_ms`` from the training model (every scale 1), the other joints at ``held``.

    A block with a servo gets the larger finite-difference step and, for its
    ``final`` fit, a run from each of ``SERVO_STARTS``, keeping the lowest cost.
    """
    residual = residual_builder([(r, block.joints) for r in block.replayers], layout, latency_ms, held)
    best: _BlockFit | None = None
    low, high = params.get_bounds()
    for start in SERVO_STARTS if block.servo and final else (1.0,):
        first = params.copy()
        first.update_from_vector(np.clip(np.full(len(low), start), low, high))
        fitted, result = _solve(first, residual, iterations, FD_STEP_SERVO if block.servo else FD_STEP)
        r = residual(fitted.as_vector())
        fit = _BlockFit(fitted, 0.5 * float(np.sum(r**2)), r, result)
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    return best


def latency_grid(seed_ms: float) -> np.ndarray:
    """Latencies (ms) the profile visits: below the seed mostly, since it reads high by the servo lag the nominal model lacks."""
    low = max(LATENCY_BOUNDS_MS[0], seed_ms - GRID_BELOW_MS)
    high = min(LATENCY_BOUNDS_MS[1], seed_ms + GRID_ABOVE_MS)
    return np.arange(low, high + 1e-9, GRID_STEP_MS)


def _parabola(points: dict[float, float]) -> tuple[float, float]:
    """(argmin, curvature d²cost/dL²) of the parabola through the best point and its nearest neighbour on
    each side; the best point and curvature 0 at an edge or where the three points do not curve up."""
    grid = np.array(sorted(points))
    costs = np.array([points[k] for k in grid])
    best = int(np.argmin(costs))
    if 0 < best < len(grid) - 1:
        a, b, _ = np.polyfit(grid[best - 1 : best + 2], costs[best - 1 : best + 2], 2)
        if a > 0:
            return float(np.clip(-b / (2 * a), grid[best - 1], grid[best + 1])), float(2 * a)
    return float(grid[best]), 0.0


def identify(
    blocks: Sequence[Block],
    latency_seed_s: float,
    max_iters: int = 15,
    progress: Callable[[str], None] = lambda _: None,
) -> Fit:
    """Profile the latency, then fit each block's dynamics at its best (see the module docstring)."""
    replay = blocks[0].replayers[0].replay
    seed_ms = float(np.clip(latency_seed_s * 1000.0, *LATENCY_BOUNDS_MS))
    setups, profiled, skipped = [], [], {}
    for block in blocks:
        saturating = saturating_motors(block.replayers)
        params, layout, left_out = _parameters(replay, block.joints, saturating)
        setups.append((block, params, layout))
        profiled.append((block, *_parameters(replay, block.joints, saturating, PROFILE_QUANTITIES_SERVO if block.servo else PROFILE_QUANTITIES)[:2]))
        skipped.update(left_out)

    skipped["link_mass"] = "positions alone cannot tell a mass scale from armature, damping, friction and gains scaled with it"

    def profile_point(latency_ms: float) -> float:
        total = sum(_fit_block(block, params, layout, latency_ms, PROFILE_ITERS).cost for block, params, layout in profiled)
        progress(f"latency profile: {latency_ms:.1f} ms, cost {total:.4g}")
        return total

    # Stage 1: the latency's profile, coarse, then on the physics-step grid around the best coarse point.
    profile = {float(latency): profile_point(float(latency)) for latency in latency_grid(seed_ms)}
    coarse_best = min(profile, key=profile.get)
    fine = [coarse_best + offset for offset in (-FINE_STEP_MS, 0.0, FINE_STEP_MS) if coarse_best + offset >= LATENCY_BOUNDS_MS[0]]
    for latency in fine:
        if latency not in profile:
            profile[latency] = profile_point(latency)
    latency_ms, curvature = _parabola(profile)
    # Stage 2: every block's dynamics at that latency, to convergence, with intervals from its own Jacobian. A held
    # joint sags under its own gains while another swings: the second round holds them at their first-round values.
    progress(f"fitting the dynamics at {latency_ms:.1f} ms")
    held = MotorValues.nominal(replay)
    for _ in range(COUPLING_ROUNDS):
        values: list[FittedValue] = []
        entries: list[tuple[int, str]] = []
        residuals: list[np.ndarray] = []
        cost_fitted = 0.0
        iterations = 0
        fitted = held
        for block, params, layout in setups:
            fit = _fit_block(block, params, layout, latency_ms, max_iters, held, final=True)
            x = fit.params.as_vector()
            intervals = _data_intervals(fit.residual, fit.result.jac, len(x))
            values += _fitted_values(replay, layout, x, intervals)
            entries += list(layout.entries)
            fitted = layout.values(MotorValues.nominal(replay), x).with_motors(fitted, [motor for motor, _ in layout.entries], keep=True)
            residuals.append(fit.residual)
            cost_fitted += fit.cost
            iterations += len(fit.result.get("extras", {}).get("objective", []))
        held = fitted
    cost_nominal = sum(
        0.5 * float(np.sum(residual_builder([(r, block.joints) for r in block.replayers], layout, 0.0)(np.ones(len(layout.entries))) ** 2))
        for block, _, layout in setups
    )
    values.append(_latency_value(latency_ms, curvature, np.concatenate(residuals), len(entries) + 1))
    return Fit(
        joints=tuple(j for block, _, _ in setups for j in block.joints),
        values=values,
        motor_values=held,
        latency_s=latency_ms / 1000.0,
        cost_nominal=cost_nominal,
        cost_fitted=cost_fitted,
        iterations=iterations,
        not_fitted=skipped,
        latency_profile={k / 1000.0: v for k, v in sorted(profile.items())},
    )


def _data_intervals(residual: np.ndarray, jacobian: np.ndarray | None, parameters: int) -> np.ndarray:
    """95 % half-widths from the data rows alone (the prior's ``parameters`` rows come last and are left out).

    The prior keeps an unseen direction in place; it must not also make that
    direction look measured, so identifiability is judged on what the logs say.
    """
    if jacobian is None:
        return np.full(parameters, np.inf)
    _, intervals = sysid.calculate_intervals([residual[:-parameters]], np.asarray(jacobian)[:-parameters])
    return intervals


def _latency_value(latency_ms: float, curvature: float, residual: np.ndarray, parameters: int) -> FittedValue:
    """The latency with a 95 % interval from the profile's curvature: the residual variance over d²cost/dL².

    Profiling refits the dynamics at each latency, so the interval already
    allows for every way the dynamics could make up for a latency error.
    """
    dof = max(residual.size - parameters, 1)
    if curvature > 0:
        variance = float(np.dot(residual, residual)) / dof / curvature
        half_ms = float(np.sqrt(variance) * scipy.special.stdtrit(dof, 0.975))
    else:
        half_ms = float("inf")
    identifiable, reason = _identified(max(latency_ms, 1.0), half_ms)
    return FittedValue("latency", None, "latency", latency_ms / 1000.0, latency_ms / 1000.0, 0.0, half_ms / 1000.0, "s", identifiable, reason)


SERVO_ARMATURE = (
    "held at the training model's on a servo joint: a stiff servo's motion fixes each torque over the inertia, so gains, torque cap, "
    "damping and friction scaled with the armature move a light joint alike; held, they are fitted as torques on the training model"
)
_UNITS = {"damping": "N·m·s/rad", "frictionloss": "N·m", "armature": "kg·m²", "kp": "x", "kv": "x", "torque_limit": "N·m"}
_SERVO_UNITS = {"kp": "N·m/rad", "kv": "N·m·s/rad"}  # a servo's gains are its own loop's, against the model's actuator


def _fitted_values(replay: ReplayModel, layout: _Layout, x: np.ndarray, intervals: np.ndarray) -> list[FittedValue]:
    """The scales ``x`` of ``layout`` as values in units, with their intervals and identifiability.

    An impedance motor's kp and kv are scales of the gains each command sent
    (which vary tick by tick); a servo's are its loop's gains in N·m/rad and
    N·m·s/rad, against the model's actuator kp and kv it is replayed with.
    """
    nominal = MotorValues.nominal(replay)
    base = {
        "damping": nominal.damping,
        "frictionloss": nominal.frictionloss,
        "armature": nominal.armature,
        "kp": np.where(replay.servo, replay.model_kp, nominal.kp_scale),
        "kv": np.where(replay.servo, replay.model_kv, nominal.kv_scale),
        "torque_limit": nominal.torque_limit,
    }
    out = []
    for (motor, quantity), scale, half in zip(layout.entries, x, intervals):
        unit_value = float(base[quantity][motor])
        identifiable, reason = _identified(scale, float(half))
        unit = _SERVO_UNITS.get(quantity, _UNITS[quantity]) if replay.servo[motor] else _UNITS[quantity]
        out.append(
            FittedValue(
                name=f"{replay.joints[motor]}.{quantity}", joint=replay.joints[motor], quantity=quantity, scale=float(scale),
                value=float(scale * unit_value), nominal=unit_value, interval=float(half) * unit_value, unit=unit,
                identifiable=identifiable, reason=reason,
            )
        )
    return out


def _identified(value: float, half_width: float) -> tuple[bool, str]:
    if not np.isfinite(half_width):
        return False, "the data do not constrain it (infinite interval)"
    if half_width > IDENTIFIABLE_SHARE * abs(value):
        return False, f"95 % interval ±{half_width / max(abs(value), 1e-12):.0%} of the value"
    return True, ""
