"""Find the data folders (robots/, rewards/, randomization/, deploy/, recipes).

From a git clone (or an editable install) they sit next to the package at the
top of the repository (the training recipes in experiments/recipes/, beside
the benchmarks that tune them); a wheel ships them inside the package as ``simrl/_data``
(see ``pyproject.toml``). Looking in both places lets the same code run from
either without configuration.
"""

from __future__ import annotations

from pathlib import Path

from simrl.errors import SimrlError

_PACKAGE_DIR = Path(__file__).resolve().parent
_CLONE_PATHS = {"recipes": Path("experiments") / "recipes"}  # folders not at the top of the clone


def data_dir(name: str) -> Path:
    """Return the folder ``name`` (e.g. ``"robots"``) from the wheel or the clone."""
    candidates = (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / _CLONE_PATHS.get(name, Path(name)))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise SimrlError(f"data folder '{name}' not found (looked in {searched}); reinstall simrl")
