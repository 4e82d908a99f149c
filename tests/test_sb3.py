"""The Stable-Baselines3 adapter and baseline: VecEnv contract, parity with ReachEnv, policy conversion, the CLI, and life without SB3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from simrl.cli import app
from simrl.envs import ReachEnv, make_sb3_vec_env
from simrl.tasks.reach import load_reach_config
from simrl.train.checkpoint import load_arrays
from simrl.train.config import resolve_config
from simrl.train.normalization import OBS_CLIP
from simrl.train.run_dir import RunDir
from tests.cli import assert_one_line_error
from tests.tiny_run import assert_time_split_adds_up, tiny_train_args, write_short_episodes, write_tiny_recipe

EPISODE = 8  # steps, from write_short_episodes
SEED = 7
TINY_SB3 = {
    "sb3_ppo": {"n_steps": 4, "batch_size": 32, "n_epochs": 1, "hidden_sizes": [16]},
    "sb3_sac": {"train_freq": 4, "gradient_steps": 2, "batch_size": 32, "buffer_size": 1024, "learning_starts": 32, "hidden_sizes": [16]},
}


@pytest.fixture(scope="module")
def sb3():
    return pytest.importorskip("stable_baselines3")


@pytest.fixture(scope="module")
def short_task(tmp_path_factory: pytest.TempPathFactory):
    return load_reach_config(write_short_episodes(tmp_path_factory.mktemp("task")))


@pytest.fixture(scope="module")
def venv(sb3, short_task):
    """Four so101 worlds with 8-step episodes, compiled once for the module."""
    return make_sb3_vec_env("reach", "so101", 4, task_config=short_task, seed=SEED)


def test_vec_env_follows_the_sb3_vec_env_contract(venv):
    from stable_baselines3.common.vec_env import VecEnv

    assert isinstance(venv, VecEnv) and venv.num_envs == 4
    assert venv.observation_space.shape == (29,) and venv.action_space.shape == (5,)
    assert venv.action_space.low.min() == -1.0 and venv.action_space.high.max() == 1.0
    obs = venv.reset()
    assert obs.shape == (4, 29) and obs.dtype == np.float32 and obs.flags.writeable
    rng = np.random.default_rng(0)
    for step in range(1, EPISODE + 1):
        obs, reward, done, infos = venv.step(rng.uniform(-1, 1, (4, 5)).astype(np.float32))
        assert obs.shape == (4, 29) and reward.shape == (4,) and done.shape == (4,) and len(infos) == 4
        if step < EPISODE:
            assert not done.any() and infos == [{}] * 4
    assert done.all()  # every episode hits the time limit on the same step
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        assert info["terminal_observation"].shape == (29,)
        assert not np.allclose(info["terminal_observation"], obs[i])  # obs is already the next episode's (auto-reset)
        assert info["episode"]["l"] == EPISODE and np.isfinite(info["episode"]["r"])
        assert isinstance(info["is_success"], bool)
    assert venv.get_attr("render_mode") == [None] * 4 and venv.env_is_wrapped(object) == [False] * 4
    with pytest.raises(ValueError, match="all 4 worlds share one ReachEnv"):
        venv.set_attr("auto_reset", False, indices=[0])


def test_vec_env_steps_are_reach_env_steps(venv, short_task):
    actions = np.random.default_rng(1).uniform(-1, 1, (EPISODE + 2, 4, 5)).astype(np.float32)
    env = ReachEnv("so101", 4, backend="cpu", task_config=short_task)
    step = jax.jit(env.step)
    state = env.reset(jax.random.split(jax.random.key(SEED))[1])
    venv.seed(SEED)  # reset() restarts the key stream from the seed, as on a fresh VecEnv
    np.testing.assert_allclose(venv.reset(), state.obs, atol=1e-6)
    for action in actions:
        obs, reward, done, infos = venv.step(action)
        state = step(state, action)
        np.testing.assert_allclose(obs, state.obs, atol=1e-6)
        np.testing.assert_allclose(reward, state.reward, atol=1e-6)
        np.testing.assert_array_equal(done, state.done)
        for i in np.flatnonzero(done):
            np.testing.assert_allclose(infos[i]["terminal_observation"], state.final_obs[i], atol=1e-6)
            assert infos[i]["episode"]["r"] == pytest.approx(float(state.metrics["episode_return"][i]), abs=1e-5)
    assert not done.any() and int(state.step_count.max()) == 2  # the batch went through one auto-reset


@pytest.mark.parametrize("algo, normalized", [("ppo", True), ("sac", True), ("sac", False)])
def test_sb3_policy_converts_to_a_simrl_policy_with_the_same_actions(venv, algo, normalized):
    import torch
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.vec_env import VecNormalize

    from simrl.train.sb3 import policy_from_sb3

    venv = VecNormalize(venv, clip_obs=OBS_CLIP)
    kwargs = {"net_arch": [32, 16], "activation_fn": torch.nn.ELU if algo == "ppo" else torch.nn.ReLU}
    model = PPO("MlpPolicy", venv, policy_kwargs=kwargs, seed=0) if algo == "ppo" else SAC("MlpPolicy", venv, buffer_size=64, policy_kwargs=kwargs, seed=0)
    with torch.no_grad():  # weights large enough for PPO's clip and SAC's tanh to matter, small enough for float32 to agree
        for parameter in model.policy.parameters():
            parameter.normal_(0.0, 0.4)
    rng = np.random.default_rng(2)
    venv.obs_rms.mean = rng.normal(0.0, 1.0, 29)
    venv.obs_rms.var = rng.uniform(0.25, 4.0, 29)
    raw = rng.normal(0.0, 2.0, (256, 29)).astype(np.float32)  # inside +-OBS_CLIP, where an unnormalized model converts exactly
    expected, _ = model.predict(venv.normalize_obs(raw) if normalized else raw, deterministic=True)
    actions = policy_from_sb3(model, venv if normalized else None).act(np, raw)
    np.testing.assert_allclose(actions, expected, atol=1e-5)
    assert np.abs(expected).max() > 0.99  # the squashing mattered


def test_sb3_ppo_trains_through_the_cli_into_a_run_simrl_eval_reads(sb3, tmp_path):
    recipe = write_tiny_recipe(tmp_path, algo="sb3-ppo", **TINY_SB3)
    trained = CliRunner().invoke(app, [*tiny_train_args(tmp_path, recipe), "--json"])  # the command, in this process
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["algo"] == "sb3-ppo" and summary["stop_reason"] == "completed"
    assert (summary["iterations"], summary["env_steps"]) == (6, 384)  # 16 envs x 4 steps per iteration
    assert_time_split_adds_up(summary)
    run = RunDir(Path(summary["run_dir"]))
    for path in (run.config_file, run.sb3_model_file, run.sb3_normalization_file, run.policy_file, run.summary_file):
        assert path.is_file(), path
    assert [e["iteration"] for e in run.read_evals()] == [3, 6]
    events = EventAccumulator(str(run.path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    core = {"episode/return", "episode/success_rate", "eval/success_rate", "perf/env_steps_per_s", "perf/wall_time_s", "train/approx_kl"}
    assert core <= tags, core - tags
    assert [s.step for s in events.Scalars("eval/success_rate")] == [192, 384]  # x axis: env steps
    evaluated = CliRunner().invoke(app, ["eval", str(run.path), "--episodes", "8", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["episodes"] == 8 and json.loads(evaluated.stdout)["env_steps_trained"] == 384


def test_sb3_sac_run_resumes_with_its_step_count_and_replay_buffer(sb3, tmp_path):
    from simrl.train.sb3 import SB3Runner

    recipe = write_tiny_recipe(tmp_path, **TINY_SB3)
    config = resolve_config("reach", "so101", "cpu", algo="sb3-sac", recipe=recipe, task_config=write_short_episodes(tmp_path), overrides={"total_steps": 128})
    first = SB3Runner.start(config, tmp_path / "runs", Console(quiet=True), show_progress=False).train()
    assert (first.iterations, first.env_steps) == (2, 128)  # 16 envs x train_freq 4
    run = RunDir(Path(first.run_dir))
    assert run.sb3_replay_buffer_file.is_file()
    resumed = SB3Runner.reopen(run.path, Console(quiet=True), show_progress=False, total_steps=320).train(resume=True)
    assert (resumed.iterations, resumed.env_steps, resumed.stop_reason) == (5, 320, "completed")
    assert load_arrays(run.policy_file)[1]["env_steps"] == 320
    assert [e["env_steps"] for e in run.read_evals()] == [128, 192, 320]  # each run's last iteration, and every 3rd


def test_simrl_works_without_sb3_and_the_cli_says_what_to_install(tmp_path):
    hide_sb3 = "import sys; sys.modules['stable_baselines3'] = None; "
    probe = hide_sb3 + (
        "import simrl, simrl.envs, simrl.cli, simrl.train.config\n"
        "from simrl.errors import SimrlError\n"
        "try:\n    simrl.envs.make_sb3_vec_env('reach', 'so101', 2)\nexcept SimrlError as exc:\n    print(exc)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "make_sb3_vec_env needs stable-baselines3, which is not installed: install simrl[sb3] (pip install 'simrl[sb3]')"
    )
    cli = hide_sb3 + "from simrl.cli import main; main(sys.argv[1:])"
    args = ["train", "reach", "--algo", "sb3-sac", "--backend", "cpu", "--logdir", str(tmp_path / "runs")]
    failed = subprocess.run([sys.executable, "-c", cli, *args], capture_output=True, text=True)
    assert_one_line_error(failed, "error: algo 'sb3-sac' needs stable-baselines3, which is not installed: install simrl[sb3]")
    assert "without it, algo may be ppo or sac" in failed.stderr
    assert not (tmp_path / "runs").exists()  # refused before a run folder is made
