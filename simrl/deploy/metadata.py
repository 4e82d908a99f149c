"""The metadata an exported policy carries, encoded as ONNX string properties, read without JAX.

``simrl.deploy.export`` writes it (and needs the training code to do so); the
robot-side bridge only reads it, so the codec lives here, where importing it
pulls in neither ``simrl.train`` nor JAX.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import onnx
from google.protobuf.message import DecodeError

from simrl.errors import SimrlError
from simrl.robots import Robot
from simrl.tasks.reach import ReachTask

# ONNX metadata values are strings; these keys hold JSON (numbers, lists, mappings), the rest plain text.
JSON_KEYS = frozenset(
    {"action_scale", "control_dt", "arm_joints", "observation_layout", "obs_size", "action_size", "hidden_sizes", "obs_clip", "env_steps"}
)


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
        return {key: json.loads(value) if key in JSON_KEYS else value for key, value in props.items()}
    except json.JSONDecodeError as exc:
        raise SimrlError(f"policy metadata is not what `simrl export` writes ({exc})") from None


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata of an exported policy, JSON values decoded."""
    if not path.is_file():
        raise SimrlError(f"{path}: file not found")
    try:
        model = onnx.load(str(path))
    except DecodeError as exc:
        raise SimrlError(f"{path}: not an ONNX model ({exc})") from None
    return decode_metadata({prop.key: prop.value for prop in model.metadata_props})
