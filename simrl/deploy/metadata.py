"""The metadata an exported policy carries, encoded as ONNX string properties, read without JAX.

``simrl.export`` writes it (and needs the training code to do so); the
robot-side bridge only reads it, so the codec lives here, where importing it
pulls in neither ``simrl.train`` nor JAX.

``randomization`` is ``{"name": ..., "content": ...}``: the name the run was
given (``none``, ``default``, a path) and the profile itself as trained (the run
dir's copy, robot overrides merged in, a mapping in the schema of
``randomization/*.yaml``), so a replay or ``simrl gap`` can resolve the ranges
the policy saw and deploy can tell a policy trained without randomization, which
rarely survives a real arm. Policies exported before the content was recorded
hold the name alone as plain text; they decode to ``{"name": ...}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import onnx
from google.protobuf.message import DecodeError

from simrl.errors import SimrlError
from simrl.randomization.profile import KINDS, InlineProfile
from simrl.robots import Robot
from simrl.tasks.reach import ReachTask

# ONNX metadata values are strings; these keys hold JSON (numbers, lists, mappings), the rest plain text.
JSON_KEYS = frozenset(
    {
        "action_scale", "control_dt", "arm_joints", "observation_layout", "obs_size", "action_size", "hidden_sizes", "obs_clip", "env_steps",
        "randomization",
    }
)  # fmt: skip

# What happened to a policy trained without randomization on the emulated arm's test reality (README, "Deploying on an arm").
MEASURED_WITHOUT = "one trained so reached 0/5 goals on the emulated arm's test reality, one trained with it 20/20: train with --randomization default"


def task_metadata(robot: Robot, task: ReachTask, task_name: str) -> dict[str, Any]:
    """The metadata that ties a policy to a robot and task: what the deploy side checks before driving an arm."""
    return {
        "robot": robot.name,
        "task": task_name,
        "action_space": task.config.action_space,
        "action_scale": task.action_scale,
        "control_dt": robot.config.control_dt,
        "arm_joints": list(robot.config.arm_joints),
        "observation_layout": [{"name": name, "size": size} for name, size in task.observation_layout()],
        "obs_size": task.observation_size,
        "action_size": task.action_size,
    }


def encode_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Metadata as ONNX string properties: JSON for the ``JSON_KEYS``, ``str`` for the rest."""
    return {key: json.dumps(value) if key in JSON_KEYS else str(value) for key, value in metadata.items()}


def decode_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """The inverse of ``encode_metadata`` (onnxruntime's ``custom_metadata_map`` or the model's properties)."""
    try:
        return {key: _decode(key, value) for key, value in props.items()}
    except json.JSONDecodeError as exc:
        raise SimrlError(f"policy metadata is not what `simrl export` writes ({exc})") from None


def _decode(key: str, value: str) -> Any:
    if key == "randomization" and not value.startswith("{"):
        return {"name": value}  # exported before the profile's content was recorded: its name alone, as text
    return json.loads(value) if key in JSON_KEYS else value


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata of an exported policy, JSON values decoded."""
    if not path.is_file():
        raise SimrlError(f"{path}: file not found")
    try:
        model = onnx.load(str(path))
    except DecodeError as exc:
        raise SimrlError(f"{path}: not an ONNX model ({exc})") from None
    return decode_metadata({prop.key: prop.value for prop in model.metadata_props})


def training_profile(metadata: Mapping[str, Any], label: Path) -> InlineProfile | None:
    """The randomization profile the policy was trained with, for ``resolve_profile``; None when the
    metadata does not carry it (exported before simrl recorded it). ``label`` names it in errors."""
    randomization = metadata.get("randomization") or {}
    content = randomization.get("content")
    if content is None:
        return None
    if not isinstance(content, Mapping):
        raise SimrlError(f"{label}: policy metadata 'randomization.content' must be a mapping, got {type(content).__name__}")
    return InlineProfile(name=str(randomization.get("name", "trained")), label=label, data=content)


def randomization_warning(metadata: Mapping[str, Any]) -> str | None:
    """One line when the policy was (or may have been) trained without domain randomization, else None.

    Says which: the profile ``none``, a profile that randomizes nothing, or
    unknown (metadata without the profile or its name: an older or hand-made
    export). A policy that carries only the name of a profile other than
    ``none`` (exported before the profile itself was recorded) is taken at its name.
    """
    randomization = metadata.get("randomization") or {}
    name, content = randomization.get("name"), randomization.get("content")
    if content is None and name is None:
        return f"this policy's metadata does not say whether it was trained with domain randomization (an older or hand-made export); {MEASURED_WITHOUT}"
    if content is None:
        randomized = name != "none"
    else:
        randomized = isinstance(content, Mapping) and any(content.get(kind) for kind in KINDS)
    if randomized:
        return None
    why = "profile 'none'" if name == "none" else f"its profile '{name}' randomizes nothing"
    return f"this policy was trained without domain randomization ({why}); {MEASURED_WITHOUT}"
