"""Robustness from domain randomization on so101, and what randomization costs in throughput.

Runs, as a user would:

    simrl train reach --robot so101 --randomization none|default --json
    simrl eval RUN --episodes 200 --seed 1 --randomization none|strong --json
    simrl bench env --robot so101 --envs 4096 --backend cpu --randomization default --json

and writes experiments/results/randomization.{md,json}.

    python experiments/randomization_benchmark.py               # ~35 minutes on 2 cores
    python experiments/randomization_benchmark.py --bench-only  # the throughput part alone, ~25 minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from simrl_runs import simrl

RESULTS = Path(__file__).resolve().parent / "results"
TRAINED_WITH = ("none", "default")
EVALUATED_UNDER = ("none", "strong")


def robustness(robot: str, logdir: Path, episodes: int, seed: int) -> list[dict]:
    rows = []
    for profile in TRAINED_WITH:
        print(f"== training {robot} with randomization {profile}", file=sys.stderr, flush=True)
        summary = simrl("train", "reach", "--robot", robot, "--backend", "cpu", "--randomization", profile, "--logdir", str(logdir), "--no-progress")
        row = {"trained_with": profile, "train_wall_s": round(summary["wall_time_s"], 1), "env_steps": summary["env_steps"]}
        for condition in EVALUATED_UNDER:
            figures = simrl("eval", summary["run_dir"], "--episodes", str(episodes), "--seed", str(seed), "--randomization", condition)
            row[condition] = figures
        rows.append(row)
    return rows


ENV_LAYER_KINDS = ("latency_steps", "latency_substeps", "action_noise", "obs_joint_pos_noise", "obs_joint_vel_noise", "obs_ee_noise", "encoder_resolution")


def split_profile(robot: str, folder: Path) -> dict[str, Path]:
    """The default profile cut in two: what the physics sees (per-world model fields) and what the env layer does."""
    from simrl.randomization.profile import load_profile

    profile, _ = load_profile("default", robot)
    entries = profile.model_dump(mode="json", exclude_none=True)
    parts = {
        "model fields only": {k: v for k, v in entries.items() if k not in ENV_LAYER_KINDS},
        "env layer only (latency, noise, quantization)": {k: v for k, v in entries.items() if k in ENV_LAYER_KINDS or k == "description"},
    }
    paths = {}
    for i, (label, part) in enumerate(parts.items()):
        paths[label] = folder / f"part{i}.yaml"
        paths[label].write_text(json.dumps(part))  # JSON is YAML
    return paths


def bench(robot: str, profile: str | Path, repeats: int) -> dict:
    return simrl("bench", "env", "--robot", robot, "--envs", "4096", "--backend", "cpu", "--randomization", str(profile), "--repeats", str(repeats))


def per_world_models(robot: str, runs: int = 3) -> dict:
    """The raw physics cost of per-world fields (``per_world_models.py``), one control step per call as in the env.

    One run's rows swing by several percent on this VM (a quiet-machine run gave +0.4 % for expanded rows, another
    +8.0 %), so the script runs ``runs`` times: per row the median run and the range of the cost.
    """
    script = Path(__file__).resolve().parent / "per_world_models.py"
    measured = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, str(script), "--robot", robot, "--json"], stdout=subprocess.PIPE, text=True, check=True)
        measured.append(json.loads(done.stdout))
    rows = {}
    for name in measured[0]:
        costs = [run[name]["cost"] for run in measured]
        rows[name] = {
            "ms_per_step": statistics.median(run[name]["ms_per_step"] for run in measured),
            "cost": statistics.median(costs),
            "cost_range": [min(costs), max(costs)],
        }
    return rows


def cost_cell(run: dict) -> str:
    low, high = run["randomization_cost_quartiles"]
    return f"{100 * run['randomization_cost']:.1f} % ({100 * low:.1f} to {100 * high:.1f})"


def write_markdown(record: dict, path: Path) -> None:
    lines = [
        f"# Domain randomization on {record['robot']}: robustness and cost",
        "",
        "Made by `python experiments/randomization_benchmark.py`: the default training command with",
        "`--randomization none` and with `--randomization default`, each policy then evaluated by",
        f"`simrl eval RUN --episodes {record['episodes']} --seed {record['seed']} --randomization none|strong` (goals never drawn in training).",
        "",
        "| trained with | training (s) | eval under none | eval under strong | p95 distance under strong (mm) |",
        "|---|---|---|---|---|",
    ]
    for row in record["robustness"]:
        cells = [f"{row[c]['successes']}/{row[c]['episodes']} ({100 * row[c]['success_rate']:.1f} %)" for c in EVALUATED_UNDER]
        lines.append(f"| {row['trained_with']} | {row['train_wall_s']:.0f} | {cells[0]} | {cells[1]} | {1000 * row['strong']['p95_final_distance']:.1f} |")
    bench = record["bench"]
    lines += [
        "",
        f"## Throughput cost ({bench['num_envs']} envs, {bench['backend']} backend)",
        "",
        f"`simrl bench env --robot so101 --envs 4096 --backend cpu --randomization default --repeats {bench['repeats']}`, run "
        f"{len(record['bench_runs'])} times. Each run measures the env without and with the profile back to back "
        f"{bench['repeats']} times, flipping the order every round; the cost is the median over those pairs (quartiles in brackets),",
        "so the VM's slow swings in speed (10-20 % over minutes) cancel within a pair.",
        "",
        "| run | no randomization (steps/s) | randomization default (steps/s) | cost: median of pairs (quartiles) |",
        "|---|---|---|---|",
    ]
    for i, run in enumerate(record["bench_runs"], 1):
        lines.append(f"| {i} | {run['env_steps_per_s']:,.0f} | {run['randomized_env_steps_per_s']:,.0f} | {cost_cell(run)} |")
    lines += [
        "",
        f"**Cost of randomization: {100 * bench['randomization_cost']:.1f} %** (the median run; target ≤ 5 %). "
        f"Raw `mujoco.batch` in the median run: {bench['raw_batch_steps_per_s']:,.0f} steps/s (raw `mujoco.rollout`: "
        f"{bench['raw_rollout_steps_per_s']:,.0f}); the plain env reaches {100 * bench['ratio']:.0f} % of raw `mujoco.batch`.",
        "",
        "Where the cost comes from: the same measurement with the default profile cut in two.",
        "",
        "| part of default | cost: median of pairs (quartiles) |",
        "|---|---|",
    ]
    for label, part in record["breakdown"].items():
        lines.append(f"| {label} | {cost_cell(part)} |")
    lines += [
        "",
        "At the raw physics level, with no JAX at all, one control step (4 substeps) per call as the env makes it",
        "(`python experiments/per_world_models.py`, 4096 worlds, cost against one shared nominal model on `mujoco.batch`):",
        "",
        "| worlds stepped | ms per control step (median of 3 runs) | cost: median (range over the runs) |",
        "|---|---|---|",
        *(
            f"| {name} | {row['ms_per_step']:.1f} | {100 * row['cost']:.1f} % ({100 * row['cost_range'][0]:.1f} to {100 * row['cost_range'][1]:.1f}) |"
            for name, row in record["per_world_models"].items()
        ),
        "",
        "The cpu backend runs on `mujoco.batch`: one model whose randomized fields are expanded to a row per world,",
        "a few hundred bytes each, written only for the worlds that start an episode. Neither the expansion nor the",
        "drawn values cost more than a few percent over one shared model, about what one run of this table swings by",
        "(the ranges), nor does sharing 256 draws between blocks of worlds, which is why `physics_variants` is gone. The",
        "backend before it stepped a 15 KB `MjModel` copy per world with `mujoco.rollout`, 60 MB that no core's L2 cache",
        "held, read again every control step: the last row, and most of the 13 % this page reported then.",
        "",
        "On the env side (per control step at 4096 worlds):",
        "",
        "- the observation's end effector is computed from the *measured* joints, so under sensor noise the forward",
        "  kinematics runs twice; written as elementwise arithmetic over the batch instead of batched 3x3 matmuls it",
        "  takes 0.33 ms instead of 3.0 ms (`simrl/kinematics.py`);",
        "- the 11 per-world model fields (4 MB) reach the physics callback only on steps where some world starts an",
        "  episode, not on every step (1.5 ms), and the backend writes only those worlds' rows, comparing nothing;",
        "- left: the per-step noise draws, about 0.9 ms per step for the default profile's 18 values per world",
        "  (threefry on this CPU; drawing them in one call per distribution instead of one per kind measured no faster),",
        "  and the latency history.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="so101")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "randomization")
    parser.add_argument("--runs", type=int, default=5, help="runs of the throughput measurement (the median run is reported)")
    parser.add_argument("--repeats", type=int, default=9, help="back-to-back pairs in each run")
    parser.add_argument("--bench-only", action="store_true", help="keep the robustness rows of OUT.json, redo the throughput part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="simrl-randomization-") as logdir:
        if args.bench_only:
            rows = json.loads(args.out.with_suffix(".json").read_text())["robustness"]
        else:
            rows = robustness(args.robot, Path(logdir), args.episodes, args.seed)
        print("== bench env", file=sys.stderr, flush=True)
        runs = [bench(args.robot, "default", args.repeats) for _ in range(args.runs)]
        full = sorted(runs, key=lambda run: run["randomization_cost"])[len(runs) // 2]
        breakdown = {label: bench(args.robot, path, args.repeats) for label, path in split_profile(args.robot, Path(logdir)).items()}
    physics = per_world_models(args.robot)
    record = {
        "robot": args.robot, "episodes": args.episodes, "seed": args.seed, "robustness": rows,
        "bench": full, "bench_runs": runs, "breakdown": breakdown, "per_world_models": physics,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    write_markdown(record, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
