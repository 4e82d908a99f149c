"""The run directory: one folder per training run holding everything needed to resume, evaluate and export it.

    runs/so101-reach-20261126-112233/
        config.yaml        the fully resolved TrainConfig (task settings included)
        randomization.yaml the randomization profile as trained (robot overrides merged in)
        checkpoint.npz     the whole learner state (params, optimizer, normalizer, RNG, counters)
        checkpoint.zip     instead, for an sb3-* run: Stable-Baselines3's own save, with
        vecnormalize.pkl   its observation (and reward) statistics, and
        replay_buffer.pkl  for sb3-sac, the replay buffer (written when the run stops)
        policy.npz         the deterministic policy alone (what eval and export read)
        evals.jsonl        one line per periodic evaluation (wall time, env steps, success, distances)
        summary.json       how the run ended
        events.out.tfevents.*   TensorBoard
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simrl.config import load_yaml_model, validate_model
from simrl.errors import SimrlError
from simrl.files import atomic_write_text
from simrl.randomization.profile import load_profile
from simrl.train.config import TrainConfig, config_to_yaml_dict


@dataclass(frozen=True)
class RunDir:
    """Paths of one run's files."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def randomization_file(self) -> Path:
        return self.path / "randomization.yaml"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / "checkpoint.npz"

    @property
    def sb3_model_file(self) -> Path:
        return self.path / "checkpoint.zip"

    @property
    def sb3_normalization_file(self) -> Path:
        return self.path / "vecnormalize.pkl"

    @property
    def sb3_replay_buffer_file(self) -> Path:
        return self.path / "replay_buffer.pkl"

    @property
    def policy_file(self) -> Path:
        return self.path / "policy.npz"

    @property
    def evals_file(self) -> Path:
        return self.path / "evals.jsonl"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @classmethod
    def create(cls, logdir: Path, config: TrainConfig) -> "RunDir":
        """A new ``<robot>-<task>-<time>`` folder under ``logdir`` with ``config.yaml`` written."""
        stem = f"{Path(config.robot).name}-{config.task}-{time.strftime('%Y%m%d-%H%M%S')}"
        logdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(100):
            path = logdir / (stem if attempt == 0 else f"{stem}-{attempt}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise SimrlError(f"{logdir}: could not create a new run folder named {stem}-*")
        run = cls(path)
        run.write_config(config)
        profile, _ = load_profile(config.randomization, Path(config.robot).name)
        atomic_write_text(run.randomization_file, yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True), sort_keys=False))
        return run

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        """An existing run; a folder without ``config.yaml`` is reported as not a run."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise SimrlError(f"{run.path}: run folder not found")
        if not run.config_file.is_file():
            raise SimrlError(f"{run.path}: not a simrl run (no config.yaml)")
        return run

    def randomization_source(self, config: TrainConfig) -> Path | str:
        """The profile the run trained with: its own copy, or the name in its config for older runs."""
        return self.randomization_file if self.randomization_file.is_file() else config.randomization

    def read_config(self) -> TrainConfig:
        return load_yaml_model(self.config_file, TrainConfig)

    def write_config(self, config: TrainConfig) -> None:
        atomic_write_text(self.config_file, yaml.safe_dump(config_to_yaml_dict(config), sort_keys=False))

    def update_config(self, **updates: Any) -> TrainConfig:
        """The saved config with ``updates`` that are not None (what ``--resume`` may change) validated and written back."""
        config = self.read_config()
        updates = {k: v for k, v in updates.items() if v is not None}
        if updates:
            config = validate_model(self.config_file, TrainConfig, {**config.model_dump(), **updates})
            self.write_config(config)
        return config

    def append_eval(self, record: dict[str, Any]) -> None:
        with self.evals_file.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read_evals(self) -> list[dict[str, Any]]:
        if not self.evals_file.is_file():
            return []
        return [json.loads(line) for line in self.evals_file.read_text().splitlines() if line.strip()]

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary_file, json.dumps(summary, indent=2) + "\n")
