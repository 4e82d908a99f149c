"""The ``simrl`` command: parse, validate, call — the work lives in the modules.

Errors a user can cause are ``SimrlError``s: printed as one line on stderr with
exit status 2, the traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from simrl.compile_cache import check_writable, resolve_directory, use_compile_cache
from simrl.deploy.cli import calibrate_command, deploy_command, emulate_command
from simrl.errors import SimrlError
from simrl.gap.cli import gap_command
from simrl.randomization.cli import app as randomization_app

app = typer.Typer(
    help="Train robot-arm policies with RL in massively parallel MuJoCo and carry them onto real arms.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Measure throughput (figures also as --json).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
train_app = typer.Typer(help="Train a policy with PPO or SAC (see `simrl train reach --help`).", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(randomization_app, name="randomization")

_CLOCK_START = time.perf_counter()  # "wall-clock including compilation" counts from here

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    compile_cache: Optional[str] = typer.Option(
        None,
        "--compile-cache",
        envvar="SIMRL_COMPILE_CACHE",
        help="Folder where compiled XLA programs are kept for later runs (default: ~/.cache/simrl/xla); 'off' compiles everything afresh.",
    ),
) -> None:
    """Global options (``--debug`` is read in ``main`` so it also covers errors raised here)."""
    directory = resolve_directory(compile_cache)
    if directory is not None:
        try:
            check_writable(directory)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if compile_cache:  # the user named it: a mistake to report
                raise SimrlError(f"--compile-cache / SIMRL_COMPILE_CACHE '{compile_cache}': cannot write in {directory} ({reason}); give a writable folder or 'off'") from exc
            stderr.print(f"warning: compiling without a cache: cannot write in {directory} ({reason}); set --compile-cache DIR or 'off'", markup=False, highlight=False)
            directory = None
    use_compile_cache(directory)


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
    repeats: int = typer.Option(5, "--repeats", min=1, help="Alternating measurements of each pair; medians are reported, and the randomization cost's quartiles."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random actions."),
    randomization: Optional[str] = typer.Option(
        None, "--randomization", help="Also measure the env under this profile (e.g. default), side by side with none."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Control steps/s of the full reach env (random actions) against raw mujoco.batch and mujoco.rollout, in one run."""
    from simrl.bench import bench_env
    from simrl.envs import ReachEnv
    from simrl.physics import make_backend
    from simrl.randomization.profile import resolve_profile
    from simrl.robots import load_robot

    arm = load_robot(robot)

    def env_with(profile):
        return ReachEnv(arm, envs, backend=make_backend(backend, arm.model, arm.substeps, envs, mjx_impl=mjx_impl), randomization=profile)

    randomized = env_with(resolve_profile(randomization, arm)) if randomization else None
    with stderr.status("benchmarking") as status:
        result = bench_env(env_with(None), steps=steps, repeats=repeats, seed=seed, progress=lambda msg: status.update(msg), randomized=randomized)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"simrl bench env — {result.robot}, {result.num_envs} envs, {result.backend} backend")
    table.add_column("measure")
    table.add_column("control steps/s", justify="right")
    table.add_row("simrl env (reach, random actions)", f"{result.env_steps_per_s:,.0f}")
    table.add_row("raw mujoco.batch (what the cpu backend runs on)", f"{result.raw_batch_steps_per_s:,.0f}")
    table.add_row("raw mujoco.rollout", f"{result.raw_rollout_steps_per_s:,.0f}")
    table.add_row("ratio env / raw mujoco.batch", f"{result.ratio:.1%}")
    if result.randomized_env_steps_per_s is not None:
        table.add_row(f"simrl env, randomization {randomization}", f"{result.randomized_env_steps_per_s:,.0f}")
        low, high = result.randomization_cost_quartiles
        table.add_row("cost of randomization (median of pairs; quartiles)", f"{result.randomization_cost:.1%} ({low:.1%} to {high:.1%})")
    stdout.print(table)
    stdout.print(f"compile {result.compile_s:.1f} s, {result.substeps} physics substeps per control step, {result.cpu_count} CPUs")


@bench_app.command("policy")
def bench_policy_command(
    policy: Path = typer.Argument(..., help="An ONNX policy written by `simrl export`."),
    calls: int = typer.Option(10_000, "--calls", min=1, help="Timed calls (after warm-up), one observation each."),
    threads: int = typer.Option(1, "--threads", min=1, help="onnxruntime intra-op threads."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Per-call latency of a policy in onnxruntime at batch 1, as a robot loop calls it: p50, p99, max, mean."""
    from simrl.deploy.policy_bench import bench_policy

    result = bench_policy(policy, calls=calls, threads=threads)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"simrl bench policy — {policy.name}, obs {result.obs_size} -> action {result.action_size}, {threads} thread(s)")
    table.add_column("latency per call", justify="left")
    table.add_column("µs", justify="right")
    for label, value in (("p50", result.p50_us), ("p99", result.p99_us), ("max", result.max_us), ("mean", result.mean_us)):
        table.add_row(label, f"{value:,.1f}")
    stdout.print(table)
    stdout.print(f"{calls:,} calls after {result.warmup_calls} warm-up, onnxruntime {result.onnxruntime_version}, {result.cpu_count} CPUs")


@train_app.command("reach")
def train_reach_command(
    robot: Optional[str] = typer.Option(None, "--robot", help="Robot name (see `simrl robots`) or a path to a robot folder. [default: so101]"),
    envs: Optional[int] = typer.Option(None, "--envs", min=1, help="Parallel worlds. Default: the recipe's for the backend (512 on cpu)."),
    algo: Optional[str] = typer.Option(
        None, "--algo", help="ppo (default: fastest to 95 % here), sac, or the Stable-Baselines3 baselines sb3-ppo and sb3-sac (need simrl[sb3])."
    ),
    backend: str = typer.Option("auto", "--backend", help="Physics: auto (mjx with a GPU, else cpu), cpu (MuJoCo threads) or mjx."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Env steps to train, all envs together. Default: the recipe's."),
    minutes: Optional[float] = typer.Option(None, "--minutes", min=0.01, help="Wall-clock budget; on reaching it the run stops and saves."),
    until_success: Optional[float] = typer.Option(
        None, "--until-success", min=0.01, max=1.0, help="Stop once a periodic evaluation reaches this success rate (e.g. 0.95)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Seed of network init, exploration and training goals (default 0)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Recipe YAML replacing the shipped experiments/recipes/reach-<robot>-<algo>.yaml."),
    task_config: Optional[Path] = typer.Option(None, "--task-config", help="Reach task settings and reward weights (default rewards/reach.yaml)."),
    randomization: Optional[str] = typer.Option(
        None, "--randomization", help="Domain randomization: none (default), default, strong, or a profile .yaml (see `simrl randomization show`)."
    ),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue RUN_DIR from its last checkpoint (--steps / --minutes may extend it)."),
    logdir: Path = typer.Option(Path("runs"), "--logdir", help="Parent folder of run directories (<robot>-reach-<time>)."),
    devices: Optional[int] = typer.Option(
        None, "--devices", min=1, help="Split the envs over the first N of JAX's devices (data parallel; N must divide --envs). [default: all]"
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout when done."),
) -> None:
    """Train a reach policy; writes runs/<robot>-reach-<time>/ (config, checkpoints, TensorBoard, evaluations).

    The defaults come from the robot's recipe, tuned for the fastest wall-clock
    time to 95 % success on this kind of machine. Ctrl-C stops after the current
    iteration and saves; `--resume RUN_DIR` continues with the same step count.
    Watch it with `tensorboard --logdir runs`.
    """
    from simrl.train.config import resolve_config
    from simrl.train.run_dir import RunDir

    console = stderr  # progress and evaluations on stderr; stdout stays clean for --json
    if resume is not None:
        given = {
            "--robot": robot, "--envs": envs, "--algo": algo, "--seed": seed, "--config": config, "--task-config": task_config,
            "--randomization": randomization,
        }  # fmt: skip
        clashing = [flag for flag, value in given.items() if value]
        if clashing:
            raise SimrlError(f"--resume continues a run with its saved config; drop {', '.join(clashing)} (only --steps, --minutes, --until-success may change)")
        runner_class = _runner_class(RunDir.open(resume).read_config().algo)
        runner = runner_class.reopen(resume, console, progress, devices, total_steps=steps, max_minutes=minutes, stop_at_success=until_success)
    else:
        overrides = {
            "num_envs": envs, "total_steps": steps, "max_minutes": minutes, "stop_at_success": until_success, "seed": seed,
            "randomization": randomization,
        }  # fmt: skip
        train_config = resolve_config("reach", robot or "so101", backend, algo=algo, recipe=config, task_config=task_config, overrides=overrides)
        runner = _runner_class(train_config.algo).start(train_config, logdir, console, progress, devices)
    cfg = runner.config
    console.print(
        f"{'resuming' if resume else 'training'} {cfg.algo.upper()} on {cfg.robot} reach: {cfg.num_envs} envs on {runner.parallel.count} device(s), {runner.backend} backend, "
        f"{cfg.total_steps:,} steps, randomization {cfg.randomization} -> {runner.run_dir.path}",
        highlight=False,
    )
    result = runner.train(clock_start=_CLOCK_START, resume=resume is not None)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    rate = f" ({result.train_env_steps_per_s:,.0f} steps/s while training)" if result.train_env_steps_per_s else ""
    split = result.time_split
    console.print(
        f"{result.stop_reason}: {result.env_steps:,} env steps in {result.wall_time_s:.1f} s{rate}: startup {split['startup_s'] or 0:.1f} s, "
        f"first iteration (compiles) {split['first_iteration_s']:.1f} s, iterations {split['iterations_s']:.1f} s, evaluations {split['evaluations_s']:.1f} s",
        highlight=False,
    )
    if result.final_eval:
        console.print(f"final evaluation: {_eval_line(result.final_eval)}", highlight=False)
    console.print(f"evaluate: simrl eval {runner.run_dir.path} --episodes 200 --seed 1 ; watch: tensorboard --logdir {runner.run_dir.path.parent}", highlight=False)
    if result.stop_reason == "interrupted":
        console.print(f"interrupted and saved; continue with: simrl train reach --resume {runner.run_dir.path}", highlight=False)
        raise typer.Exit(130)


def _runner_class(algo: str) -> type:
    """Our ``Runner`` for ppo and sac; ``SB3Runner`` for sb3-*, once Stable-Baselines3 is known to be installed."""
    from simrl.train.sb3_config import SB3_ALGOS

    if algo not in SB3_ALGOS:
        from simrl.train.runner import Runner

        return Runner
    from simrl.extras import require_sb3

    require_sb3(f"algo '{algo}'", otherwise="without it, algo may be ppo or sac")
    from simrl.train.sb3 import SB3Runner

    return SB3Runner


def _eval_line(figures: dict) -> str:
    from simrl.train.evaluation import EvalResult

    return EvalResult(**figures).summary()


@app.command("eval")
def eval_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `simrl train`."),
    episodes: int = typer.Option(200, "--episodes", min=1, help="Episodes, each with its own random goal and start pose."),
    seed: int = typer.Option(1, "--seed", min=0, help="Seed of the goals; the same seed gives the same figures."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Physics backend (default: the run's)."),
    randomization: Optional[str] = typer.Option(
        None, "--randomization", help="Evaluate under this profile (none, default, strong or a .yaml); default: the one the run trained with."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Success X/N of a run's policy over N randomized episodes, with mean and 95th-percentile final distance."""
    from simrl.train.evaluation import Evaluator
    from simrl.train.policy import load_policy
    from simrl.train.run_dir import RunDir
    from simrl.train.runner import make_env

    run = RunDir.open(run_dir)
    config = run.read_config()
    policy, meta = load_policy(run.policy_file)
    profile = randomization or run.randomization_source(config)
    result = Evaluator(make_env(config, episodes, auto_reset=False, backend=backend, randomization=profile))(policy, seed)
    if as_json:
        extra = {"run_dir": str(run.path), "env_steps_trained": meta.get("env_steps"), "randomization": randomization or config.randomization}
        print(json.dumps({**result.to_dict(), **extra}, indent=2))
        return
    stdout.print(f"{result.summary()} [randomization: {randomization or config.randomization}]", highlight=False, markup=False)


@app.command("export")
def export_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `simrl train`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The ONNX file to write. Default: RUN_DIR/policy.onnx."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write the run's policy as one ONNX graph (normalization, MLP, squashing) with robot, action and observation metadata.

    The graph maps raw observations (batch, obs_size) to actions (batch,
    action_size) in -1..1; the robot side scales them by the metadata's
    action_scale and turns them into joint targets with the env's own code.
    Time it with `simrl bench policy FILE.onnx`.
    """
    from simrl.export import export_policy

    result = export_policy(run_dir, out if out is not None else run_dir / "policy.onnx")
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    meta = result.metadata
    unit = "rad" if meta["action_space"] == "joint_delta" else "m"
    network = "-".join(str(size) for size in result.hidden_sizes)
    layout = ", ".join(f"{part['name']} {part['size']}" for part in meta["observation_layout"])
    lines = [
        f"wrote {result.path} ({result.file_bytes / 1024:,.1f} KiB, {result.parameters:,} parameters)",
        f"{meta['robot']} {meta['task']}, {meta['algo'].upper()}: obs {result.obs_size} -> {network} {meta['activation']} -> "
        f"action {result.action_size} ({meta['squash']}) x {meta['action_scale']:g} {unit} per step ({meta['action_space']}), "
        f"every {meta['control_dt'] * 1000:g} ms",
        f"joints: {', '.join(meta['arm_joints'])}",
        f"observation: {layout}",
        f"trained {'?' if meta['env_steps'] is None else format(meta['env_steps'], ',')} env steps, randomization {meta['randomization']['name']}, "
        f"config sha256 {meta['config_sha256'][:12]}",
    ]
    stdout.print("\n".join(lines), highlight=False, markup=False)


# The arm-side commands and the gap checker live beside their work; listed here after export, in workflow order.
app.command("deploy")(deploy_command)
app.command("calibrate")(calibrate_command)
app.command("emulate")(emulate_command)
app.command("gap")(gap_command)


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
