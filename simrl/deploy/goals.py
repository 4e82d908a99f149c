"""Where the deployed reach policy is sent: goals from the command line, a file, or drawn like training draws them.

A goal outside the robot's goal workspace is refused: the policy never saw one
there, and what it does with it is untested on the arm it is about to move.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simrl.errors import SimrlError
from simrl.tasks.reach import ReachTask

# Goals on the workspace's faces are fine; float text rounding must not refuse them.
WORKSPACE_TOLERANCE = 1e-6
# Goals drawn when no source is given.
DEFAULT_RANDOM_GOALS = 5


def parse_goal(text: str, where: str = "--goal") -> np.ndarray:
    """``"x,y,z"`` (metres, world frame; commas or spaces) as a (3,) array."""
    parts = text.replace(",", " ").split()
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not np.isfinite(values).all():
        raise SimrlError(f"{where} = '{text}' is not a goal; allowed: three numbers x,y,z in metres, e.g. 0.25,-0.15,0.42")
    return np.array(values)


def read_goals(path: Path) -> np.ndarray:
    """One goal ``x,y,z`` per line of a text file (blank lines and ``#`` comments skipped), as (G, 3)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SimrlError(f"{path}: cannot read goals ({exc.strerror})") from None
    goals = [
        parse_goal(line.split("#", 1)[0], f"{path}: line {number}")
        for number, line in enumerate(lines, start=1)
        if line.split("#", 1)[0].strip()
    ]
    if not goals:
        raise SimrlError(f"{path}: no goals in the file; allowed: one x,y,z per line")
    return np.stack(goals)


def random_goals(task: ReachTask, count: int, seed: int) -> np.ndarray:
    """``count`` goals uniform in the goal workspace: ``ReachTask.sample_goal``, the env's own draw, with numpy."""
    uniform = np.random.default_rng(seed).uniform(size=(count, 3))
    return np.asarray(task.sample_goal(np, uniform), dtype=np.float64)


def check_goals(task: ReachTask, goals: np.ndarray, source: str) -> None:
    """Refuse any goal outside the goal workspace box, naming it and the box."""
    low, high = task.goal_low - WORKSPACE_TOLERANCE, task.goal_high + WORKSPACE_TOLERANCE
    for i, goal in enumerate(goals):
        if np.any(goal < low) or np.any(goal > high):
            box = f"[{', '.join(f'{v:g}' for v in task.goal_low)}] .. [{', '.join(f'{v:g}' for v in task.goal_high)}]"
            raise SimrlError(f"{source}: goal {i} ({', '.join(f'{v:g}' for v in goal)}) is outside the goal workspace; allowed: within {box}")


@dataclass(frozen=True)
class GoalSpec:
    """Exactly one source of goals: ``goal`` (x,y,z text), ``file``, or ``random`` goals drawn with ``seed``."""

    goal: str | None = None
    file: Path | None = None
    random: int | None = None
    seed: int = 0

    def resolve(self, task: ReachTask) -> tuple[np.ndarray, str]:
        """The goals (G, 3) and where they came from."""
        given = [flag for flag, value in (("--goal", self.goal), ("--goals", self.file), ("--random-goals", self.random)) if value is not None]
        if len(given) > 1:
            raise SimrlError(f"give one of --goal, --goals, --random-goals, not {' and '.join(given)}")
        if self.goal is not None:
            goals, source = parse_goal(self.goal)[None], "--goal"
        elif self.file is not None:
            goals, source = read_goals(self.file), str(self.file)
        else:
            count = DEFAULT_RANDOM_GOALS if self.random is None else self.random
            goals, source = random_goals(task, count, self.seed), f"--random-goals {count} --seed {self.seed}"
        check_goals(task, goals, source)
        return goals, source
