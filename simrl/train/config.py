"""The one typed config of a training run, and how it is resolved from a recipe and the command line.

Resolution, later layers winning: the defaults below → the recipe (the
shipped ``experiments/recipes/reach-<robot>-<algo>.yaml``, or the user's
``--config`` file) → the
recipe's section for the resolved backend (``cpu:`` or ``mjx:``, since the
fastest settings differ by orders of magnitude in env count) → command-line
flags. The fully resolved config, task settings included, is written to the
run directory, so a run can be resumed or evaluated without the files it
started from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import pydantic

from simrl.config import StrictModel, read_yaml, validate_model
from simrl.errors import SimrlError
from simrl.paths import data_dir
from simrl.physics import resolve_backend
from simrl.tasks.reach import ReachConfig, load_reach_config
from simrl.train.ppo import PPOConfig
from simrl.train.sac import SACConfig
from simrl.train.sb3_config import SB3PPOConfig, SB3SACConfig

TASKS = ("reach",)
BACKEND_SECTIONS = ("cpu", "mjx")


class TrainConfig(StrictModel):
    """Everything that defines a training run (saved as ``config.yaml`` in the run directory)."""

    task: Literal["reach"] = "reach"
    robot: str = pydantic.Field(description="robot name or path to a robot folder")
    algo: Literal["ppo", "sac", "sb3-ppo", "sb3-sac"] = pydantic.Field("ppo", description="sb3-*: Stable-Baselines3, the baseline")
    backend: Literal["auto", "cpu", "mjx"] = "auto"
    mjx_impl: Literal["jax", "warp"] = "jax"
    num_envs: int = pydantic.Field(512, ge=1, le=1_000_000)
    seed: int = pydantic.Field(0, ge=0)
    total_steps: int = pydantic.Field(5_000_000, ge=1, description="env steps (all envs together)")
    max_minutes: Optional[float] = pydantic.Field(None, gt=0, description="wall-clock budget; stops early and saves")
    stop_at_success: Optional[float] = pydantic.Field(
        None, gt=0, le=1.0, description="stop once a periodic evaluation reaches this success rate"
    )
    eval_every: int = pydantic.Field(20, ge=1, description="iterations between evaluations")
    eval_episodes: int = pydantic.Field(200, ge=1, le=100_000)
    eval_seed: int = pydantic.Field(1_000_003, ge=0, description="goals of the periodic evaluation (never used by training)")
    checkpoint_every: int = pydantic.Field(50, ge=1, description="iterations between checkpoints")
    randomization: str = pydantic.Field("none", description="profile name in randomization/ or path (a copy goes into the run dir)")
    task_settings: ReachConfig = pydantic.Field(default_factory=load_reach_config, description="rewards/reach.yaml at start")
    ppo: PPOConfig = PPOConfig()
    sac: SACConfig = SACConfig()
    sb3_ppo: SB3PPOConfig = SB3PPOConfig()
    sb3_sac: SB3SACConfig = SB3SACConfig()

    @property
    def algo_config(self) -> PPOConfig | SACConfig | SB3PPOConfig | SB3SACConfig:
        return getattr(self, self.algo.replace("-", "_"))


def recipe_path(task: str, robot: str, algo: str) -> Path:
    """The shipped recipe for ``algo`` on ``task`` with ``robot`` (a robot folder path uses its folder name)."""
    return data_dir("recipes") / f"{task}-{Path(robot).name}-{algo}.yaml"


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _recipe_layers(path: Path, robot: str, backend: str) -> dict[str, Any]:
    """The recipe's settings with its ``backend`` section merged in, validated with errors naming ``path``."""
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SimrlError(f"{path}: a recipe must be a mapping of settings, got {type(data).__name__}")
    base = {key: value for key, value in data.items() if key not in BACKEND_SECTIONS}
    sections = {name: _deep_merge(base, data.get(name) or {}) for name in BACKEND_SECTIONS}
    for name, settings in sections.items():
        for reserved in ("robot", "task", "backend"):
            if reserved in settings:
                raise SimrlError(f"{path}: field '{reserved}' belongs on the command line, not in a recipe")
        validate_model(path, TrainConfig, {"robot": robot, **settings})
    return sections[backend]


def resolve_config(
    task: str,
    robot: str,
    backend: str,
    algo: str | None = None,
    recipe: Path | None = None,
    task_config: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults → recipe (``recipe``, else the shipped one for ``algo``, PPO by default) → its backend section → ``overrides``.

    ``overrides`` are the command-line flags; those left at ``None`` were not given.
    """
    if task not in TASKS:
        raise SimrlError(f"unknown task '{task}' (allowed: {', '.join(TASKS)})")
    resolved_backend = resolve_backend(backend)
    if recipe is None:
        shipped = recipe_path(task, robot, algo or "ppo")
        recipe = shipped if shipped.is_file() else None
    settings = _recipe_layers(recipe, robot, resolved_backend) if recipe else {}
    settings = _deep_merge(settings, {k: v for k, v in (overrides or {}).items() if v is not None})
    if algo is not None:
        settings["algo"] = algo
    settings.update(task=task, robot=robot, backend=backend, task_settings=load_reach_config(task_config).model_dump())
    return validate_model(recipe or Path("command line"), TrainConfig, settings)


def config_to_yaml_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain data for ``config.yaml`` (tuples as lists, so yaml.safe_dump accepts them)."""
    return config.model_dump(mode="json")
