"""Could training have seen this arm? Replay the log on worlds drawn from the policy's own randomization profile.

The worlds are drawn with the same lines training and the emulated reality use
(``simrl.randomization.apply``, numpy), written into the replay model (the
servo's kp / kv / torque-limit draws become the motor law's gain scales and
limit), each with its drawn latency. The share of real readings inside the
worlds' range, per joint, says whether the real arm lies in what training
covered; a joint far outside it is where the profile needs widening.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from simrl.deploy import metadata
from simrl.gap import metrics
from simrl.gap.replay import Replayer
from simrl.gap.replay_model import MotorValues, ReplayModel
from simrl.randomization import apply
from simrl.randomization.profile import KINDS, InlineProfile, resolve_profile
from simrl.robots import Robot

if TYPE_CHECKING:
    from simrl.gap.pipeline import LogGap

# A reading within this of the worlds' range (rad) counts as inside: about an encoder's noise.
TOLERANCE_RAD = 0.002
_ACTUATOR_FIELDS = ("actuator_gainprm", "actuator_biasprm", "actuator_forcerange")


def training_profile(meta: dict[str, Any], label: Path) -> InlineProfile | None:
    """The profile the log's policy trained with (from its ONNX metadata); None for excitation logs, older
    exports, and a profile that randomizes nothing (``none``). ``label`` (the log) names it in errors."""
    policy = meta.get("policy_metadata")
    if not policy:
        return None
    profile = metadata.training_profile(policy, label)
    if profile is None or not any(profile.data.get(kind) for kind in KINDS):
        return None
    return profile


@dataclass
class Envelope:
    """The drawn worlds as replay models with their latencies."""

    profile: str
    models: list[mujoco.MjModel]
    latencies: list[float]

    @property
    def worlds(self) -> int:
        return len(self.models)

    def apply(self, gap: "LogGap", replayer: Replayer) -> None:
        """Replay ``gap``'s log on every world; store the range and each joint's share of readings inside it."""
        worlds = replayer.predict(self.models, self.latencies).position
        gap.envelope = (worlds.min(axis=0), worlds.max(axis=0))
        inside = metrics.inside_envelope(gap.real, worlds, TOLERANCE_RAD)
        for joint, share in zip(gap.joints, inside):
            joint.inside_envelope = float(share)


def training_envelope(robot: Robot, replay: ReplayModel, meta: dict[str, Any], label: Path, worlds: int, seed: int = 0) -> Envelope | None:
    """``worlds`` replay models drawn from the log's training profile (``label``: the log, for errors), or None when it has none."""
    found = training_profile(meta, label)
    if found is None or worlds <= 0:
        return None
    profile = resolve_profile(found, robot)
    nominal = apply.nominal_fields(robot, profile.model_fields)
    source = apply.GeneratorSource(np.random.default_rng(seed))
    model_fields, values = apply.sample_episode(np, source, profile.parameters, nominal, apply.ModelIndex.for_robot(robot), worlds)
    periods = np.zeros(worlds)
    for kind in ("latency_steps", "latency_substeps"):
        if kind in values:
            periods = periods + np.asarray(values[kind], dtype=float)
    models = [_world(robot, replay, {f: v[w] for f, v in model_fields.items()}) for w in range(worlds)]
    return Envelope(profile=found.name, models=models, latencies=list(periods * robot.config.control_dt))


def _world(robot: Robot, replay: ReplayModel, drawn: dict[str, np.ndarray]) -> mujoco.MjModel:
    """The replay model with one world's drawn fields: model fields as drawn, servo draws as motor-law scales."""
    values = MotorValues.nominal(replay)
    model = replay.with_values(values)
    for field, value in drawn.items():
        if field in _ACTUATOR_FIELDS:
            continue
        attrgetter(field)(model)[...] = value
    # The replay model keeps each motor's MJCF servo at its id (``target_act``), so the robot's servo draws index alike.
    ratio = lambda field, column: apply.actuator_ratio(robot.model, drawn, field, replay.target_act, column)  # noqa: E731
    dofs = replay.dof_adr
    MotorValues(
        damping=model.dof_damping[dofs].copy(),
        frictionloss=model.dof_frictionloss[dofs].copy(),
        armature=model.dof_armature[dofs].copy(),
        kp_scale=ratio("actuator_gainprm", 0),
        kv_scale=ratio("actuator_biasprm", 2),
        torque_limit=replay.rated_torque * ratio("actuator_forcerange", 1),
    ).write(replay, model)
    return model

