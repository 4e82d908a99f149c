"""Shared fixtures: the shipped robot names, loaded once per session."""

from __future__ import annotations

import tempfile

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from simrl.robots import Robot, load_robot

ROBOTS = ("so101", "openarm", "fr3", "omx")
_HYPOTHESIS_HOME = pytest.StashKey[tempfile.TemporaryDirectory]()


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis caches what it reads of the source in its home (./.hypothesis by default, at collection): tests write only to temporary folders."""
    home = tempfile.TemporaryDirectory(prefix="simrl-hypothesis-")
    config.stash[_HYPOTHESIS_HOME] = home
    set_hypothesis_home_dir(home.name)


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash[_HYPOTHESIS_HOME].cleanup()


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
