"""An exported policy on the robot: its onnxruntime session, and the checks that it belongs to this arm.

A policy trained for another robot, another control period, another joint
order or another action space would still run and produce numbers; nothing
downstream could tell they are wrong. So before a motor is enabled the
metadata ``simrl export`` baked in is compared with the robot and task the
bridge will drive, and any mismatch is refused with one line naming both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simrl.deploy.metadata import decode_metadata, randomization_warning, task_metadata
from simrl.deploy.policy_bench import open_session
from simrl.errors import SimrlError
from simrl.robots import Robot
from simrl.tasks.reach import ACTION_SPACES, ReachConfig, ReachTask

# Metadata floats (control_dt, action_scale) are stored as JSON from Python floats; beyond this they differ.
FLOAT_TOLERANCE = 1e-9
# Checked in this order, so the most telling mismatch is the one reported.
CHECKED = ("robot", "task", "control_dt", "arm_joints", "action_space", "action_scale", "observation_layout", "obs_size", "action_size")


class PolicyRuntime:
    """One ONNX policy, called with one observation at a time (the loop's only use)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = path
        self.session = open_session(path, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 2 or not isinstance(inputs[0].shape[1], int):
            raise SimrlError(f"{path}: not a policy graph (expected one input [batch, obs_size] and one output)")
        self._input = inputs[0].name
        self.obs_size = int(inputs[0].shape[1])
        self.metadata: dict[str, Any] = decode_metadata(self.session.get_modelmeta().custom_metadata_map)
        self._batch = np.zeros((1, self.obs_size), dtype=np.float32)

    def task_for(self, robot: Robot, reach: ReachConfig) -> ReachTask:
        """The reach task this policy drives on ``robot``, after checking the metadata against both.

        The action space comes from the policy (it decides how actions become
        targets); every other task setting comes from ``reach`` (rewards/reach.yaml).
        """
        meta = self.metadata
        missing = [key for key in CHECKED if key not in meta]
        if missing:
            raise SimrlError(f"{self.path}: policy metadata lacks {', '.join(missing)}; export it with `simrl export RUN_DIR`")
        if meta["action_space"] not in ACTION_SPACES:
            raise SimrlError(f"{self.path}: policy action_space '{meta['action_space']}' is unknown; allowed: {', '.join(ACTION_SPACES)}")
        task = ReachTask.for_robot(robot, reach.model_copy(update={"action_space": meta["action_space"]}))
        expected = task_metadata(robot, task, "reach")
        for key in CHECKED:
            if not _same(meta[key], expected[key]):
                raise SimrlError(f"{self.path}: policy {key} {meta[key]} does not match the arm's {expected[key]}; refusing to deploy")
        if self.obs_size != task.observation_size:
            raise SimrlError(f"{self.path}: the graph takes {self.obs_size} observations but its metadata says {task.observation_size}; re-export it")
        return task

    @property
    def randomization_warning(self) -> str | None:
        """One line if the policy was (or may have been) trained without domain randomization: it runs, but rarely well on a real arm."""
        return randomization_warning(self.metadata)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action (action_size,) for one observation (obs_size,), as float64."""
        self._batch[0] = obs
        (action,) = self.session.run(None, {self._input: self._batch})
        return np.asarray(action[0], dtype=np.float64)


def _same(policy_value: Any, arm_value: Any) -> bool:
    """Equal, floats to ``FLOAT_TOLERANCE`` (metadata floats went through JSON)."""
    if isinstance(policy_value, float) or isinstance(arm_value, float):
        return isinstance(policy_value, (int, float)) and abs(policy_value - arm_value) <= FLOAT_TOLERANCE
    return policy_value == arm_value
