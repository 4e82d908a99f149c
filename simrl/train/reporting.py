"""How a training run reports to its user, whichever learner runs: the progress bar and each evaluation's record.

Our runner (``runner.py``) and the Stable-Baselines3 one (``sb3.py``) both
call these, so an SB3 baseline run shows the same bar and writes the same
``evals.jsonl`` lines and ``eval/`` TensorBoard tags as ours, and the
benchmarks read both alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from simrl.train.evaluation import EvalResult
from simrl.train.run_dir import RunDir
from simrl.train.summaries import RunWriter


@dataclass
class TimeSplit:
    """Where a run's wall-clock has gone so far (seconds), written to ``summary.json`` and read by the benchmarks.

    What is left of the wall time is logging and checkpoints. On a short run
    the fixed costs (``startup_s``, ``first_iteration_s``) can outweigh the
    learning itself, which a single time-to-target figure hides.
    """

    startup_s: float | None = None  # this process's start to its first iteration: imports, envs, reset
    first_iteration_s: float = 0.0  # the first iteration, which compiles (and, for SB3, warms torch up)
    iterations_s: float = 0.0  # every later iteration: rollouts and updates
    evaluations_s: float = 0.0  # the periodic X/N evaluations

    def to_dict(self) -> dict[str, float | None]:
        return {name: None if value is None else round(value, 3) for name, value in asdict(self).items()}


def target_record(result: EvalResult, iteration: int, env_steps: int, wall_time_s: float, split: TimeSplit) -> dict[str, Any]:
    """The first evaluation at the target success, as ``summary.json`` keeps it: when, and where the time had gone by then."""
    return {"iteration": iteration, "env_steps": env_steps, "wall_time_s": wall_time_s, **result.to_dict(), "time_split": split.to_dict()}


def progress_bar(console: Console, show: bool) -> Progress:
    """Steps, steps/s, return and success; its task takes the fields ``rate``, ``return`` and ``success_rate``."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
        TextColumn("{task.fields[rate]:,.0f} steps/s"),
        TextColumn("return {task.fields[return]:.2f}"),
        TextColumn("success {task.fields[success_rate]:.0%}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    )


def record_evaluation(
    result: EvalResult, run_dir: RunDir, writer: RunWriter, console: Console, iteration: int, env_steps: int, wall_time_s: float
) -> None:
    """An evaluation as ``eval/`` scalars (x: env steps), one ``evals.jsonl`` line and one console line."""
    writer.scalars(
        {
            "eval/success_rate": result.success_rate,
            "eval/final_distance_mean": result.mean_final_distance,
            "eval/final_distance_p95": result.p95_final_distance,
            "eval/return": result.mean_return,
        },
        env_steps,
    )
    writer.flush()
    run_dir.append_eval({"iteration": iteration, "env_steps": env_steps, "wall_time_s": round(wall_time_s, 3), **result.to_dict()})
    console.print(f"[{wall_time_s:6.1f} s, {env_steps:>11,} steps] eval: {result.summary()}", highlight=False)
