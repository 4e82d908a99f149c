"""``simrl deploy``, ``simrl calibrate`` and ``simrl emulate``: the arm-side commands (the work lives in ``simrl.deploy``).

Registered on the ``simrl`` app by ``simrl.cli``; each imports what it runs when
it runs, so ``simrl --help`` loads no bus SDK.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from simrl.errors import SimrlError

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


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
