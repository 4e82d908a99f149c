"""Settings for training runs that compile and finish in seconds (the learning itself is tested elsewhere)."""

from __future__ import annotations

from pathlib import Path

import yaml

from simrl.paths import data_dir

TINY_RECIPE = {
    "num_envs": 16,
    "total_steps": 16 * 4 * 6,
    "eval_every": 3,
    "eval_episodes": 8,
    "checkpoint_every": 2,
    "ppo": {"rollout_steps": 4, "epochs": 1, "minibatches": 2, "hidden_sizes": [16]},
    "sac": {"steps_per_iteration": 4, "updates_per_iteration": 2, "batch_size": 32, "buffer_size": 1024, "warmup_steps": 4, "hidden_sizes": [16]},
}


def write_tiny_recipe(folder: Path, **changes) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY_RECIPE, **changes}))
    return path


def write_short_episodes(folder: Path) -> Path:
    """The shipped task settings with 8-step episodes, so a few iterations finish episodes."""
    settings = yaml.safe_load((data_dir("rewards") / "reach.yaml").read_text())
    path = folder / "reach-short.yaml"
    path.write_text(yaml.safe_dump({**settings, "episode_steps": 8}))
    return path


def tiny_train_args(folder: Path, recipe: Path) -> list[str]:
    """`simrl train reach` on so101 with ``recipe``, 8-step episodes and runs under ``folder/runs``."""
    return [
        "train", "reach", "--robot", "so101", "--backend", "cpu", "--config", str(recipe),
        "--task-config", str(write_short_episodes(folder)), "--logdir", str(folder / "runs"), "--no-progress",
    ]  # fmt: skip


def assert_time_split_adds_up(summary: dict) -> None:
    """A run summary's time split (of a run that evaluated): every part measured, together no more than the run's wall time."""
    split = summary["time_split"]
    assert split["startup_s"] > 0 and split["first_iteration_s"] > 0 and split["iterations_s"] > 0 and split["evaluations_s"] > 0
    assert sum(split.values()) <= summary["wall_time_s"] + 1e-3
    assert split["first_iteration_s"] == round(summary["compile_s"], 3)
