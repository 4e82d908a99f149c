"""The persistent compilation cache: where it lives, how it is turned off, and that a second run reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simrl.compile_cache import default_directory, resolve_directory
from tests.cli import assert_one_line_error, run_simrl
from tests.tiny_run import tiny_train_args, write_tiny_recipe

# What a child process reports of its jax settings once simrl.compile_cache has configured it before importing jax.
PROBE = """
import json, sys
from pathlib import Path
from simrl.compile_cache import use_compile_cache
use_compile_cache(None if sys.argv[1] == "off" else Path(sys.argv[1]))
import jax
names = ("jax_enable_compilation_cache", "jax_compilation_cache_dir", "jax_compilation_cache_max_size", "jax_persistent_cache_min_compile_time_secs")
print(json.dumps({name: getattr(jax.config, name) for name in names}))
"""


def probe(setting: str, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True, env={**os.environ, **env})
    return json.loads(done.stdout)


def entries(folder: Path) -> dict[str, bytes]:
    """Cache entries by name, with the last-access stamp JAX writes beside each when it reads or writes it."""
    return {path.name: (folder / path.name.replace("-cache", "-atime")).read_bytes() for path in folder.glob("*-cache")}


def test_default_directory_follows_xdg_and_a_users_jax_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_directory() == tmp_path / "simrl" / "xla"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    assert resolve_directory(None) == tmp_path / "mine"
    assert resolve_directory("") == tmp_path / "mine"


def test_off_and_paths():
    assert resolve_directory("off") is None
    assert resolve_directory(" OFF ") is None
    assert resolve_directory("~/cache") == Path.home() / "cache"


def test_settings_reach_jax_imported_afterwards(tmp_path):
    settings = probe(str(tmp_path))
    assert settings["jax_enable_compilation_cache"] is True
    assert settings["jax_compilation_cache_dir"] == str(tmp_path)
    assert settings["jax_compilation_cache_max_size"] > 0  # bounded: least recently used entries are evicted
    assert probe("off")["jax_enable_compilation_cache"] is False


def test_a_users_own_jax_thresholds_win(tmp_path):
    settings = probe(str(tmp_path), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="7", JAX_COMPILATION_CACHE_MAX_SIZE="1000")
    assert settings["jax_persistent_cache_min_compile_time_secs"] == 7.0
    assert settings["jax_compilation_cache_max_size"] == 1000


@pytest.fixture
def cache_everything(monkeypatch):
    """Cache even quick compilations, so what is written does not depend on how fast this machine compiles."""
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def test_second_training_run_reads_what_the_first_wrote(tmp_path, cache_everything):
    cache = tmp_path / "xla"
    args = tiny_train_args(tmp_path, write_tiny_recipe(tmp_path))
    first = run_simrl("--compile-cache", str(cache), *args)
    assert first.returncode == 0, first.stderr
    written = entries(cache)
    assert written, "the first run cached nothing"
    second = run_simrl("--compile-cache", str(cache), *args)
    assert second.returncode == 0, second.stderr
    again = entries(cache)
    assert again.keys() == written.keys()  # nothing compiled anew
    assert any(again[name] != written[name] for name in written)  # and read: JAX restamps an entry it loads


def test_off_writes_nothing(tmp_path, cache_everything, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "xla"))  # would be used, were the cache on
    result = run_simrl("--compile-cache", "off", *tiny_train_args(tmp_path, write_tiny_recipe(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert not list((tmp_path / "xla").glob("*-cache"))


def test_a_folder_that_cannot_be_written_is_a_one_line_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    assert_one_line_error(run_simrl("--compile-cache", str(tmp_path / "a-file" / "xla"), "robots"), "cannot write in")


def test_an_unwritable_default_folder_warns_and_goes_on(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.delenv("SIMRL_COMPILE_CACHE")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    result = run_simrl("robots", "--json")
    assert result.returncode == 0, result.stderr
    assert "warning: compiling without a cache" in result.stderr and json.loads(result.stdout)
