"""Checkpoints: a pytree of arrays written atomically as one ``.npz``, read back into a template.

Arrays are stored under their pytree paths (``params/policy/0/w``), not
pickled, so a checkpoint can be opened with plain numpy and a changed network
shape is reported by name instead of failing somewhere inside a pickle. The
file is written atomically (``simrl.files``), so a crash or Ctrl-C mid-write
never leaves a half checkpoint.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np

from simrl.errors import SimrlError
from simrl.files import atomic_write

TreeT = TypeVar("TreeT")
META_KEY = "__meta__"


def _leaf_name(key_path: Any) -> str:
    """The name an array is stored under: its pytree path, ``params/policy/0/w``."""
    return jax.tree_util.keystr(key_path, simple=True, separator="/")


def _host_array(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def save_checkpoint(path: Path, tree: Any, meta: dict[str, Any]) -> None:
    """Write ``tree`` (arrays) and ``meta`` (JSON-able) to ``path`` atomically."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    arrays = {_leaf_name(key_path): _host_array(leaf) for key_path, leaf in leaves}
    arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array of a file written by ``save_checkpoint``, by name, and its metadata."""
    if not path.is_file():
        raise SimrlError(f"{path}: checkpoint not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise SimrlError(f"{path}: not a readable checkpoint ({exc})") from None
    if META_KEY not in stored:
        raise SimrlError(f"{path}: not a simrl checkpoint (no metadata)")
    try:
        meta = json.loads(stored.pop(META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SimrlError(f"{path}: checkpoint metadata is corrupt") from None
    return stored, meta


def load_checkpoint(path: Path, template: TreeT) -> tuple[TreeT, dict[str, Any]]:
    """Read ``path`` into the structure of ``template``; every mismatch is a one-line ``SimrlError``."""
    stored, meta = load_arrays(path)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    restored = []
    for key_path, leaf in leaves:
        name = _leaf_name(key_path)
        if name not in stored:
            raise SimrlError(f"{path}: checkpoint has no array '{name}' (saved by another algorithm or network layout?)")
        value = stored.pop(name)
        is_key = isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        expected = jax.random.key_data(leaf) if is_key else np.asarray(leaf)
        if value.shape != expected.shape:
            raise SimrlError(f"{path}: array '{name}' has shape {value.shape}, the run's config expects {expected.shape}")
        restored.append(jax.random.wrap_key_data(value) if is_key else jax.numpy.asarray(value, dtype=expected.dtype))
    if stored:
        raise SimrlError(f"{path}: checkpoint has arrays the run's config does not expect: {', '.join(sorted(stored)[:5])}")
    return jax.tree_util.tree_unflatten(treedef, restored), meta
