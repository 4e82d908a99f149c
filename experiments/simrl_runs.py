"""What the experiment scripts share: run the ``simrl`` command as a user would, and read what a run wrote.

Imported by the scripts beside it (``python experiments/<script>.py`` puts
this folder on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from simrl.train.run_dir import RunDir


def simrl(*args: str, timeout_s: float | None = None, tree: Path | None = None) -> dict[str, Any]:
    """Run a simrl command with --json and return its figures (stderr passes through for progress).

    ``tree``: run the simrl of that checkout (e.g. a git worktree of another commit) instead of the installed one.
    """
    env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-m", "simrl", *args, "--json"], stdout=subprocess.PIPE, text=True, check=True, timeout=timeout_s, env=env)
    return json.loads(done.stdout)


def run_evals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The periodic evaluations (evals.jsonl) of the run a ``simrl train --json`` summary describes."""
    return RunDir(Path(summary["run_dir"])).read_evals()


def first_at(evals: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The first evaluation at or above ``target`` success, if any (its wall_time_s counts from process start)."""
    return next((e for e in evals if e["success_rate"] >= target), None)
