"""JAX's persistent compilation cache, on for every ``simrl`` command unless turned off.

Why: XLA compilation is a large share of a short run. A later process that
compiles the same program (same code, shapes, device, jax and XLA versions)
loads the executable from this folder instead of compiling it again: on the
``mjx`` backend that is the whole training iteration and the evaluation.
JAX never caches a program that calls back into Python, so on the ``cpu``
backend, whose physics step is a host callback, only the programs without
physics are reused (the env reset: ~1 s of compilation on 2 cores).

The settings go into environment variables when jax is not imported yet
(importing it costs ~0.8 s that commands such as ``simrl robots`` do not
need; jax reads them when it is imported), and into ``jax.config`` when it
already is (the tests, which run the CLI in-process). A process uses the
cache it first compiled with: JAX opens the folder once.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

OFF = "off"
MAX_BYTES = 2 * 1024**3  # least recently used entries go first beyond this (JAX's LRU eviction)
MIN_COMPILE_SECONDS = 0.5  # quicker compilations are not worth a file
FORCED = ("jax_enable_compilation_cache", "jax_compilation_cache_dir")  # what --compile-cache decides; the rest are defaults


def default_directory() -> Path:
    """``$JAX_COMPILATION_CACHE_DIR`` when the user set one, else ``$XDG_CACHE_HOME/simrl/xla`` (``~/.cache/simrl/xla``)."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simrl" / "xla"


def resolve_directory(setting: str | None) -> Path | None:
    """The folder a ``--compile-cache`` value names: None or empty for the default, ``off`` for none."""
    if not setting:
        return default_directory()
    if setting.strip().lower() == OFF:
        return None
    return Path(setting).expanduser()


def check_writable(directory: Path) -> None:
    """Create ``directory`` if needed; OSError when this process cannot write in it.

    JAX itself would only warn, on every compilation, and compile without the cache.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK):
        raise PermissionError(errno.EACCES, "not writable", str(directory))


def jax_settings(directory: Path | None) -> dict[str, str | bool | int | float]:
    """The jax config options that point the cache at ``directory`` (None: disable it)."""
    if directory is None:
        return {"jax_enable_compilation_cache": False}
    return {
        "jax_enable_compilation_cache": True,
        "jax_compilation_cache_dir": str(directory),
        "jax_compilation_cache_max_size": MAX_BYTES,
        "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_SECONDS,
    }


def use_compile_cache(directory: Path | None) -> None:
    """Make this process (and the processes it starts) cache compilations in ``directory``; None turns caching off.

    The size bound and the compile-time threshold are defaults: a user's own
    ``JAX_COMPILATION_CACHE_MAX_SIZE`` or ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` wins.
    """
    jax = sys.modules.get("jax")
    for name, value in jax_settings(directory).items():
        if name not in FORCED and name.upper() in os.environ:
            continue
        if jax is not None:
            jax.config.update(name, value)
        else:
            os.environ[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
