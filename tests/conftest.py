"""Shared fixtures: the shipped robot names, loaded once per session."""

from __future__ import annotations

import pytest

from simrl.robots import Robot, load_robot

ROBOTS = ("so101", "openarm", "fr3")


@pytest.fixture(scope="session", params=ROBOTS)
def robot(request: pytest.FixtureRequest) -> Robot:
    """Each shipped robot, loaded once."""
    return load_robot(request.param)


@pytest.fixture(scope="session", autouse=True)
def private_compile_cache(tmp_path_factory: pytest.TempPathFactory):
    """The tests neither read nor fill the user's compile cache (~/.cache/simrl/xla): they get their own."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SIMRL_COMPILE_CACHE", str(tmp_path_factory.mktemp("xla")))
    yield
    patch.undo()
