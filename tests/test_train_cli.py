"""`simrl train reach` and `simrl eval` as a user runs them: Ctrl-C, --resume, errors, --help, reproducible eval."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from simrl.train.checkpoint import load_arrays
from tests.cli import assert_one_line_error, run_simrl, simrl_command
from tests.tiny_run import assert_time_split_adds_up, tiny_train_args, write_tiny_recipe


def only_run(tmp_path: Path) -> Path:
    (run,) = (tmp_path / "runs").iterdir()
    return run


def test_ctrl_c_saves_a_checkpoint_and_resume_continues_from_it(tmp_path):
    recipe = write_tiny_recipe(tmp_path, total_steps=10**9, checkpoint_every=1000, eval_every=1000)
    process = subprocess.Popen(simrl_command(*tiny_train_args(tmp_path, recipe)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "runs").glob("*/events.out.tfevents.*")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    time.sleep(3)  # a few iterations past compilation
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted and saved; continue with: simrl train reach --resume" in stderr
    run = only_run(tmp_path)
    _, meta = load_arrays(run / "checkpoint.npz")
    assert meta["iteration"] >= 1 and meta["env_steps"] == meta["iteration"] * 64

    target = meta["env_steps"] + 2 * 64
    resumed = run_simrl("train", "reach", "--resume", str(run), "--steps", str(target), "--no-progress", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["stop_reason"] == "completed"
    assert (summary["iterations"], summary["env_steps"]) == (meta["iteration"] + 2, target)
    assert_time_split_adds_up(summary)  # the last iteration evaluates
    assert yaml.safe_load((run / "config.yaml").read_text())["total_steps"] == target


def test_eval_gives_the_same_figures_for_the_same_seed(tmp_path):
    trained = run_simrl(*tiny_train_args(tmp_path, write_tiny_recipe(tmp_path)))
    assert trained.returncode == 0, trained.stderr
    assert "final evaluation: success" in trained.stderr
    run = only_run(tmp_path)
    first, second, other = (run_simrl("eval", str(run), "--episodes", "20", "--seed", seed, "--json") for seed in ("5", "5", "6"))
    assert first.returncode == 0, first.stderr
    a, b, c = (json.loads(r.stdout) for r in (first, second, other))
    assert a == b
    assert a["episodes"] == 20 and a["seed"] == 5 and c["mean_final_distance"] != a["mean_final_distance"]
    text = run_simrl("eval", str(run), "--episodes", "20", "--seed", "5")
    assert text.stdout.startswith(f"success {a['successes']}/20 (") and "[randomization: none]" in text.stdout
    strong = run_simrl("eval", str(run), "--episodes", "20", "--seed", "5", "--randomization", "strong", "--json")
    assert strong.returncode == 0, strong.stderr
    assert json.loads(strong.stdout)["randomization"] == "strong"
    assert json.loads(strong.stdout)["mean_final_distance"] != a["mean_final_distance"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "reach", "--robot", "so100"], "error: unknown robot 'so100' (did you mean 'so101'?)"),
        (["train", "reach", "--algo", "dqn"], "field 'algo' = 'dqn': Input should be 'ppo', 'sac', 'sb3-ppo' or 'sb3-sac'"),
        (["eval", "/no/such/run"], "error: /no/such/run: run folder not found"),
        (["train", "reach", "--resume", "/no/such/run"], "error: /no/such/run: run folder not found"),
        (["train", "reach", "--resume", "/tmp", "--envs", "8"], "--resume continues a run with its saved config; drop --envs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    assert_one_line_error(run_simrl(*args), message)


def test_a_typo_in_a_recipe_names_the_file_and_suggests_the_field(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("num_envs: 64\nppo:\n  learning_rat: 0.001\n")
    result = run_simrl("train", "reach", "--config", str(recipe), "--logdir", str(tmp_path))
    assert result.returncode == 2
    assert f"error: {recipe}: unknown field 'ppo.learning_rat'; did you mean 'learning_rate'?" in result.stderr
    assert not list(tmp_path.glob("so101-*")), "no run folder for a config that does not validate"


def test_train_help_explains_every_option():
    result = run_simrl("train", "reach", "--help")
    assert result.returncode == 0
    for option in ("--robot", "--envs", "--algo", "--backend", "--steps", "--minutes", "--seed", "--config", "--resume", "--logdir", "--json"):
        assert option in result.stdout, option
    assert "tensorboard --logdir runs" in result.stdout
