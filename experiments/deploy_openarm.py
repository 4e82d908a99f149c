"""OpenArm end to end: train reach, export to ONNX, deploy it on the emulated arm, and find the loop's top rate.

Runs, as a user would (each a separate process):

    simrl train reach --robot openarm --backend cpu --randomization default --json   (the shipped recipe)
    simrl export RUN -o RUN/policy.onnx --json
    simrl deploy --robot openarm --policy RUN/policy.onnx --emulate --reality deploy/realities/openarm-test.yaml \\
        --random-goals 20 --seed 0 --rate 50 --json --log ...            (CAN FD, as deploy/openarm.yaml ships)
    simrl deploy ... --no-fd                                             (the same 20 goals over classic CAN)
    simrl deploy ... --rate R --random-goals 2 --duration 1   for R in --sweep (the loop timing at higher rates)

and writes experiments/results/deploy_openarm.{md,json}: goals reached X/20 at
3 cm, loop period and jitter, overruns (over CAN FD and over classic CAN), the
reality the arm had. Training takes about 2 minutes on an idle 2-core machine
(5 under load); the deploys about 2.

    python experiments/deploy_openarm.py                      # train, export, deploy, sweep
    python experiments/deploy_openarm.py --run runs/openarm-reach-...   # reuse a trained run
    python experiments/deploy_openarm.py --sweep 100 200 500 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simrl_runs import simrl

from simrl.deploy.log import read_log

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
REALITY = ROOT / "deploy" / "realities" / "openarm-test.yaml"
TARGETS = {"goals": 18, "jitter_p99_ms": 0.5, "overruns": 0}  # the targets for 20 goals at 50 Hz


def deploy(
    policy: Path, log: Path, rate: float, goals: int, seed: int, duration: float | None = None, config: Path | None = None, fd: bool = True
) -> dict[str, Any]:
    """One `simrl deploy --emulate` run (``fd`` false: --no-fd); its JSON summary whatever it exits with (a fault is a result, not a crash)."""
    args = ["deploy", "--robot", "openarm", "--policy", str(policy), "--emulate", "--reality", str(REALITY)]
    args += ["--random-goals", str(goals), "--seed", str(seed), "--rate", f"{rate:g}", "--log", str(log), "--json"]
    if duration is not None:
        args += ["--duration", f"{duration:g}"]
    if config is not None:
        args += ["--config", str(config)]
    if not fd:
        args += ["--no-fd"]
    print(f"== simrl {' '.join(args)}", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-m", "simrl", *args], stdout=subprocess.PIPE, text=True, timeout=600)
    summary = json.loads(done.stdout)
    summary["exit_code"] = done.returncode
    summary["command"] = "simrl " + " ".join(args)
    return summary


def log_meta(log: Path) -> dict[str, Any]:
    """A deploy log's description: the reality (``Reality.describe()``), scheduling, reply timeout, ..."""
    return read_log(log)[1]


def sweep(policy: Path, logdir: Path, rates: list[float]) -> list[dict[str, Any]]:
    """Loop timing at each rate on 2 goals of 1 s (the policy steps faster than it trained: only the timing counts)."""
    rows = []
    for rate in rates:
        log = logdir / f"sweep-{rate:g}hz.npz"
        s = deploy(policy, log, rate, goals=2, seed=1, duration=1.0)
        rows.append(
            {
                "rate_hz": rate,
                "stop_reason": s["stop_reason"],
                "detail": s["detail"],
                "policy_ticks": s["policy_ticks"],
                "overruns": s["overruns"],
                "period_p50_ms": s["period_p50_ms"],
                "period_p99_ms": s["period_p99_ms"],
                "jitter_p99_ms": s["jitter_p99_ms"],
                "read_p50_ms": s["read_p50_ms"],
                "read_max_ms": s["read_max_ms"],
                "obs_to_command_p99_ms": s["obs_to_command_p99_ms"],
                "reply_timeout_ms": log_meta(log)["reply_timeout_s"] * 1000,
                "inference_p99_ms": s["inference_p99_ms"],
                "stale_replies": s["stale_replies"],
            }
        )
    return rows


def normal_priority_config(folder: Path) -> Path:
    """deploy/openarm.yaml with the loop at normal scheduling priority: what a user without real-time rights gets."""
    text = (ROOT / "deploy" / "openarm.yaml").read_text()
    assert "realtime_priority: 10" in text
    path = folder / "openarm-normal-priority.yaml"
    path.write_text(text.replace("realtime_priority: 10", "realtime_priority: null"))
    return path


def sustained(rows: list[dict[str, Any]]) -> float | None:
    """The highest rate that completed with no overrun (single stale replies are held through, and counted apart)."""
    ok = [r["rate_hz"] for r in rows if r["stop_reason"] == "completed" and r["overruns"] == 0]
    return max(ok) if ok else None


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _training_line(train: dict[str, Any]) -> str:
    took = f"in {train['wall_time_s']:.0f} s" if train["wall_time_s"] is not None else "(a run reused with --run)"
    return (
        f"Training: {train['env_steps']:,} env steps {took}, randomization {train['randomization']}; "
        f"`simrl eval` in simulation: {train['final_eval']} within 2 cm."
    )


def _can_row(name: str, run: dict[str, Any]) -> str:
    distances = [d for d in run["final_distances_mm"] if d is not None]
    mean = sum(distances) / len(distances) if distances else float("nan")
    return (
        f"| {name} | {run['goals_reached']}/{run['goals_total']} | {mean:.1f} / {max(distances, default=float('nan')):.1f} "
        f"| {_fmt(run['jitter_p99_ms'])} / {_fmt(run['jitter_max_ms'])} | {run['overruns']} | {_fmt(run['read_p50_ms'])} / {_fmt(run['read_max_ms'])} "
        f"| {run['stale_replies']} | {run['stop_reason']} |"
    )


def markdown(result: dict[str, Any]) -> str:
    main, normal, classic = result["deploy_50hz"], result["deploy_50hz_normal_priority"], result["deploy_50hz_classic"]
    met = result["targets_met"]
    lines = [
        "# OpenArm: trained, exported, deployed on the emulated arm",
        "",
        f"Measured {result['measured']} on {result['cpus']} CPUs (shared, loaded: load average {result['load_average']}) by "
        "`python experiments/deploy_openarm.py`.",
        "",
        "## Commands",
        "",
        "```",
        *result["commands"],
        "```",
        "",
        _training_line(result["train"]),
        "",
        "## 20 goals at 50 Hz on the emulated arm (reality `openarm-test`), CAN FD",
        "",
        "Over CAN FD as `deploy/openarm.yaml` ships (1 Mbit/s nominal, 5 Mbit/s data, every frame FD with the bit",
        "rate switch on, the emulated motors set to CAN FD).",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| goals reached within 3 cm | {main['goals_reached']}/{main['goals_total']} | >= {TARGETS['goals']}/20 ({'met' if met['goals'] else 'missed'}) |",
        f"| final distance mean / max (mm) | {result['distance_mean_mm']:.1f} / {result['distance_max_mm']:.1f} | |",
        f"| loop period p50 / p99 (ms) | {_fmt(main['period_p50_ms'])} / {_fmt(main['period_p99_ms'])} | 20 |",
        f"| jitter p99 / max (ms), abs(period - 20 ms) | {_fmt(main['jitter_p99_ms'])} / {_fmt(main['jitter_max_ms'])} | < {TARGETS['jitter_p99_ms']} ({'met' if met['jitter'] else 'missed'}) |",
        f"| overruns | {main['overruns']} | {TARGETS['overruns']} ({'met' if met['overruns'] else 'missed'}) |",
        f"| state read p50 / max (ms), requests out to last reply in | {_fmt(main['read_p50_ms'])} / {_fmt(main['read_max_ms'])} | |",
        f"| observation to command out p50 / p99 (ms) | {_fmt(main['obs_to_command_p50_ms'])} / {_fmt(main['obs_to_command_p99_ms'])} | |",
        f"| observation + inference + mapping p99 (ms) | {_fmt(main['inference_p99_ms'])} | |",
        f"| safety events | {main['safety_events'] or 'none'} | |",
        f"| stale replies (motor-ticks) | {main['stale_replies']} | |",
        f"| stop | {main['stop_reason']}, exit {main['exit_code']}, motors torque off after disable {main['final_enabled'].count(False)}/{len(main['final_enabled'])} | |",
        "",
        f"Loop thread scheduling: {result['scheduling']}. Final distances (mm): {', '.join(_fmt(d, 1) for d in main['final_distances_mm'])}.",
        "",
        "The same 20 goals over CAN FD and over classic CAN (`--no-fd`: the bus and the emulated motors on CAN 2.0):",
        "",
        "| CAN | goals | final distance mean / max (mm) | jitter p99 / max (ms) | overruns | state read p50 / max (ms) | stale replies | stop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        _can_row("FD", main),
        _can_row("classic", classic),
        "",
        "The same at normal scheduling priority (`timing.realtime_priority: null`, 5 goals), what a user without",
        "real-time rights gets on this loaded machine:",
        "",
        "| goals | period p99 (ms) | jitter p99 / max (ms) | lateness p99 (ms) | overruns | stale replies |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {normal['goals_reached']}/{normal['goals_total']} | {_fmt(normal['period_p99_ms'])} | {_fmt(normal['jitter_p99_ms'])} / {_fmt(normal['jitter_max_ms'])} "
        f"| {_fmt(normal['lateness_p99_ms'])} | {normal['overruns']} | {normal['stale_replies']} |",
        "",
        "## Highest rate without overruns (2 goals x 1 s each)",
        "",
        "At rates above the policy's 50 Hz the policy steps faster than it trained (each action moves the",
        "targets as far as at 50 Hz), so only the loop's timing is measured here, not reaching.",
        "",
        "| rate (Hz) | stop | policy ticks | overruns | period p50 / p99 (ms) | jitter p99 (ms) | read p50 / max (ms) | obs to command p99 (ms) | reply timeout (ms) | stale replies |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["sweep"]:
        lines.append(
            f"| {r['rate_hz']:g} | {r['stop_reason']} | {r['policy_ticks']} | {r['overruns']} | {_fmt(r['period_p50_ms'])} / {_fmt(r['period_p99_ms'])} "
            f"| {_fmt(r['jitter_p99_ms'])} | {_fmt(r['read_p50_ms'])} / {_fmt(r['read_max_ms'])} | {_fmt(r['obs_to_command_p99_ms'])} "
            f"| {_fmt(r['reply_timeout_ms'])} | {r['stale_replies']} |"
        )
    top = result["max_sustained_rate_hz"]
    lines += [
        "",
        f"Highest rate completed with no overrun: {'none' if top is None else f'{top:g} Hz'} (a stale reply is one motor missing",
        "one tick's reply: the loop holds the targets that tick and stops only if the motor stays silent for 2 ticks).",
        "",
        "What sets the ceiling is the exchange, not the loop's own work: the emulated motors (Python threads",
        "behind python-can's virtual bus) answer 8 commands in about 1 ms, and a reply must arrive within",
        "40 % of the period (`bus.reply_timeout_s`, capped; a tick waits on two exchanges), so above a few hundred Hz every motor reads as",
        "silent and the run stops safely, during the home ramp. A real 1 Mbit/s classic CAN bus is no faster:",
        "an 8-byte standard frame is 111 bits (0.11 ms) before bit stuffing, so a state read and a command",
        "(8 + 8 frames each) occupy about 3.6 ms of bus time per tick. CAN FD at 5 Mbit/s data halves that:",
        "an 8-byte FD frame is about 29 bits at 1 Mbit/s (arbitration, acknowledge, end of frame) and 97 at",
        "5 Mbit/s (ESI, DLC, data, stuff count, CRC-17 with its fixed stuff bits) before dynamic stuffing, about",
        "0.05 ms (ISO 11898-1:2015 frame format), so the 32 frames of a tick take about 1.6 ms.",
        "",
        "## The reality the emulated arm had (`Reality.describe()`)",
        "",
        "```json",
        json.dumps(result["reality"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="A trained openarm reach run to use instead of training one.")
    parser.add_argument("--randomization", default="default", help="Profile to train with (default: default).")
    parser.add_argument("--sweep", type=float, nargs="*", default=[100.0, 200.0, 300.0, 500.0, 1000.0], help="Loop rates (Hz) to time.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Folder for deploy_openarm.{md,json}.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="deploy-openarm-"))
    commands = []
    if args.run is None:
        train_args = ["train", "reach", "--robot", "openarm", "--backend", "cpu", "--randomization", args.randomization, "--logdir", str(work / "runs"), "--no-progress"]
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

    main_run = deploy(policy, work / "deploy-50hz.npz", 50.0, goals=20, seed=0)
    commands.append(main_run["command"])
    classic = deploy(policy, work / "deploy-50hz-classic.npz", 50.0, goals=20, seed=0, fd=False)
    commands.append(classic["command"])
    normal = deploy(policy, work / "deploy-50hz-normal.npz", 50.0, goals=5, seed=0, config=normal_priority_config(work))
    commands.append(normal["command"])
    rows = sweep(policy, work, args.sweep)
    commands.append(f"simrl deploy ... --rate R --random-goals 2 --seed 1 --duration 1   (R in {', '.join(f'{r:g}' for r in args.sweep)})")

    distances = [d for d in main_run["final_distances_mm"] if d is not None]
    described = log_meta(work / "deploy-50hz.npz")
    result = {
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
        "deploy_50hz_classic": classic,
        "deploy_50hz_normal_priority": normal,
        "sweep": rows,
        "max_sustained_rate_hz": sustained(rows),
        "reality": described["reality"],
        "scheduling": described["scheduling"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deploy_openarm.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "deploy_openarm.md").write_text(markdown(result))
    print(json.dumps({**{k: result[k] for k in ("targets_met", "max_sustained_rate_hz")}, "goals_fd_classic": [main_run["goals_reached"], classic["goals_reached"]]}))


if __name__ == "__main__":
    main()
