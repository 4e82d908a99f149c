"""`simrl export` and `simrl bench policy`: the ONNX graph acts like the policy, carries its metadata, and is timed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

import simrl
from simrl.export import OPSET, export_policy, policy_to_onnx, read_metadata
from simrl.deploy.metadata import decode_metadata, randomization_warning, training_profile
from simrl.deploy.policy_bench import bench_policy
from simrl.errors import SimrlError
from simrl.randomization.profile import resolve_profile
from simrl.robots import load_robot
from simrl.tasks.reach import ReachTask
from simrl.train.networks import mlp_apply
from simrl.train.normalization import OBS_CLIP
from simrl.train.policy import Policy, load_policy
from simrl.train.run_dir import RunDir
from tests.cli import assert_one_line_error, run_simrl
from tests.tiny_run import tiny_train_args, write_tiny_recipe

METADATA_KEYS = {
    "simrl_version", "robot", "task", "algo", "action_space", "action_scale", "control_dt", "arm_joints", "observation_layout",
    "obs_size", "action_size", "hidden_sizes", "activation", "squash", "obs_clip", "randomization", "env_steps", "config_sha256",
}  # fmt: skip

# A profile as a system identification would write it: per-joint entries of one kind.
SYSID_PROFILE = """\
joint_damping:
  - {distribution: uniform, low: 1.62, high: 1.98, joints: [joint1, joint2]}
  - {distribution: uniform, low: 0.7, high: 1.3, joints: 're:joint[5-7]'}
robots:
  openarm:
    actuator_kp:
      - {distribution: fixed, value: 0.9, joints: [joint3]}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PPO run on so101, trained once for the whole module."""
    folder = tmp_path_factory.mktemp("export")
    trained = run_simrl(*tiny_train_args(folder, write_tiny_recipe(folder)))
    assert trained.returncode == 0, trained.stderr
    (path,) = (folder / "runs").iterdir()
    return path


@pytest.fixture(scope="module")
def sysid_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny PPO run on openarm trained with a profile of per-joint list entries (the profile file, the run folder)."""
    folder = tmp_path_factory.mktemp("export-sysid")
    profile = folder / "sysid.yaml"
    profile.write_text(SYSID_PROFILE)
    args = tiny_train_args(folder, write_tiny_recipe(folder))
    args[args.index("so101")] = "openarm"
    trained = run_simrl(*args, "--randomization", str(profile))
    assert trained.returncode == 0, trained.stderr
    (path,) = (folder / "runs").iterdir()
    return profile, path


@pytest.fixture(scope="module")
def exported(run: Path) -> tuple[Path, dict]:
    """The run exported by `simrl export RUN --json` to the default path, and what it printed."""
    result = run_simrl("export", str(run), "--json")
    assert result.returncode == 0, result.stderr
    return run / "policy.onnx", json.loads(result.stdout)


def onnx_actions(model: onnx.ModelProto | Path, obs: np.ndarray) -> np.ndarray:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    (action,) = session.run(None, {"obs": obs})
    return action


def observations(policy: Policy, count: int = 1000, seed: int = 0) -> np.ndarray:
    """Observations within the normalizer's range and far outside it (up to ~300 std), so the ±OBS_CLIP clip matters."""
    rng = np.random.default_rng(seed)
    spread = rng.choice([1.0, 5.0, 100.0], size=(count, 1))
    obs = (policy.obs_mean + policy.obs_std * spread * rng.standard_normal((count, len(policy.obs_mean)))).astype(np.float32)
    assert (np.abs((obs - policy.obs_mean) / policy.obs_std) > OBS_CLIP).any()
    return obs


def test_exported_graph_is_valid_and_acts_like_the_policy(run, exported):
    path, _ = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == OPSET
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    policy, _ = load_policy(run / "policy.npz")
    obs = observations(policy)
    np.testing.assert_allclose(onnx_actions(path, obs), policy.act(np, obs), atol=1e-5, rtol=0)
    np.testing.assert_allclose(onnx_actions(path, obs[:1]), policy.act(np, obs[:1]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("activation, squash", [("relu", "tanh"), ("elu", "clip")])
def test_a_hand_built_policy_exports_and_matches(activation, squash):
    rng = np.random.default_rng(1)
    sizes = [23, 32, 32, 4]
    layers = [
        {"w": (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32), "b": rng.standard_normal(n_out).astype(np.float32)}
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]
    mean = rng.standard_normal(sizes[0]).astype(np.float32)
    std = rng.uniform(0.1, 2.0, sizes[0]).astype(np.float32)
    policy = Policy(obs_mean=mean, obs_std=std, layers=layers, activation=activation, squash=squash)
    obs = observations(policy)
    unsquashed = mlp_apply(layers, np.clip((obs - mean) / std, -OBS_CLIP, OBS_CLIP), activation, xp=np)
    assert (np.abs(unsquashed) > 1.0).any() and (np.abs(unsquashed) < 1.0).any(), "the squashing is exercised"
    np.testing.assert_allclose(onnx_actions(policy_to_onnx(policy), obs), policy.act(np, obs), atol=1e-5, rtol=0)


def test_metadata_describes_the_robot_the_task_and_where_the_policy_came_from(run, exported):
    path, printed = exported
    meta = read_metadata(path)
    assert set(meta) == METADATA_KEYS
    config = RunDir.open(run).read_config()
    robot = load_robot("so101")
    layout = ReachTask.for_robot(robot, config.task_settings).observation_layout()
    policy, trained = load_policy(run / "policy.npz")
    assert meta["robot"] == "so101" and meta["task"] == "reach" and meta["algo"] == "ppo"
    assert meta["arm_joints"] == robot.config.arm_joints
    assert meta["observation_layout"] == [{"name": name, "size": size} for name, size in layout]
    assert meta["obs_size"] == sum(size for _, size in layout) == len(policy.obs_mean)
    assert meta["action_size"] == robot.n_arm == policy.layers[-1]["b"].shape[0]
    assert meta["action_space"] == "joint_delta" and meta["action_scale"] == robot.config.action_scale.joint_delta
    assert meta["control_dt"] == robot.config.control_dt
    assert (meta["activation"], meta["squash"], meta["hidden_sizes"], meta["obs_clip"]) == (policy.activation, "clip", [16], OBS_CLIP)
    assert meta["randomization"]["name"] == "none" and meta["env_steps"] == trained["env_steps"] > 0
    content = meta["randomization"]["content"]
    assert content == yaml.safe_load((run / "randomization.yaml").read_text()) == {"description": content["description"]}
    assert meta["config_sha256"] == hashlib.sha256((run / "config.yaml").read_bytes()).hexdigest()
    assert meta["simrl_version"] == simrl.__version__
    assert printed["metadata"] == meta and printed["path"] == str(path) and printed["file_bytes"] == path.stat().st_size


def test_export_to_a_chosen_file_prints_a_summary(run, tmp_path):
    out = tmp_path / "so101.onnx"
    result = run_simrl("export", str(run), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out} (") and "joints: shoulder_pan" in result.stdout
    assert read_metadata(out)["robot"] == "so101"


def test_bench_policy_reports_ordered_positive_latencies(exported):
    path, _ = exported
    result = run_simrl("bench", "policy", str(path), "--calls", "2000", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["calls"] == 2000 and figures["threads"] == 1
    assert 0 < figures["p50_us"] <= figures["p99_us"] <= figures["max_us"] and figures["mean_us"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "/no/such/run"], "error: /no/such/run: run folder not found"),
        (["bench", "policy", "/no/such/policy.onnx"], "error: /no/such/policy.onnx: file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    assert_one_line_error(run_simrl(*args), message)


def test_export_into_a_missing_folder_is_one_line(run):
    result = run_simrl("export", str(run), "-o", "/no/such/folder/policy.onnx")
    assert result.returncode == 2 and result.stderr.strip() == "error: /no/such/folder: output folder not found"


def test_a_run_without_a_policy_or_a_file_that_is_not_onnx_is_named(run, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run / "config.yaml", unfinished)
    with pytest.raises(SimrlError, match=r"policy.npz: no policy yet"):
        export_policy(unfinished, unfinished / "policy.onnx")
    with pytest.raises(SimrlError, match=r"config.yaml: onnxruntime cannot load it"):
        bench_policy(run / "config.yaml", calls=1)


def test_the_policy_carries_the_profile_it_trained_with_and_it_resolves_again(sysid_run, tmp_path):
    profile, run = sysid_run
    out = tmp_path / "openarm.onnx"
    export_policy(run, out)
    meta = read_metadata(out)
    assert meta["randomization"]["name"] == str(profile)
    content = meta["randomization"]["content"]
    assert content == yaml.safe_load((run / "randomization.yaml").read_text())
    assert [entry["joints"] for entry in content["joint_damping"]] == [["joint1", "joint2"], "re:joint[5-7]"]
    carried = training_profile(meta, out)
    assert carried is not None and carried.label == out
    openarm = load_robot("openarm")
    again, original = resolve_profile(carried, openarm), resolve_profile(profile, openarm)
    assert [(p.label, p.names, p.spec) for p in again.parameters] == [(p.label, p.names, p.spec) for p in original.parameters]
    assert again.entries("actuator_kp")[0].names == ("joint3",)  # the openarm section, merged in at training
    assert randomization_warning(meta) is None


def test_an_older_policy_with_the_profiles_name_alone_still_reads(tmp_path):
    policy = Policy(
        obs_mean=np.zeros(23, np.float32), obs_std=np.ones(23, np.float32),
        layers=[{"w": np.zeros((23, 5), np.float32), "b": np.zeros(5, np.float32)}], activation="tanh", squash="clip",
    )  # fmt: skip
    model = policy_to_onnx(policy)
    onnx.helper.set_model_props(model, {"robot": "so101", "randomization": "default", "obs_size": "23"})  # as exports before the content wrote it
    path = tmp_path / "old.onnx"
    path.write_bytes(model.SerializeToString())
    meta = read_metadata(path)
    assert meta == {"robot": "so101", "randomization": {"name": "default"}, "obs_size": 23}
    assert training_profile(meta, path) is None and randomization_warning(meta) is None


NONE = {"name": "none", "content": {"description": "no randomization"}}


@pytest.mark.parametrize(
    "props, expected",
    [
        ({"randomization": json.dumps(NONE)}, "trained without domain randomization (profile 'none')"),
        ({"randomization": json.dumps({"name": "mine.yaml", "content": {"description": ""}})}, "its profile 'mine.yaml' randomizes nothing"),
        ({"randomization": "none"}, "trained without domain randomization (profile 'none')"),  # older export: the name alone
        ({"robot": "openarm"}, "metadata does not say whether it was trained with domain randomization"),
        ({"randomization": json.dumps({"name": "x", "content": {"joint_damping": [{"distribution": "fixed", "value": 1.0, "joints": "all"}]}})}, None),
        ({"randomization": "default"}, None),  # older export: the name says it was randomized
    ],
)
def test_the_randomization_warning_says_why(props, expected):
    warning = randomization_warning(decode_metadata(props))  # the metadata as the robot side reads it from the ONNX properties
    if expected is None:
        assert warning is None
    else:
        assert warning is not None and expected in warning and "train with --randomization default" in warning and "\n" not in warning
