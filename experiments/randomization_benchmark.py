"""Robustness from domain randomization on so101, and what randomization costs in throughput.

Runs, as a user would:

    simrl train reach --robot so101 --randomization none|default --json
    simrl eval RUN --episodes 200 --seed 1 --randomization none|strong --json
    simrl bench env --robot so101 --envs 4096 --backend cpu --randomization default --json

and writes experiments/results/randomization.{md,json}.

    python experiments/randomization_benchmark.py          # ~6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
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
    """The default profile cut in two: what the physics sees (per-world models) and what the env layer does."""
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


def bench(robot: str, profile: str | Path) -> dict:
    return simrl("bench", "env", "--robot", robot, "--envs", "4096", "--backend", "cpu", "--randomization", str(profile))


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
        "`simrl bench env --robot so101 --envs 4096 --backend cpu --randomization default`: the same env with and without",
        "the profile, measured alternately in one process (medians).",
        "",
        "| env | control steps/s |",
        "|---|---|",
        f"| no randomization | {bench['env_steps_per_s']:,.0f} |",
        f"| randomization default | {bench['randomized_env_steps_per_s']:,.0f} |",
        f"| raw mujoco.rollout | {bench['raw_rollout_steps_per_s']:,.0f} |",
        f"| **cost of randomization** | **{100 * bench['randomization_cost']:.1f} %** (target ≤ 15 %) |",
        "",
        f"The same command repeated ({len(record['bench_runs'])} runs in a row; this VM's run-to-run spread is several per cent): "
        + ", ".join(f"{100 * run['randomization_cost']:.1f} %" for run in record["bench_runs"])
        + "; the table above is the median run.",
        "",
        "Where the cost comes from: the same measurement with the default profile cut in two.",
        "",
        "| part of default | plain env | randomized env | cost |",
        "|---|---|---|---|",
    ]
    for label, part in record["breakdown"].items():
        lines.append(f"| {label} | {part['env_steps_per_s']:,.0f} | {part['randomized_env_steps_per_s']:,.0f} | {100 * part['randomization_cost']:.1f} % |")
    lines += [
        "",
        "At the raw `mujoco.rollout` level (no JAX; `python experiments/per_world_models.py`), 4096 per-world models",
        "cost 4-7 % over one shared model, whether they hold nominal values or the default profile's draws, and one",
        "randomized model shared by all worlds costs about the same: each world's step reads its own ~22 KB model,",
        "which no cache holds for 4096 worlds. The rest of the model-field cost is on the env side (drawing the",
        "fields at episode starts, carrying them in the state, handing them to the physics callback) and this VM's",
        "noise. The backend no longer compares every parameter of every world each step (1.9 ms per step at 4096",
        "worlds): the env tells it which worlds started an episode, the only ones whose physics was redrawn.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="so101")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "randomization")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the throughput measurement (the median is reported)")
    parser.add_argument("--bench-only", action="store_true", help="keep the robustness rows of OUT.json, redo the throughput part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="simrl-randomization-") as logdir:
        if args.bench_only:
            rows = json.loads(args.out.with_suffix(".json").read_text())["robustness"]
        else:
            rows = robustness(args.robot, Path(logdir), args.episodes, args.seed)
        print("== bench env", file=sys.stderr, flush=True)
        runs = sorted((bench(args.robot, "default") for _ in range(args.repeats)), key=lambda run: run["randomization_cost"])
        full = runs[len(runs) // 2]
        breakdown = {label: bench(args.robot, path) for label, path in split_profile(args.robot, Path(logdir)).items()}
    record = {"robot": args.robot, "episodes": args.episodes, "seed": args.seed, "robustness": rows, "bench": full, "bench_runs": runs, "breakdown": breakdown}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    write_markdown(record, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
