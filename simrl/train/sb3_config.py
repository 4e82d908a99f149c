"""Typed hyperparameters of the Stable-Baselines3 baselines (the ``sb3_ppo:`` / ``sb3_sac:`` sections of a recipe).

Field names are SB3's own, so a value can be carried over from the SB3 docs or
the RL Zoo unchanged. This module does not import SB3: a ``TrainConfig`` (and
so every run's ``config.yaml``) must load without the ``sb3`` extra.

Observations are always normalized (SB3's ``VecNormalize``, clipped at
``simrl.train.normalization.OBS_CLIP`` like our trainers), because the
normalization becomes part of the exported ``Policy``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import pydantic

from simrl.config import StrictModel
from simrl.train.networks import Activation

SB3_ALGOS = ("sb3-ppo", "sb3-sac")


class SB3RunConfig(StrictModel):
    """Settings both SB3 algorithms share: where torch runs, and the reward normalization."""

    device: Literal["auto", "cpu", "cuda"] = pydantic.Field("cpu", description="torch device (SB3 advises cpu for MLP policies)")
    torch_threads: int = pydantic.Field(
        1, ge=1, le=256, description="torch intra-op threads: more only slowed these small networks (2 threads: 10x slower on 2 busy cores)"
    )
    normalize_reward: bool = False


class SB3PPOConfig(SB3RunConfig):
    """SB3 PPO (``stable_baselines3.PPO``): one iteration is ``n_steps`` steps of every env, then the update."""

    n_steps: int = pydantic.Field(64, ge=1, le=100_000, description="env steps per env per rollout")
    batch_size: int = pydantic.Field(512, ge=2, le=1_000_000, description="minibatch size (best a divisor of n_steps x num_envs)")
    n_epochs: int = pydantic.Field(10, ge=1, le=100)
    learning_rate: float = pydantic.Field(3e-4, gt=0, le=1.0)
    lr_schedule: Literal["constant", "linear"] = pydantic.Field("constant", description="linear: decays to 0 over total_steps")
    gamma: float = pydantic.Field(0.99, gt=0, le=1.0)
    gae_lambda: float = pydantic.Field(0.95, ge=0, le=1.0)
    clip_range: float = pydantic.Field(0.2, gt=0, le=1.0)
    ent_coef: float = pydantic.Field(0.0, ge=0)
    vf_coef: float = pydantic.Field(0.5, ge=0)
    max_grad_norm: float = pydantic.Field(0.5, gt=0)
    target_kl: Optional[float] = pydantic.Field(None, gt=0, description="stop an update's epochs early past this KL")
    hidden_sizes: tuple[int, ...] = pydantic.Field((64, 64), min_length=1, description="policy and value networks alike")
    activation: Activation = "tanh"
    log_std_init: float = pydantic.Field(0.0, ge=-5, le=2)


class SB3SACConfig(SB3RunConfig):
    """SB3 SAC (``stable_baselines3.SAC``): one iteration is ``train_freq`` steps of every env, then ``gradient_steps`` updates."""

    learning_rate: float = pydantic.Field(3e-4, gt=0, le=1.0)
    buffer_size: int = pydantic.Field(1_000_000, ge=1, le=100_000_000, description="transitions kept")
    learning_starts: int = pydantic.Field(1_000, ge=0, description="env steps (all envs) of random actions before learning")
    batch_size: int = pydantic.Field(256, ge=1, le=1_000_000)
    tau: float = pydantic.Field(0.005, gt=0, le=1.0)
    gamma: float = pydantic.Field(0.99, gt=0, le=1.0)
    train_freq: int = pydantic.Field(1, ge=1, le=100_000, description="env steps per env between updates")
    gradient_steps: int = pydantic.Field(1, ge=-1, le=100_000, description="updates per iteration (-1: one per env step collected)")
    ent_coef: Union[pydantic.PositiveFloat, Annotated[str, pydantic.StringConstraints(pattern=r"^auto(_\d+(\.\d*)?(e-?\d+)?)?$")]] = pydantic.Field(
        "auto", description="a number, or 'auto' / 'auto_<start>' to learn it from 1 / <start> (SB3's format)"
    )
    target_entropy: Optional[float] = pydantic.Field(None, description="None: -action_size")
    hidden_sizes: tuple[int, ...] = pydantic.Field((256, 256), min_length=1, description="actor and critics alike")
    activation: Activation = "relu"
