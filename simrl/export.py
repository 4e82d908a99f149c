"""Export a run's policy as one self-contained ONNX graph: raw observation in, action in [-1, 1] out.

The graph holds everything between the robot's observation vector and the
action: the observation statistics ((obs - mean) / std, clipped to
±``OBS_CLIP``), the MLP, and the output squashing (clip for PPO, tanh for SAC).
A deploy loop feeds the observation as ``ReachTask.observe`` builds it and needs
no training code, and no JAX.

The graph has one output, ``action``, deliberately not joint targets. Turning an
action into joint targets needs the current targets (``joint_delta`` adds to
them, then clips to the joint limits) and, for ``ee_delta``, damped least
squares on the Jacobian at those targets: state and kinematics that belong to
the robot loop, not to a stateless graph. The robot runs the same numpy code the
env trains with (``ReachTask.next_target``), so there is one implementation of
that mapping and simulation and hardware cannot drift apart. The metadata
carries what that code needs to be set up and checked against the arm: robot,
action space and ``action_scale``, control period, joint names in order and the
observation layout, next to where the policy came from (simrl version, sha256
of the run's config.yaml, the randomization profile's name and content, env steps trained).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import simrl
from simrl.deploy.metadata import encode_metadata, read_metadata, task_metadata  # noqa: F401  (read_metadata: re-exported, it lived here)
from simrl.errors import SimrlError
from simrl.files import atomic_write
from simrl.randomization.profile import load_profile
from simrl.robots import load_robot
from simrl.tasks.reach import ReachTask
from simrl.train.config import TrainConfig
from simrl.train.normalization import OBS_CLIP
from simrl.train.policy import Policy, load_policy
from simrl.train.run_dir import RunDir

OPSET = 17
# make_model would stamp the newest IR this onnx knows; onnxruntime refuses IRs newer than its own,
# so the file says the IR that opset 17 came with and loads in older runtimes too.
IR_VERSION = helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)])

_ACTIVATION_OPS = {"tanh": "Tanh", "relu": "Relu", "elu": "Elu"}  # ONNX Elu's default alpha 1.0 is networks.activate's


@dataclass(frozen=True)
class ExportResult:
    """What ``export_policy`` wrote (printed by ``simrl export --json``)."""

    path: str
    file_bytes: int
    parameters: int
    obs_size: int
    action_size: int
    hidden_sizes: list[int]
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _constant(name: str, value: Any) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _normalizer_nodes(policy: Policy) -> tuple[list[onnx.NodeProto], list[TensorProto], str]:
    """(obs - mean) / std clipped to ±OBS_CLIP, in the order ``Policy.act`` computes it (so float32 results agree)."""
    constants = [
        _constant("obs_mean", policy.obs_mean),
        _constant("obs_std", policy.obs_std),
        _constant("obs_clip_low", -OBS_CLIP),
        _constant("obs_clip_high", OBS_CLIP),
    ]
    nodes = [
        helper.make_node("Sub", ["obs", "obs_mean"], ["obs_centered"], name="normalize_center"),
        helper.make_node("Div", ["obs_centered", "obs_std"], ["obs_scaled"], name="normalize_scale"),
        helper.make_node("Clip", ["obs_scaled", "obs_clip_low", "obs_clip_high"], ["obs_normalized"], name="normalize_clip"),
    ]
    return nodes, constants, "obs_normalized"


def _mlp_nodes(policy: Policy, x: str) -> tuple[list[onnx.NodeProto], list[TensorProto], str]:
    """MatMul + Add per layer, the activation after every layer but the last (as ``mlp_apply``)."""
    if policy.activation not in _ACTIVATION_OPS:
        raise SimrlError(f"activation {policy.activation!r} cannot be exported; allowed: {', '.join(_ACTIVATION_OPS)}")
    nodes, constants = [], []
    for i, layer in enumerate(policy.layers):
        constants += [_constant(f"layers.{i}.w", layer["w"]), _constant(f"layers.{i}.b", layer["b"])]
        nodes.append(helper.make_node("MatMul", [x, f"layers.{i}.w"], [f"layers.{i}.matmul"], name=f"layers.{i}.matmul"))
        nodes.append(helper.make_node("Add", [f"layers.{i}.matmul", f"layers.{i}.b"], [f"layers.{i}.linear"], name=f"layers.{i}.add"))
        x = f"layers.{i}.linear"
        if i < len(policy.layers) - 1:
            nodes.append(helper.make_node(_ACTIVATION_OPS[policy.activation], [x], [f"layers.{i}.act"], name=f"layers.{i}.act"))
            x = f"layers.{i}.act"
    return nodes, constants, x


def _squash_nodes(policy: Policy, x: str) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    """The output ``action`` in [-1, 1]: tanh (SAC) or clip (PPO's Gaussian mean)."""
    if policy.squash == "tanh":
        return [helper.make_node("Tanh", [x], ["action"], name="squash")], []
    constants = [_constant("action_low", -1.0), _constant("action_high", 1.0)]
    return [helper.make_node("Clip", [x, "action_low", "action_high"], ["action"], name="squash")], constants


def policy_to_onnx(policy: Policy, metadata: Mapping[str, Any] | None = None) -> onnx.ModelProto:
    """The graph of ``Policy.act`` on a batch of observations, with ``metadata``, checked by ``onnx.checker``."""
    policy = policy.to_numpy()
    obs_size, action_size = policy.obs_mean.shape[-1], policy.layers[-1]["b"].shape[-1]
    norm_nodes, norm_constants, x = _normalizer_nodes(policy)
    mlp_nodes, mlp_constants, x = _mlp_nodes(policy, x)
    squash_nodes, squash_constants = _squash_nodes(policy, x)
    graph = helper.make_graph(
        norm_nodes + mlp_nodes + squash_nodes,
        "simrl_policy",
        inputs=[helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", obs_size])],
        outputs=[helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", action_size])],
        initializer=norm_constants + mlp_constants + squash_constants,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="simrl",
        producer_version=simrl.__version__,
        doc_string="obs [batch, obs_size] -> action [batch, action_size] in [-1, 1]; see metadata for scaling and layout",
    )
    helper.set_model_props(model, encode_metadata(metadata or {}))
    onnx.checker.check_model(model, full_check=True)
    return model


def _hidden_sizes(policy: Policy) -> list[int]:
    return [int(layer["b"].shape[-1]) for layer in policy.layers[:-1]]


def run_metadata(run: RunDir, config: TrainConfig, policy: Policy, trained: Mapping[str, Any]) -> dict[str, Any]:
    """What the robot side needs to run and check the policy, and where it came from.

    The robot is loaded from the run's config, so a robot.yaml or task setting
    changed since training that alters the observation or action size is caught
    here rather than on the arm.
    """
    robot = load_robot(config.robot)
    task = ReachTask.for_robot(robot, config.task_settings)
    obs_size, action_size = policy.obs_mean.shape[-1], policy.layers[-1]["b"].shape[-1]
    if (obs_size, action_size) != (task.observation_size, task.action_size):
        raise SimrlError(
            f"{run.policy_file}: policy maps {obs_size} observations to {action_size} actions, but {robot.name} "
            f"{config.task} now has {task.observation_size} and {task.action_size} (robot or task settings changed since training?)"
        )
    return {
        "simrl_version": simrl.__version__,
        **task_metadata(robot, task, config.task),
        "algo": config.algo,
        "hidden_sizes": _hidden_sizes(policy),
        "activation": policy.activation,
        "squash": policy.squash,
        "obs_clip": OBS_CLIP,
        "randomization": {"name": config.randomization, "content": trained_profile(run, config, robot.name)},
        "env_steps": trained.get("env_steps"),
        "config_sha256": hashlib.sha256(run.config_file.read_bytes()).hexdigest(),
    }


def trained_profile(run: RunDir, config: TrainConfig, robot: str) -> dict[str, Any]:
    """The profile the run trained with on ``robot``, as a mapping: its run-dir copy (the named profile for runs older than the copy)."""
    profile, _ = load_profile(run.randomization_source(config), robot)
    return profile.model_dump(mode="json", exclude_none=True)


def _check_output(out: Path) -> None:
    if out.is_dir():
        raise SimrlError(f"{out}: is a folder; give a file name, e.g. {out / 'policy.onnx'}")
    if not out.parent.is_dir():
        raise SimrlError(f"{out.parent}: output folder not found")


def export_policy(run_dir: Path, out: Path) -> ExportResult:
    """Write the ONNX graph of ``run_dir``'s policy to ``out`` (atomically) with its metadata."""
    run = RunDir.open(run_dir)
    _check_output(out)
    if not run.policy_file.is_file():
        raise SimrlError(f"{run.policy_file}: no policy yet (training writes it at the first checkpoint)")
    config = run.read_config()
    policy, trained = load_policy(run.policy_file)
    metadata = run_metadata(run, config, policy, trained)
    model = policy_to_onnx(policy, metadata)
    atomic_write(out, lambda f: f.write(model.SerializeToString()))
    return ExportResult(
        path=str(out),
        file_bytes=out.stat().st_size,
        parameters=sum(int(layer["w"].size + layer["b"].size) for layer in policy.layers),
        obs_size=metadata["obs_size"],
        action_size=metadata["action_size"],
        hidden_sizes=metadata["hidden_sizes"],
        metadata=metadata,
    )
