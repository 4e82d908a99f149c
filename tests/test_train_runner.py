"""The runner on the real so101 reach env with a tiny network: run dir, checkpoints, resume, NaN guard, TensorBoard."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from simrl.errors import SimrlError
from simrl.train.checkpoint import load_checkpoint, save_checkpoint
from simrl.train.config import resolve_config
from simrl.train.policy import load_policy
from simrl.train.ppo import PPO
from simrl.train.run_dir import RunDir
from simrl.train.runner import Runner
from tests.tiny_run import write_short_episodes, write_tiny_recipe


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    return write_tiny_recipe(tmp_path)


def start(tmp_path: Path, recipe: Path, **overrides) -> Runner:
    config = resolve_config("reach", "so101", "cpu", recipe=recipe, task_config=write_short_episodes(tmp_path), overrides=overrides)
    return Runner.start(config, tmp_path / "runs", Console(quiet=True), show_progress=False)


def test_a_run_writes_its_directory_and_the_listed_tensorboard_tags(tmp_path, tiny_recipe):
    runner = start(tmp_path, tiny_recipe)
    result = runner.train()
    run = runner.run_dir
    assert result.stop_reason == "completed" and result.iterations == 6 and result.env_steps == 384
    for path in (run.config_file, run.checkpoint_file, run.policy_file, run.evals_file, run.summary_file):
        assert path.is_file(), path
    assert run.read_config() == runner.config
    assert [e["iteration"] for e in run.read_evals()] == [3, 6]

    events = EventAccumulator(str(run.path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "episode/return", "episode/success_rate", "episode/final_distance", "episode/length",
        "reward/distance", "reward/reached", "reward/action_rate",
        "loss/policy", "loss/value", "loss/entropy",
        "train/approx_kl", "train/clip_fraction", "train/explained_variance", "train/entropy", "train/learning_rate",
        "perf/env_steps_per_s", "perf/wall_time_s",
        "eval/success_rate", "eval/final_distance_mean", "eval/final_distance_p95",
    }  # fmt: skip
    assert expected <= tags, expected - tags
    assert [s.step for s in events.Scalars("eval/success_rate")] == [16 * 4 * 3, 16 * 4 * 6]  # x axis: env steps
    assert "config/text_summary" in events.Tags()["tensors"]
    hparams_plugin = events.PluginTagToContent("hparams")
    assert hparams_plugin, "no HParams summary"


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_checkpoint_round_trip_gives_identical_actions(tmp_path, tiny_recipe, algo):
    runner = start(tmp_path, tiny_recipe, algo=algo)
    runner.train()
    run = runner.run_dir
    template = {"agent": runner.algo.init(jax.random.key(99)), "key": jax.random.key(99)}
    restored, meta = load_checkpoint(run.checkpoint_file, template)
    assert meta["iteration"] == 6 and meta["env_steps"] == 384
    obs = jax.random.normal(jax.random.key(3), (32, runner.env.observation_size))
    from_checkpoint = runner.algo.policy(restored["agent"]).act(jnp, obs)
    policy, _ = load_policy(run.policy_file)
    np.testing.assert_array_equal(np.asarray(from_checkpoint), policy.act(jnp, obs))
    # the restored learner state is the saved one, bit for bit (optimizer moments and normalizer included)
    save_checkpoint(tmp_path / "again.npz", restored, meta)
    again, _ = load_checkpoint(tmp_path / "again.npz", template)
    for a, b in zip(jax.tree_util.tree_leaves(restored["agent"]), jax.tree_util.tree_leaves(again["agent"])):
        np.testing.assert_array_equal(a, b)


def test_resume_continues_the_step_counter_and_keeps_the_config(tmp_path, tiny_recipe):
    first = start(tmp_path, tiny_recipe, total_steps=16 * 4 * 2)
    assert first.train().env_steps == 128
    resumed = Runner.reopen(first.run_dir.path, Console(quiet=True), show_progress=False, total_steps=16 * 4 * 5)
    assert resumed.config.total_steps == 320 and resumed.run_dir.read_config().total_steps == 320
    result = resumed.train(resume=True)
    assert (result.iterations, result.env_steps) == (5, 320)
    events = EventAccumulator(str(first.run_dir.path))
    events.Reload()
    steps = [s.step for s in events.Scalars("loss/policy")]
    assert steps == [64 * i for i in range(1, 6)]  # no restart at zero, no gap


def test_missing_or_corrupt_checkpoints_are_clear_errors(tmp_path, tiny_recipe):
    runner = start(tmp_path, tiny_recipe)
    with pytest.raises(SimrlError, match="checkpoint not found, nothing to resume"):
        Runner.reopen(runner.run_dir.path, Console(quiet=True))
    runner.run_dir.checkpoint_file.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(SimrlError, match=r"checkpoint.npz: not a readable checkpoint"):
        Runner.reopen(runner.run_dir.path, Console(quiet=True)).train(resume=True)
    with pytest.raises(SimrlError, match="not a simrl run"):
        RunDir.open(tmp_path)


def test_a_checkpoint_of_another_network_is_refused_by_name(tmp_path):
    save_checkpoint(tmp_path / "c.npz", {"w": np.zeros((3, 4))}, {})
    with pytest.raises(SimrlError, match=r"array 'w' has shape \(3, 4\), the run's config expects \(3, 5\)"):
        load_checkpoint(tmp_path / "c.npz", {"w": np.zeros((3, 5))})


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, tiny_recipe, monkeypatch):
    honest = PPO.iteration

    def poisoned(self, agent, env_state, key):
        agent, env_state, stats = honest(self, agent, env_state, key)
        bad = jnp.where(agent.iteration >= 4, jnp.nan, 0.0)
        params = {**agent.params, "log_std": agent.params["log_std"] + bad}
        return type(agent)(params, agent.opt_state, agent.norm, agent.learning_rate, agent.iteration), env_state, stats

    monkeypatch.setattr(PPO, "iteration", poisoned)
    runner = start(tmp_path, tiny_recipe)
    with pytest.raises(SimrlError, match=r"diverged at iteration 4 .*last good checkpoint \(iteration 2, 128 env steps\) is kept"):
        runner.train()
    template = {"agent": runner.algo.init(jax.random.key(0)), "key": jax.random.key(0)}
    restored, meta = load_checkpoint(runner.run_dir.checkpoint_file, template)
    assert meta["iteration"] == 2
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(restored["agent"]))


def test_the_same_seed_trains_the_same_policy_on_the_cpu_backend(tmp_path, tiny_recipe):
    policies = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        runner = start(tmp_path / name, tiny_recipe, total_steps=16 * 4 * 3)
        runner.train()
        policies.append(load_policy(runner.run_dir.policy_file)[0])
    for a, b in zip(jax.tree_util.tree_leaves(policies[0]), jax.tree_util.tree_leaves(policies[1])):
        np.testing.assert_array_equal(a, b)


def test_a_randomized_run_keeps_its_profile_and_logs_the_draws(tmp_path, tiny_recipe):
    runner = start(tmp_path, tiny_recipe, randomization="default")
    runner.train()
    saved = yaml.safe_load(runner.run_dir.randomization_file.read_text())
    assert saved["joint_damping"]["distribution"] == "loguniform"
    assert saved["encoder_resolution"]["value"] == pytest.approx(2 * np.pi / 4096)  # the so101 override, merged in
    assert "robots" not in saved
    assert runner.env.randomization is not None and runner.evaluator.env.randomization is not None
    events = EventAccumulator(str(runner.run_dir.path))
    events.Reload()
    histograms = events.Tags()["histograms"]
    assert any(tag.startswith("randomization/model/dof_damping/") for tag in histograms)
    assert any(tag.startswith("randomization/env/latency_steps/") for tag in histograms)


def test_training_does_not_import_torch() -> None:
    """tensorboardX would import torch (installed with the sb3 extra) at every `simrl train` start: 1.1 s for nothing."""
    import subprocess
    import sys

    code = (
        "import sys, simrl.cli, simrl.train.runner, simrl.train.ppo, simrl.train.sac, simrl.envs\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "import torch  # and a real import still works afterwards (Stable-Baselines3 needs it)\n"
        "assert torch.zeros(2).sum().item() == 0.0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
