"""The Gymnasium face of the env passes Gymnasium's own checker on every arm."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simrl  # noqa: F401  (registers the ids)
from tests.conftest import ROBOTS


@pytest.mark.parametrize("robot", ROBOTS)
def test_gymnasium_checker_passes(robot: str) -> None:
    env = gymnasium.make(f"simrl/Reach-{robot}-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(info) >= {"is_success", "distance"}


def test_episode_ends_by_truncation_with_is_success() -> None:
    env = gymnasium.make("simrl/Reach-so101-v0")
    obs, _ = env.reset(seed=3)
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
        steps += 1
        assert np.isfinite(reward) and not terminated
        if truncated:
            break
    assert steps == 50
    assert info["is_success"] == (info["distance"] < 0.02)


def test_step_before_reset_is_refused() -> None:
    env = gymnasium.make("simrl/Reach-so101-v0", disable_env_checker=True)
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.unwrapped.step(np.zeros(5, np.float32))
