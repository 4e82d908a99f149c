"""Optional dependencies (``pip install 'simrl[extra]'``), checked where they are first needed.

``import simrl``, the envs and the CLI work without the extras; only the
feature that needs one imports it, after ``require_extra`` has turned a
missing package into the CLI's one-line error instead of a traceback.
"""

from __future__ import annotations

import importlib

from simrl.errors import SimrlError


def require_extra(module: str, package: str, extra: str, what: str, otherwise: str = "") -> None:
    """Raise a one-line ``SimrlError`` saying ``what`` needs ``package`` (imported as ``module``) and which extra installs it.

    ``otherwise`` (e.g. "without it, algo may be ppo or sac") is appended after a semicolon.
    """
    try:
        importlib.import_module(module)
    except ImportError:
        hint = f"; {otherwise}" if otherwise else ""
        raise SimrlError(f"{what} needs {package}, which is not installed: install simrl[{extra}] (pip install 'simrl[{extra}]'){hint}") from None


def require_sb3(what: str, otherwise: str = "") -> None:
    """Stable-Baselines3 (and the torch it runs on) for the SB3 adapter and the ``sb3-*`` algorithms."""
    require_extra("stable_baselines3", "stable-baselines3", "sb3", what, otherwise)
