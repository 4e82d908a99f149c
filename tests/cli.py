"""Run the ``simrl`` command as a user would: a separate process, output captured."""

from __future__ import annotations

import subprocess
import sys


def simrl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "simrl", *args]


def run_simrl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(simrl_command(*args), capture_output=True, text=True, timeout=timeout)
