"""The ``simrl`` command: parse, validate, call — the work lives in the modules.

Errors a user can cause are ``SimrlError``s: printed as one line on stderr with
exit status 2, the traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from simrl.errors import SimrlError

app = typer.Typer(
    help="Train robot-arm policies with RL in massively parallel MuJoCo and carry them onto real arms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Measure throughput (figures also as --json).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

stdout = Console()
stderr = Console(stderr=True)


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    """Global options (``--debug`` is read in ``main`` so it also covers errors raised here)."""


@app.command("robots")
def robots_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the shipped arms with their degrees of freedom, reach and control rate."""
    from simrl.robots import available_robots, load_robot

    rows = []
    for name in available_robots():
        robot = load_robot(name)
        rows.append(
            {
                "name": name,
                "description": robot.config.description,
                "arm_dof": robot.n_arm,
                "gripper_dof": len(robot.config.gripper_joints),
                "reach_m": round(robot.reach, 3),
                "control_hz": round(1.0 / robot.config.control_dt, 2),
                "physics_dt_ms": round(robot.model.opt.timestep * 1000, 3),
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="simrl robots")
    for column in ("name", "arm DOF", "gripper", "reach (m)", "control (Hz)", "physics dt (ms)", "description"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["name"], str(r["arm_dof"]), str(r["gripper_dof"]), f"{r['reach_m']:.3f}", f"{r['control_hz']:g}", f"{r['physics_dt_ms']:g}", r["description"]
        )
    stdout.print(table)


@bench_app.command("env")
def bench_env_command(
    robot: str = typer.Option("so101", "--robot", help="Robot name (see `simrl robots`) or a path to a robot folder."),
    envs: int = typer.Option(4096, "--envs", min=1, help="Number of parallel worlds."),
    backend: str = typer.Option("cpu", "--backend", help="Physics backend: auto, cpu or mjx."),
    mjx_impl: str = typer.Option("jax", "--mjx-impl", help="MJX implementation when --backend mjx: jax or warp."),
    steps: int = typer.Option(50, "--steps", min=1, help="Control steps per measurement."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Alternating env/raw measurements; medians are reported."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random actions."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Control steps/s of the full reach env (random actions) against raw mujoco.rollout, in one run."""
    from simrl.bench import bench_env
    from simrl.envs import ReachEnv
    from simrl.physics import make_backend
    from simrl.robots import load_robot

    arm = load_robot(robot)
    env = ReachEnv(arm, envs, backend=make_backend(backend, arm.model, arm.substeps, envs, mjx_impl=mjx_impl))
    with stderr.status("benchmarking") as status:
        result = bench_env(env, steps=steps, repeats=repeats, seed=seed, progress=lambda msg: status.update(msg))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"simrl bench env — {result.robot}, {result.num_envs} envs, {result.backend} backend")
    table.add_column("measure")
    table.add_column("control steps/s", justify="right")
    table.add_row("simrl env (reach, random actions)", f"{result.env_steps_per_s:,.0f}")
    table.add_row("raw mujoco.rollout", f"{result.raw_rollout_steps_per_s:,.0f}")
    table.add_row("ratio env / raw", f"{result.ratio:.1%}")
    stdout.print(table)
    stdout.print(f"compile {result.compile_s:.1f} s, {result.substeps} physics substeps per control step, {result.cpu_count} CPUs")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``simrl`` console script."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="simrl")
    except SimrlError as exc:
        if "--debug" in args:
            raise
        stderr.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
