"""Run the ``simrl`` command as a user would: a separate process, output captured."""

from __future__ import annotations

import subprocess
import sys


def simrl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "simrl", *args]


def run_simrl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(simrl_command(*args), capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The CLI's contract for bad input: exit 2, ``message`` on stderr, one line, no traceback."""
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
