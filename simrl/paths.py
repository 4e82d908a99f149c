"""Find the data folders (robots/, rewards/, randomization/, deploy/).

From a git clone (or an editable install) they sit next to the package at the
top of the repository; a wheel ships them inside the package as ``simrl/_data``
(see ``pyproject.toml``). Looking in both places lets the same code run from
either without configuration.
"""

from __future__ import annotations

from pathlib import Path

from simrl.errors import SimrlError

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATE_ROOTS = (_PACKAGE_DIR / "_data", _PACKAGE_DIR.parent)


def data_dir(name: str) -> Path:
    """Return the folder ``name`` (e.g. ``"robots"``) from the wheel or the clone."""
    for root in _CANDIDATE_ROOTS:
        candidate = root / name
        if candidate.is_dir():
            return candidate
    searched = ", ".join(str(r / name) for r in _CANDIDATE_ROOTS)
    raise SimrlError(f"data folder '{name}' not found (looked in {searched}); reinstall simrl")
