"""Shared fixtures: the shipped robot names, loaded once per session."""

from __future__ import annotations

import pytest

from simrl.robots import Robot, load_robot

ROBOTS = ("so101", "openarm", "fr3")


@pytest.fixture(scope="session", params=ROBOTS)
def robot(request: pytest.FixtureRequest) -> Robot:
    """Each shipped robot, loaded once."""
    return load_robot(request.param)
