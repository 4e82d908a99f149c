"""One arm end to end: train reach, export to ONNX, deploy it on the emulated arm through its own bus, find the loop's top rate.

Runs, as a user would (each a separate process):

    simrl train reach --robot R --backend cpu --randomization default --json   (the shipped recipe)
    simrl export RUN -o RUN/policy.onnx --json
    simrl deploy --robot R --policy RUN/policy.onnx --emulate --reality deploy/realities/R-test.yaml \\
        --random-goals 20 --seed 0 --rate 50 --json --log ...
    simrl emulate --robot R --reality ... --json  +  simrl deploy --robot R <the flags it printed> ...
        (the emulator started by hand, as a user would in a second terminal: 5 goals)
    simrl deploy ... (5 goals) with the loop at normal scheduling priority (a user without real-time rights)
    simrl deploy ... --rate RATE --random-goals 2 --duration 1   for RATE in --sweep (the loop timing at higher rates)

``--emulate`` starts ``simrl emulate`` as a child process, so the emulated
motors answer from a process of their own, as real motors answer from their
own hardware: Damiao motors on a virtual CAN channel, Feetech or Dynamixel
servos on a pseudo-terminal paced at the bus's baud rate. A servo arm's
encoders read random ticks at the model's zero, so the deploy goes through the
LeRobot calibration file the emulator writes (as a user's through theirs).

Writes experiments/results/deploy_<robot>.{md,json}: goals reached X/20 at
3 cm, loop period and jitter, overruns, the rate sweep and the reality the arm
had. Training takes about 2-3 minutes on an idle 2-core machine; the deploys about 3.

    python experiments/deploy_arm.py --robot so101                             # train, export, deploy, sweep
    python experiments/deploy_arm.py --robot openarm --run runs/openarm-reach-...   # reuse a trained run
    python experiments/deploy_arm.py --robot openarm --config my-openarm.yaml --out /tmp/fd   # another bus setup
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

from simrl_runs import simrl

from simrl.deploy.config import DeployConfig, load_deploy_config
from simrl.deploy.log import read_log
from simrl.robots import load_robot

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
TARGETS = {"goals": 18, "jitter_p99_ms": 0.5, "overruns": 0}  # the issues' targets for 20 goals at 50 Hz
SWEEP = [50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0]


@dataclass(frozen=True)
class Comparison:
    """The 20 goals again with other deploy flags, beside the config's own setup (e.g. a CAN FD arm on classic CAN)."""

    flags: list[str]
    main: str  # what the config's run is called in the table
    other: str  # what this run is called
    about: str  # one sentence on what the flags change


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far (/proc/stat): steal is time the hypervisor gave this VM's CPUs to others."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return fields[7], sum(fields)


class Arm:
    """One arm's deploys: the robot, its deploy config (the shipped one unless ``--config``) and its test reality."""

    def __init__(self, robot: str, config: Path | None):
        self.robot = robot
        self.config_file = config
        self.config: DeployConfig = load_deploy_config(load_robot(robot), config)
        self.reality = ROOT / "deploy" / "realities" / f"{robot}-test.yaml"

    def _config_args(self) -> list[str]:
        return [] if self.config_file is None else ["--config", str(self.config_file)]

    def comparison(self) -> Comparison | None:
        """A second setup of the same bus worth the same 20 goals: classic CAN for a CAN FD arm; none otherwise."""
        if getattr(self.config.bus, "fd", False):
            about = "`--no-fd`: the bus and the emulated motors on CAN 2.0, as the OpenArm ran before it followed its maker to FD"
            return Comparison(["--no-fd"], main="CAN FD", other="classic CAN", about=about)
        return None

    def emulate_flags(self) -> list[str]:
        """What `simrl emulate` needs beyond the robot: a CAN arm is served through socketcand, which carries classic CAN only."""
        return ["--no-fd"] if getattr(self.config.bus, "fd", False) else []

    def deploy(self, policy: Path, log: Path, rate: float, goals: int, seed: int, duration: float | None = None,
               wire: list[str] | None = None, config: Path | None = None, flags: list[str] = ()) -> dict[str, Any]:
        """One `simrl deploy` run on the emulated arm (``--emulate``, or ``wire``: the flags `simrl emulate` printed; ``flags``
        added); its JSON summary whatever it exits with (a fault is a result, not a crash)."""
        args = ["deploy", "--robot", self.robot, "--policy", str(policy)]
        args += wire if wire is not None else ["--emulate", "--reality", str(self.reality)]
        args += ["--config", str(config)] if config is not None else self._config_args()
        args += list(flags)
        args += ["--random-goals", str(goals), "--seed", str(seed), "--rate", f"{rate:g}", "--log", str(log), "--json"]
        if duration is not None:
            args += ["--duration", f"{duration:g}"]
        print(f"== simrl {' '.join(args)}", file=sys.stderr, flush=True)
        steal_before, total_before = cpu_times()
        done = subprocess.run([sys.executable, "-m", "simrl", *args], stdout=subprocess.PIPE, text=True, timeout=600)
        steal_after, total_after = cpu_times()
        summary = json.loads(done.stdout)
        summary["exit_code"] = done.returncode
        summary["host_steal_percent"] = round(100 * (steal_after - steal_before) / max(1, total_after - total_before), 1)
        summary["command"] = "simrl " + " ".join(args)
        return summary

    def deploy_to_another_process(self, policy: Path, log: Path, goals: int) -> dict[str, Any]:
        """`simrl emulate` serving the arm, and a deploy in another process driving it through the flags it printed."""
        command = [sys.executable, "-m", "simrl", "emulate", "--robot", self.robot, "--reality", str(self.reality), *self._config_args()]
        command += [*self.emulate_flags(), "--json"]
        print(f"== simrl {' '.join(command[3:])}", file=sys.stderr, flush=True)
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
            try:
                where = json.loads(server.stdout.readline())  # type: ignore[union-attr]
                summary = self.deploy(policy, log, 50.0, goals, seed=0, wire=where["deploy_flags"])
            finally:
                server.send_signal(signal.SIGINT)
                server.communicate(timeout=60)
        summary["emulate_command"] = "simrl " + " ".join(command[3:])
        return summary

    def normal_priority_config(self, folder: Path) -> Path:
        """The deploy config with the loop at normal scheduling priority: what a user without real-time rights gets."""
        data = self.config.model_dump(mode="json", exclude_none=True)
        data["timing"]["realtime_priority"] = None
        path = folder / f"{self.robot}-normal-priority.yaml"
        path.write_text(json.dumps(data))  # JSON is YAML
        return path

    def sweep(self, policy: Path, logdir: Path, rates: list[float]) -> list[dict[str, Any]]:
        """Loop timing at each rate on 2 goals of 1 s (the policy steps faster than it trained: only the timing counts)."""
        rows = []
        for rate in rates:
            log = logdir / f"sweep-{rate:g}hz.npz"
            s = self.deploy(policy, log, rate, goals=2, seed=1, duration=1.0)
            keys = ("stop_reason", "detail", "policy_ticks", "overruns", "period_p50_ms", "period_p99_ms", "jitter_p99_ms",
                    "read_p50_ms", "read_max_ms", "obs_to_command_p99_ms", "stale_replies", "host_steal_percent")
            rows.append({"rate_hz": rate, **{k: s[k] for k in keys}, "reply_timeout_ms": read_log(log)[1]["reply_timeout_s"] * 1000})
        return rows


def sustained(rows: list[dict[str, Any]]) -> float | None:
    """The highest rate that completed with no overrun and no stale reply."""
    ok = [r["rate_hz"] for r in rows if r["stop_reason"] == "completed" and r["overruns"] == 0 and r["stale_replies"] == 0]
    return max(ok) if ok else None


@dataclass(frozen=True)
class SerialBus:
    """What sets a serial servo bus's wire time per tick: its packets' framing and the control-table items a tick moves."""

    header: int  # an instruction packet's bytes besides its parameters
    address: int  # the parameter bytes that name the item and its length (sync read and sync write alike)
    per_reply: int  # a status packet's bytes besides its data
    state: str  # the items a state read covers
    state_bytes: int
    goal: str  # the item the command writes
    goal_bytes: int
    framing: str  # the packet layout these numbers come from


# scservo_sdk packets FF FF ID LEN INST PARAMS CHK: 6 bytes besides the parameters, address and length 1 byte each; a
# status packet FF FF ID LEN ERR DATA CHK: 6 besides its data. State: Present_Position, _Velocity, _Load (6 bytes from 56).
FEETECH_WIRE = SerialBus(6, 2, 6, "Present_Position, _Velocity, _Load", 6, "Goal_Position", 2,
                         "Feetech packets carry 6 bytes besides their parameters or data")
# Protocol 2.0 (e-manual protocol2.md): FF FF FD 00 ID LEN LEN INST PARAMS CRC CRC, 10 bytes besides the parameters,
# address and length 2 bytes each; a status packet adds INST 0x55 and the error byte: 11 besides its data. State:
# Present Current/Load, Velocity, Position (items 126..135, 10 bytes); goal: Goal Position (4 bytes).
DYNAMIXEL_WIRE = SerialBus(10, 4, 11, "Present Current or Load, Present Velocity, Present Position", 10, "Goal Position", 4,
                           "Protocol 2.0 packets carry 10 bytes besides their parameters, a status packet 11 besides its data")


def serial_sync_bytes(servos: int, bus: SerialBus) -> dict[str, int]:
    """Bytes on a serial servo bus per tick: a sync read of the state block (request, one status reply per servo),
    a sync write of the goals (no reply), then the second state read of the tick."""
    read = (bus.header + bus.address + servos) + servos * (bus.per_reply + bus.state_bytes)  # request params: item, ids
    command = bus.header + bus.address + servos * (1 + bus.goal_bytes)  # params: item, then id + goal per servo
    return {"read": read, "command": command, "tick": 2 * read + command}


def serial_ceiling(bus: SerialBus, result: dict[str, Any]) -> list[str]:
    """Why a serial servo loop (Feetech, Dynamixel) tops out where it does: the paced bus and late replies."""
    main = result["deploy_50hz"]
    wire = serial_sync_bytes(len(main["final_enabled"]), bus)
    baud = result["bus_baud"]
    command_ms = wire["command"] * 10 * 1000 / baud
    tick_ms = 2 * (main["read_p50_ms"] or 0.0) + command_ms + (main["inference_p99_ms"] or 0.0)
    return [
        f"Each tick reads the state (a sync read of {bus.state}) and sends the command (a sync write of {bus.goal})",
        f"followed by a second state read: {wire['tick']} bytes ({bus.framing}), {wire['tick'] * 10 * 1000 / baud:.2f} ms of a",
        f"{baud / 1e6:g} Mbaud line at 10 bits a byte (the pty paces every byte so), before the servos' Return Delay Time (0)",
        "and a USB adapter's latency, which the pty does not model. With the loop's own work (two state reads at their p50",
        f"above, the command's {command_ms:.2f} ms on the wire, inference p99) a tick needs about {tick_ms:.1f} ms, so the wire",
        f"and the loop would carry about {1000 / tick_ms:.0f} Hz. What stops the sweep earlier is the late reply: the reply",
        "timeout is 40 % of the period, and a read that misses it waits the whole timeout, twice a tick, so at 100 Hz one late",
        "reply makes an overrun. Replies come late when the emulator's Python threads (the pty pacing, the physics clock) or",
        "the loop do not get a CPU in time on this shared 2-core virtual machine (the steal column: time the host gave these",
        "CPUs to other machines). A bus that only wrote goals and read positions would move fewer bytes; this one also reads",
        "velocity and load or current, which the observation and the log use.",
    ]


def damiao_ceiling(result: dict[str, Any]) -> list[str]:
    """Why a Damiao (OpenArm) loop tops out where it does: the exchange on the CAN channel."""
    return [
        "What sets the ceiling is the exchange, not the loop's own work: the emulated motors (Python threads behind",
        "python-can's virtual bus) answer 8 commands in about 1 ms, and a reply must arrive within 40 % of the period",
        "(`bus.reply_timeout_s`, capped; a tick waits on two exchanges), so above a few hundred Hz every motor reads as",
        "silent and the run stops safely, during the home ramp. A real 1 Mbit/s classic CAN bus is no faster: an 8-byte",
        "standard frame is 111 bits (0.11 ms) before bit stuffing, so a state read and a command (8 + 8 frames each)",
        "occupy about 3.6 ms of bus time per tick. CAN FD at 5 Mbit/s data halves that: an 8-byte FD frame is about",
        "29 bits at 1 Mbit/s (arbitration, acknowledge, end of frame) and 97 at 5 Mbit/s (ESI, DLC, data, stuff count,",
        "CRC-17 with its fixed stuff bits) before dynamic stuffing, about 0.05 ms (ISO 11898-1:2015 frame format), so the",
        "32 frames of a tick take about 1.6 ms.",
    ]


CEILINGS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "feetech": functools.partial(serial_ceiling, FEETECH_WIRE),
    "dynamixel": functools.partial(serial_ceiling, DYNAMIXEL_WIRE),
    "damiao": damiao_ceiling,
}


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _short_run_row(label: str, run: dict[str, Any]) -> str:
    return (
        f"| {label} | {run['goals_reached']}/{run['goals_total']} | {_fmt(run['period_p99_ms'])} | {_fmt(run.get('jitter_p50_ms'))} / "
        f"{_fmt(run['jitter_p99_ms'])} / {_fmt(run['jitter_max_ms'])} | {_fmt(run['read_p50_ms'])} / {_fmt(run['read_max_ms'])} "
        f"| {run['overruns']} | {run['stale_replies']} | {run['host_steal_percent']} % | {run['stop_reason']} |"
    )


def _goal_row(label: str, run: dict[str, Any]) -> str:
    distances = [d for d in run["final_distances_mm"] if d is not None]
    mean = sum(distances) / len(distances) if distances else float("nan")
    return (
        f"| {label} | {run['goals_reached']}/{run['goals_total']} | {mean:.1f} / {max(distances, default=float('nan')):.1f} "
        f"| {_fmt(run['jitter_p99_ms'])} / {_fmt(run['jitter_max_ms'])} | {run['overruns']} | {_fmt(run['read_p50_ms'])} / {_fmt(run['read_max_ms'])} "
        f"| {run['stale_replies']} | {run['stop_reason']} |"
    )


def _comparison_lines(result: dict[str, Any]) -> list[str]:
    compared = result.get("comparison")
    if compared is None:
        return []
    return [
        f"The same 20 goals on {compared['other']} ({compared['about']}):",
        "",
        "| setup | goals | final distance mean / max (mm) | jitter p99 / max (ms) | overruns | state read p50 / max (ms) | stale replies | stop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        _goal_row(compared["main"], result["deploy_50hz"]),
        _goal_row(compared["other"], compared["run"]),
        "",
    ]


def markdown(result: dict[str, Any]) -> str:
    main, met, train, robot = result["deploy_50hz"], result["targets_met"], result["train"], result["robot"]
    took = f"in {train['wall_time_s']:.0f} s" if train["wall_time_s"] is not None else "(a run reused with --run)"
    lines = [
        f"# {robot}: trained, exported, deployed on the emulated arm through its {result['bus_kind']} bus",
        "",
        f"Measured {result['measured']} on {result['cpus']} CPUs (load average {result['load_average']}) by "
        f"`python experiments/deploy_arm.py --robot {robot}`{' with ' + result['config'] if result['config'] else ''}.",
        "",
        "## Commands",
        "",
        "```",
        *result["commands"],
        "```",
        "",
        f"Training: {train['env_steps']:,} env steps {took}, randomization {train['randomization']}; "
        f"`simrl eval` in simulation: {train['final_eval']} within 2 cm.",
        "",
        f"## 20 goals at 50 Hz (reality `{robot}-test`, `simrl deploy --emulate`)",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| goals reached within 3 cm | {main['goals_reached']}/{main['goals_total']} | >= {TARGETS['goals']}/20 ({_met(met['goals'])}) |",
        f"| final distance mean / max (mm) | {result['distance_mean_mm']:.1f} / {result['distance_max_mm']:.1f} | |",
        f"| loop period p50 / p99 (ms) | {_fmt(main['period_p50_ms'])} / {_fmt(main['period_p99_ms'])} | 20 |",
        f"| jitter p50 / p99 / max (ms), abs(period - 20 ms) | {_fmt(main.get('jitter_p50_ms'))} / {_fmt(main['jitter_p99_ms'])} / "
        f"{_fmt(main['jitter_max_ms'])} | p99 < {TARGETS['jitter_p99_ms']} ({_met(met['jitter'])}) |",
        f"| overruns | {main['overruns']} | {TARGETS['overruns']} ({_met(met['overruns'])}) |",
        f"| state read p50 / max (ms), request out to last reply in | {_fmt(main['read_p50_ms'])} / {_fmt(main['read_max_ms'])} | |",
        f"| observation to command out p50 / p99 (ms) | {_fmt(main['obs_to_command_p50_ms'])} / {_fmt(main['obs_to_command_p99_ms'])} | |",
        f"| observation + inference + mapping p99 (ms) | {_fmt(main['inference_p99_ms'])} | |",
        f"| safety events | {main['safety_events'] or 'none'} | |",
        f"| stale replies (motor-ticks) | {main['stale_replies']} | |",
        f"| CPU time the host took from this VM during the run (steal) | {main['host_steal_percent']} % | |",
        f"| stop | {main['stop_reason']}, exit {main['exit_code']}, motors torque off after disable "
        f"{main['final_enabled'].count(False)}/{len(main['final_enabled'])} | |",
        "",
        f"Loop thread scheduling: {result['scheduling']}. Final distances (mm): {', '.join(_fmt(d, 1) for d in main['final_distances_mm'])}.",
        "",
        *_comparison_lines(result),
        "## 5 goals at 50 Hz, as a user would start them",
        "",
        "Apart: `simrl emulate` started by hand in another process (it prints the flags that reach it), then `simrl deploy`",
        "with those flags. Normal priority: `--emulate` with `timing.realtime_priority: null`, what a user without",
        "real-time rights gets.",
        "",
        "| run | goals | period p99 (ms) | jitter p50 / p99 / max (ms) | read p50 / max (ms) | overruns | stale replies | steal | stop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        _short_run_row("apart", result["deploy_50hz_emulator_apart"]),
        _short_run_row("normal priority", result["deploy_50hz_normal_priority"]),
        "",
        "## Highest rate without overruns (2 goals x 1 s each)",
        "",
        "At rates above the policy's 50 Hz the policy steps faster than it trained, so only the loop's timing is",
        "measured here, not reaching.",
        "",
        "| rate (Hz) | stop | policy ticks | overruns | period p50 / p99 (ms) | jitter p99 (ms) | read p50 / max (ms) | obs to command p99 (ms) | reply timeout (ms) | stale replies | steal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["sweep"]:
        lines.append(
            f"| {r['rate_hz']:g} | {r['stop_reason']} | {r['policy_ticks']} | {r['overruns']} | {_fmt(r['period_p50_ms'])} / {_fmt(r['period_p99_ms'])} "
            f"| {_fmt(r['jitter_p99_ms'])} | {_fmt(r['read_p50_ms'])} / {_fmt(r['read_max_ms'])} | {_fmt(r['obs_to_command_p99_ms'])} "
            f"| {_fmt(r['reply_timeout_ms'])} | {r['stale_replies']} | {r['host_steal_percent']} % |"
        )
    top = result["max_sustained_rate_hz"]
    lines += ["", f"Highest rate completed with no overrun and no stale reply: {'none' if top is None else f'{top:g} Hz'}.", ""]
    ceiling = CEILINGS.get(result["bus_kind"])
    if ceiling is not None:
        lines += [*ceiling(result), ""]
    lines += ["## The reality the emulated arm had (`Reality.describe()`)", "", "```json", json.dumps(result["reality"], indent=2), "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", required=True, help="The arm (its deploy/<robot>.yaml and deploy/realities/<robot>-test.yaml).")
    parser.add_argument("--config", type=Path, help="A deploy config replacing deploy/<robot>.yaml (e.g. another bus setup).")
    parser.add_argument("--run", type=Path, help="A trained reach run of this robot to use instead of training one.")
    parser.add_argument("--randomization", default="default", help="Profile to train with (default: default).")
    parser.add_argument("--sweep", type=float, nargs="*", default=SWEEP, help="Loop rates (Hz) to time.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Folder for deploy_<robot>.{md,json}.")
    args = parser.parse_args()
    arm = Arm(args.robot, args.config)

    work = Path(tempfile.mkdtemp(prefix=f"deploy-{args.robot}-"))
    commands = []
    if args.run is None:
        train_args = ["train", "reach", "--robot", args.robot, "--backend", "cpu", "--randomization", args.randomization, "--logdir", str(work / "runs"), "--no-progress"]
        print(f"== simrl {' '.join(train_args)}", file=sys.stderr, flush=True)
        trained = simrl(*train_args)
        run = Path(trained["run_dir"])
        commands.append("simrl " + " ".join(train_args) + " --json")
    else:
        run, trained = args.run, {}
    final_eval = simrl("eval", str(run), "--episodes", "200", "--seed", "1")
    policy = run / "policy.onnx"
    simrl("export", str(run), "-o", str(policy))
    commands.append(f"simrl export {run} -o {policy} --json")

    main_run = arm.deploy(policy, work / "deploy-50hz.npz", 50.0, goals=20, seed=0)
    commands.append(main_run["command"])
    comparison = arm.comparison()
    compared = None
    if comparison is not None:
        other = arm.deploy(policy, work / "deploy-50hz-compared.npz", 50.0, goals=20, seed=0, flags=comparison.flags)
        commands.append(other["command"])
        compared = {"main": comparison.main, "other": comparison.other, "about": comparison.about, "run": other}
    apart = arm.deploy_to_another_process(policy, work / "deploy-50hz-apart.npz", goals=5)
    commands += [apart["emulate_command"] + "   (in another process; it prints the flags that reach it)", apart["command"]]
    normal = arm.deploy(policy, work / "deploy-50hz-normal.npz", 50.0, goals=5, seed=0, config=arm.normal_priority_config(work))
    commands.append(normal["command"])
    rows = arm.sweep(policy, work, args.sweep)
    commands.append(f"simrl deploy ... --rate R --random-goals 2 --seed 1 --duration 1   (R in {', '.join(f'{r:g}' for r in args.sweep)})")

    distances = [d for d in main_run["final_distances_mm"] if d is not None]
    described = read_log(work / "deploy-50hz.npz")[1]
    result = {
        "robot": args.robot,
        "bus_kind": arm.config.bus.kind,
        "bus_baud": getattr(arm.config.bus, "baud", None),  # a serial bus's line rate
        "config": None if args.config is None else str(args.config),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "load_average": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
        "commands": commands,
        "run_dir": str(run),
        "train": {
            "env_steps": trained.get("env_steps", final_eval.get("env_steps_trained")),
            "wall_time_s": trained.get("wall_time_s"),
            "randomization": args.randomization if args.run is None else final_eval.get("randomization"),
            "final_eval": f"{final_eval['successes']}/{final_eval['episodes']}" if "successes" in final_eval else final_eval,
        },
        "deploy_50hz": main_run,
        "distance_mean_mm": sum(distances) / len(distances) if distances else float("nan"),
        "distance_max_mm": max(distances) if distances else float("nan"),
        "targets_met": {
            "goals": main_run["goals_reached"] >= TARGETS["goals"],
            "jitter": main_run["jitter_p99_ms"] is not None and main_run["jitter_p99_ms"] < TARGETS["jitter_p99_ms"],
            "overruns": main_run["overruns"] == TARGETS["overruns"],
        },
        "comparison": compared,
        "deploy_50hz_emulator_apart": apart,
        "deploy_50hz_normal_priority": normal,
        "sweep": rows,
        "max_sustained_rate_hz": sustained(rows),
        "reality": described["reality"],
        "scheduling": described["scheduling"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"deploy_{args.robot}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"deploy_{args.robot}.md").write_text(markdown(result))
    print(json.dumps({k: result[k] for k in ("targets_met", "max_sustained_rate_hz")}))


if __name__ == "__main__":
    main()
