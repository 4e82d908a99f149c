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
app.command("gap")(gap_command)

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


@app.command("deploy")
def deploy_command(
    robot: str = typer.Option(..., "--robot", help="Robot name (see `simrl robots`); its deploy/<robot>.yaml configures the bus."),
    policy: Optional[Path] = typer.Option(None, "--policy", help="An ONNX policy written by `simrl export`; its metadata must match the robot. Required unless --excite."),
    excite: Optional[str] = typer.Option(
        None, "--excite", help="Instead of a policy, play an excitation signal for system identification: mixed (recommended), chirp, multisine, steps or ramps."
    ),
    joints: Optional[str] = typer.Option(None, "--joints", help="With --excite: joints to excite, comma-separated, one at a time in this order (default: every arm joint; the gripper holds)."),
    amplitude: Optional[float] = typer.Option(None, "--amplitude", help="With --excite: rad about home (default: 0.25), cut to stay 0.1 rad inside the joint limits."),
    goal: Optional[str] = typer.Option(None, "--goal", help="One goal x,y,z in metres (world frame)."),
    goals: Optional[Path] = typer.Option(None, "--goals", help="A text file with one goal x,y,z per line."),
    random_goals: Optional[int] = typer.Option(None, "--random-goals", min=1, help="N goals drawn in the goal workspace like training draws them. [default: 5]"),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of --random-goals, or of the --excite signal (phases, step order)."),
    duration: Optional[float] = typer.Option(
        None, "--duration", help="Seconds per goal (default: the task's episode_steps ticks); with --excite, of the whole excitation (default: 30)."
    ),
    rate: Optional[float] = typer.Option(None, "--rate", help="Control loop rate in Hz. [default: the config's rate_hz]"),
    config: Optional[Path] = typer.Option(None, "--config", help="Deploy config replacing the shipped deploy/<robot>.yaml."),
    emulate: bool = typer.Option(False, "--emulate", help="Drive an emulated arm in this process (the bus kind's firmware on its wire: CAN, or a pty)."),
    reality: Optional[str] = typer.Option(
        None, "--reality", help="With --emulate: the reality file or name (deploy/realities/, randomization/). [default: deploy/realities/<robot>-test.yaml]"
    ),
    reality_seed: int = typer.Option(0, "--reality-seed", min=0, help="With --emulate: the seed the reality (and a servo arm's encoder zeros) is drawn with."),
    port: Optional[str] = typer.Option(None, "--port", help="Serial bus (feetech, dynamixel): the serial port, e.g. /dev/ttyACM0 or a pty from `simrl emulate`. Damiao: the socketcand server port."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Feetech: the arm's LeRobot calibration JSON (or one from `simrl calibrate`)."),
    interface: Optional[str] = typer.Option(None, "--interface", help="Damiao (CAN): python-can interface replacing the config's (socketcan, socketcand, ...)."),
    channel: Optional[str] = typer.Option(None, "--channel", help="Damiao (CAN): CAN channel replacing the config's."),
    host: Optional[str] = typer.Option(None, "--host", help="Damiao (CAN): socketcand server host (e.g. from `simrl emulate`)."),
    fd: Optional[bool] = typer.Option(None, "--fd/--no-fd", help="Damiao (CAN): CAN FD or classic CAN 2.0, replacing the config's bus.fd (the motors must be set alike)."),
    log: Optional[Path] = typer.Option(None, "--log", help="The .npz log to write. [default: runs/deploy/<robot>-<time>.npz]"),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Run an exported policy on the arm: enable, ramp home, one reach episode per goal, then hold, soften, disable.

    With --excite SIGNAL instead of --policy, play an excitation for system
    identification after the home ramp: one joint at a time, the others holding
    home, at two kp and two kd levels, within the joint limits and the safety
    limits; its log is what the gap checker fits (deploy/README.md, Excitation).

    Refuses a policy whose metadata does not match the robot. Ctrl-C or SIGTERM
    stop it the safe way (exit 130 / 143); a silent motor or a bus error too
    (exit 1). The log is written in every case (format: deploy/README.md).
    """
    from simrl.deploy.excitation import DEFAULT_DURATION, ExcitationRequest, parse_joints
    from simrl.deploy.goals import GoalSpec
    from simrl.deploy.session import DeployRequest, prepare, run_deploy
    from simrl.deploy.stop import StopRequest, stop_on_signals

    excitation = None
    if excite is not None:
        excitation = ExcitationRequest(excite, parse_joints(joints), amplitude, DEFAULT_DURATION if duration is None else duration, seed)
    elif joints is not None or amplitude is not None:
        raise SimrlError("--joints and --amplitude shape an excitation; allowed: only with --excite SIGNAL")
    request = DeployRequest(
        robot=robot,
        policy=policy,
        goals=GoalSpec(goal=goal, file=goals, random=random_goals, seed=seed),
        excitation=excitation,
        config=config,
        duration=None if excite is not None else duration,
        rate=rate,
        emulate=emulate,
        reality=reality,
        reality_seed=reality_seed,
        overrides={"bus.port": port, "bus.calibration": calibration, "bus.interface": interface, "bus.channel": channel, "bus.host": host, "bus.fd": fd},
        log=log,
    )
    plan = prepare(request)
    stop = StopRequest()
    with stop_on_signals(stop):
        what = f"excitation {plan.schedule.summary()}" if plan.schedule is not None else str(policy)
        stderr.print(f"deploying {what} on {robot}{' (emulated)' if emulate else ''}; Ctrl-C stops it safely", highlight=False, markup=False)
        for warning in plan.warnings:
            stderr.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
        summary = run_deploy(request, plan, stop)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        stdout.print("\n".join(summary.lines()), highlight=False, markup=False)
    if summary.stop_reason == "fault":
        stderr.print(f"error: deploy stopped: {summary.detail} (log: {summary.log})", markup=False, highlight=False)
    raise typer.Exit(summary.exit_code)


@app.command("calibrate")
def calibrate_command(
    robot: str = typer.Option(..., "--robot", help="Robot name; the servos are those of deploy/<robot>.yaml (or --config)."),
    port: Optional[str] = typer.Option(None, "--port", help="Serial port replacing the config's (e.g. /dev/ttyACM1, or a pty from `simrl emulate`)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Deploy config replacing the shipped deploy/<robot>.yaml."),
    out: Optional[Path] = typer.Option(None, "--out", help="The calibration file to write (LeRobot's format). [default: <robot>-calibration.json]"),
) -> None:
    """Calibrate a servo arm as LeRobot does: torque off, the middle pose, each joint swept stop to stop; write the file.

    The file is LeRobot's (`id`, `drive_mode`, `homing_offset`, `range_min`, `range_max` per motor) and the
    servos keep the offsets and ranges; deploy with `simrl deploy --robot R --calibration FILE`. An arm already
    calibrated with LeRobot needs none of this: give LeRobot's file to --calibration.
    """
    from simrl.deploy.calibrate_arm import Terminal, calibrate_arm

    calibrate_arm(robot, out or Path(f"{robot}-calibration.json"), Terminal(sys.stdin, sys.stdout), config, port)


@app.command("emulate")
def emulate_command(
    robot: str = typer.Option(..., "--robot", help="Robot name; the motors are those of deploy/<robot>.yaml (or --config)."),
    reality: Optional[str] = typer.Option(
        None, "--reality", help="The reality file or name (deploy/realities/, randomization/). [default: deploy/realities/<robot>-test.yaml]"
    ),
    reality_seed: int = typer.Option(0, "--reality-seed", min=0, help="The seed the reality (and a servo arm's encoder zeros) is drawn with."),
    config: Optional[Path] = typer.Option(None, "--config", help="Deploy config replacing the shipped deploy/<robot>.yaml."),
    host: Optional[str] = typer.Option(None, "--host", help="CAN arms: the socketcand server's address. [default: 127.0.0.1]"),
    port: Optional[int] = typer.Option(None, "--port", min=0, max=65535, help="CAN arms: the socketcand TCP port. [default: 0, a free one, printed]"),
    fd: Optional[bool] = typer.Option(
        None, "--fd/--no-fd", help="CAN arms: the motors' CAN mode, replacing the config's bus.fd; socketcand carries classic CAN only: --no-fd."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print where to reach it (and the deploy flags) as one JSON line."),
) -> None:
    """Serve an emulated arm (its motors' firmware on a simulated arm) until Ctrl-C, and print how `simrl deploy` reaches it.

    A serial arm (so101) is served on a pseudo-terminal: `simrl deploy --robot so101 --port PTY --calibration FILE`.
    A CAN arm (openarm) through a socketcand server, classic CAN only (`simrl emulate --robot openarm --no-fd`):
    `simrl deploy --robot openarm --interface socketcand --host H --port P --no-fd`.
    """
    from simrl.deploy.config import load_deploy_config
    from simrl.deploy.emulation.emulated_arm import EmulatedArm
    from simrl.deploy.report import EXIT_CODES
    from simrl.deploy.stop import StopRequest, stop_on_signals
    from simrl.robots import load_robot

    arm = load_robot(robot)
    deploy_config = load_deploy_config(arm, config, {} if fd is None else {"bus.fd": fd})
    emulated = EmulatedArm(arm, deploy_config, reality, reality_seed)
    stop = StopRequest()
    with stop_on_signals(stop), emulated.serving(host, port, deploy_config.timing.realtime_priority) as endpoint:
        if as_json:
            described = {"overrides": endpoint.overrides, "deploy_flags": endpoint.deploy_flags, "reality": emulated.describe_reality()}
            print(json.dumps({**endpoint.where, **described}), flush=True)
        else:
            where = ", ".join(f"{key} {value}" for key, value in endpoint.where.items())
            stdout.print(
                f"emulating {arm.name} (reality {emulated.reality.name}, seed {reality_seed}) on {where}\n"
                f"drive it: simrl deploy --robot {arm.name} --policy POLICY.onnx {' '.join(endpoint.deploy_flags)}",
                highlight=False,
                markup=False,
            )
        while not stop.requested:
            time.sleep(0.1)
    raise typer.Exit(EXIT_CODES[stop.reason])


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
