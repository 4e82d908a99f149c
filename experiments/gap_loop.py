"""The closed loop on the emulated OpenArm: deploy fails -> excite -> simrl gap -> train with the patch -> deploy again.

For each reality (``openarm-test``, and one arm drawn from ``randomization/strong.yaml``
with ``--strong-seed``), as a user would run it (each step a separate process):

    simrl train reach --robot openarm --randomization none|default --minutes M      (once, shared by the realities)
    simrl export RUN
    simrl deploy --robot openarm --excite mixed --duration D --emulate --reality R --log excite.npz
    simrl gap excite.npz --out gap/
    simrl train reach --robot openarm --randomization gap/randomization_patch.yaml --minutes M   (the same minutes)
    simrl deploy --robot openarm --policy P --emulate --reality R --random-goals 20 --seed 0     (each policy)

With ``--old-bridge REV``, the default-profile policy is also deployed by the
bridge of git revision REV (a worktree of it, run with this interpreter): the
loop as it was before the timing fix (the command computed from reply k left at
deadline k+1).

Writes experiments/results/gap.{md,json}. About 25 minutes on the 2-core machine
with the defaults (4 trainings of 3 minutes dominate).

    python experiments/gap_loop.py
    python experiments/gap_loop.py --minutes 2 --strong-seed 3 --old-bridge dae0cd8
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"


def simrl(*args: str, cwd: Path | None = None, check: bool = True) -> dict[str, Any]:
    print(f"== simrl {' '.join(args)}" + (f"   (in {cwd})" if cwd else ""), file=sys.stderr, flush=True)
    env = dict(os.environ)
    if cwd is not None:
        env["PYTHONPATH"] = str(cwd)  # the old revision's package, not the installed one
    done = subprocess.run(
        [sys.executable, "-m", "simrl", *args, "--json"], stdout=subprocess.PIPE, text=True, check=False, timeout=3600, cwd=cwd, env=env
    )
    if check and done.returncode not in (0, 1):  # 1: a deploy that reached too few goals or stopped on a fault is a result
        raise SystemExit(f"simrl {' '.join(args)} failed with exit {done.returncode}")
    result = json.loads(done.stdout) if done.stdout.strip() else {}
    result["exit_code"] = done.returncode
    return result


TRAINING: dict[str, dict[str, Any]] = {}  # policy path -> what its training run did (steps, wall time, last evaluation)


def train(randomization: str, minutes: float, logdir: Path, seed: int) -> Path:
    summary = simrl(
        "train", "reach", "--robot", "openarm", "--backend", "cpu", "--randomization", randomization,
        "--minutes", f"{minutes:g}", "--seed", str(seed), "--logdir", str(logdir), "--no-progress",
    )
    run = Path(summary["run_dir"])
    simrl("export", str(run), "-o", str(run / "policy.onnx"))
    TRAINING[str(run / "policy.onnx")] = training_of(run)
    return run / "policy.onnx"


def training_of(run: Path) -> dict[str, Any]:
    """Env steps, wall time and the last 200-goal evaluation of a run (its summary.json)."""
    summary = json.loads((run / "summary.json").read_text())
    return {"env_steps": summary.get("env_steps"), "wall_s": summary.get("wall_time_s"), "success": (summary.get("final_eval") or {}).get("success_rate")}


def deploy(policy: Path, reality: str, reality_seed: int, log: Path, goals: int, cwd: Path | None = None) -> dict[str, Any]:
    args = ["deploy", "--robot", "openarm", "--policy", str(policy), "--emulate", "--reality", reality]
    args += ["--reality-seed", str(reality_seed), "--random-goals", str(goals), "--seed", "0", "--log", str(log)]
    summary = simrl(*args, cwd=cwd)
    return {k: summary.get(k) for k in ("goals_reached", "goals_total", "final_distances_mm", "stop_reason", "obs_to_command_p50_ms", "exit_code")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training minutes of every policy")
    parser.add_argument("--excite-duration", type=float, default=60.0, help="seconds of excitation for simrl gap")
    parser.add_argument("--strong-seed", type=int, default=5, help="the reality drawn from randomization/strong.yaml (5: 56 ms latency, beyond the default profile)")
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--old-bridge", default=None, help="git revision whose bridge to deploy with as 'before the timing fix'")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gap-loop-"))
    realities = [("openarm-test", 0), ("strong", args.strong_seed)]
    clock = time.perf_counter()
    policies = {name: train(name, args.minutes, folder / "runs", args.seed) for name in ("none", "default")}
    old = None
    if args.old_bridge:
        old = folder / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.old_bridge], check=True)
    rows = []
    try:
        for reality, reality_seed in realities:
            tag = f"{reality}-{reality_seed}"
            excite = folder / f"excite-{tag}.npz"
            simrl("deploy", "--robot", "openarm", "--excite", "mixed", "--duration", f"{args.excite_duration:g}", "--emulate",
                  "--reality", reality, "--reality-seed", str(reality_seed), "--log", str(excite))
            gap = simrl("gap", str(excite), "--out", str(folder / f"gap-{tag}"))
            patched = train(str(folder / f"gap-{tag}" / "randomization_patch.yaml"), args.minutes, folder / "runs", args.seed)
            row: dict[str, Any] = {"reality": reality, "reality_seed": reality_seed, "gap": {
                "latency_s": gap["fit"]["latency_s"], "seconds": gap["seconds"],
                "values": {v["name"]: round(v["scale"], 3) for v in gap["fit"]["values"] if v["identifiable"]},
            }}
            for name, policy in (*policies.items(), ("patched", patched)):
                row[name] = deploy(policy, reality, reality_seed, folder / f"deploy-{tag}-{name}.npz", args.goals)
                row[name]["training"] = TRAINING[str(policy)]
            if old is not None:
                row["default_old_bridge"] = deploy(policies["default"], reality, reality_seed, folder / f"deploy-{tag}-old.npz", args.goals, cwd=old)
            row["reality_description"] = _reality(folder / f"deploy-{tag}-default.npz")
            rows.append(row)
    finally:
        if old is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    results = {"measured": time.strftime("%Y-%m-%d %H:%M"), "minutes": args.minutes, "excite_duration_s": args.excite_duration,
               "old_bridge": args.old_bridge, "rows": rows, "wall_s": time.perf_counter() - clock, "folder": str(folder)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gap.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "gap.md").write_text(markdown(results))
    print((RESULTS / "gap.md").read_text())


def _reality(log: Path) -> dict[str, Any]:
    import numpy as np

    with np.load(log) as data:
        return json.loads(str(data["meta"]))["reality"]


def markdown(r: dict[str, Any]) -> str:
    score = lambda d: "-" if not d else f"{d['goals_reached']}/{d['goals_total']}"  # noqa: E731
    lines = [
        "# The closed loop on the emulated OpenArm: deploy, excite, `simrl gap`, train with the patch, deploy again",
        "",
        f"Measured {r['measured']} on the 2-core machine by `python experiments/gap_loop.py --minutes {r['minutes']:g}"
        + (f" --old-bridge {r['old_bridge']}" if r["old_bridge"] else "") + "`: every policy PPO, "
        f"the recipe's steps or {r['minutes']:g} minutes, whichever came first, cpu backend, seed 0; excitation {r['excite_duration_s']:g} s `mixed`; 20 random goals (seed 0), reached within 3 cm.",
        "",
        "| reality | no randomization | default profile | patched (gap) | default, bridge before the fix |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        name = f"{row['reality']} (seed {row['reality_seed']})"
        lines.append(f"| {name} | {score(row['none'])} | {score(row['default'])} | {score(row['patched'])} | {score(row.get('default_old_bridge'))} |")
    lines.append("")
    for row in r["rows"]:
        trained = ", ".join(
            f"{name} {row[name]['training']['env_steps']:,} steps in {row[name]['training']['wall_s']:.0f} s" for name in ("none", "default", "patched") if row[name].get("training")
        )
        old = row.get("default_old_bridge") or {}
        stop = f"; the old bridge's run stopped: {old['stop_reason']}" if old and old.get("stop_reason") != "completed" else ""
        lines.append(f"- {row['reality']} (seed {row['reality_seed']}): trained {trained}{stop}")
    for row in r["rows"]:
        truth = row["reality_description"].get("command_latency_s", 0.0)
        seconds = ", ".join(f"{k} {v:.1f} s" for k, v in row["gap"]["seconds"].items())
        lines.append(
            f"- {row['reality']} (seed {row['reality_seed']}): fitted latency {row['gap']['latency_s'] * 1000:.1f} ms "
            f"(the reality's {truth * 1000:.1f} ms); `simrl gap` on the {r['excite_duration_s']:g} s excitation: {seconds}"
        )
    lines.append(
        "\nThe default profile covers at most 30 ms of latency (1 period + half a period); the strong draw's arm has 56 ms, and the "
        "patch centres the training worlds on what `simrl gap` measured there."
    )
    lines.append(f"\nWall time {r['wall_s'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
