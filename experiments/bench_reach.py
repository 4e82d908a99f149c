"""simrl's PPO and SAC against Stable-Baselines3's, side by side: wall-clock and env steps to 95 % success.

Every algorithm trains the same env (so101 reach, cpu backend, the same
randomization) from its shipped recipe, as a user would run it:

    simrl train reach --robot so101 --algo A --backend cpu --seed S --until-success 0.95 --minutes CAP --json

with A in ppo, sac (ours) and sb3-ppo, sb3-sac (Stable-Baselines3 on the same
batched env through ``simrl.envs.make_sb3_vec_env``). Success is always our
Evaluator's X/200 on goals training never draws (2 cm), every ``eval_every``
iterations; wall-clock counts from the start of the `simrl train` process, so
imports and compilation are included (each run on an empty compile cache). A
run that does not reach 95 % within its cap counts as "did not reach 95 % in
CAP s". Writes experiments/results/bench_reach.{md,json,png}, with each
algorithm's time to 95 % split into startup, the first (compiling) iteration,
later iterations and evaluations.

    python experiments/bench_reach.py                            # 3 seeds x 4 algorithms: ~10 minutes, at most 66
    python experiments/bench_reach.py --seeds 1 --cap-minutes 1  # smoke test, ~4 minutes
    python experiments/bench_reach.py --report-only            # remake .md and .png from the .json

Needs the sb3 extra for the sb3-* algorithms (pip install -e '.[sb3]').
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

import matplotlib
from simrl_runs import run_evals, simrl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.95
# Per-algorithm wall-clock caps (minutes): ours get the 3-minute so101 budget, SB3 more room.
CAP_MINUTES = {"ppo": 3.0, "sac": 3.0, "sb3-ppo": 8.0, "sb3-sac": 8.0}
OURS = ("ppo", "sac")
COLORS = {"ppo": "tab:blue", "sac": "tab:green", "sb3-ppo": "tab:orange", "sb3-sac": "tab:red"}


def run_one(algo: str, seed: int, cap_minutes: float, randomization: str, logdir: Path) -> dict[str, Any]:
    """One capped training run to 95 %, and its curve of (wall-clock, env steps, success).

    Each run gets an empty compile cache, so it compiles everything as a user's first run does.
    """
    print(f"== {algo} seed {seed} (cap {cap_minutes:g} min)", file=sys.stderr, flush=True)
    cache = Path(tempfile.mkdtemp(prefix="xla-", dir=logdir))
    start = time.perf_counter()
    summary = simrl(
        "--compile-cache", str(cache), "train", "reach", "--robot", "so101", "--algo", algo, "--backend", "cpu", "--seed", str(seed),
        "--randomization", randomization, "--until-success", str(TARGET), "--minutes", str(cap_minutes),
        "--logdir", str(logdir), "--no-progress",
    )  # fmt: skip
    reached = summary["first_target_eval"]
    evals = run_evals(summary)
    return {
        "algo": algo,
        "seed": seed,
        "num_envs": summary["num_envs"],
        "cap_s": 60 * cap_minutes,
        "stop_reason": summary["stop_reason"],
        "process_wall_s": round(time.perf_counter() - start, 1),
        "compile_s": round(summary["compile_s"], 1),
        "env_steps": summary["env_steps"],
        "train_env_steps_per_s": summary["train_env_steps_per_s"],
        "time_to_95_s": reached["wall_time_s"] if reached else None,
        "steps_to_95": reached["env_steps"] if reached else None,
        "best_success": max((e["success_rate"] for e in evals), default=0.0),
        "time_split_at_95": reached.get("time_split") if reached else None,
        "curve": [(e["wall_time_s"], e["env_steps"], e["success_rate"]) for e in evals],
    }


def aggregate(runs: list[dict[str, Any]], algo: str) -> dict[str, Any]:
    """Mean, min and max over seeds of time and steps to 95 %; an unreached seed counts as its cap (a lower bound)."""
    mine = [r for r in runs if r["algo"] == algo]
    times = [r["time_to_95_s"] if r["time_to_95_s"] is not None else r["cap_s"] for r in mine]
    steps = [r["steps_to_95"] for r in mine if r["steps_to_95"] is not None]
    return {
        "algo": algo,
        "seeds": len(mine),
        "reached": sum(r["time_to_95_s"] is not None for r in mine),
        "time_mean_s": mean(times),
        "time_min_s": min(times),
        "time_max_s": max(times),
        "steps_mean": mean(steps) if steps else None,
        "steps_min": min(steps) if steps else None,
        "steps_max": max(steps) if steps else None,
        "cap_s": max(r["cap_s"] for r in mine),
        "num_envs": mine[0]["num_envs"],
    }


def speedup(stats: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Best SB3 mean time to 95 % over best simrl mean time; a lower bound when an SB3 seed never got there."""
    ours = [s for s in stats if s["algo"] in OURS and s["reached"] == s["seeds"]]
    theirs = [s for s in stats if s["algo"] not in OURS]
    if not ours or not theirs:
        return None
    best_ours = min(ours, key=lambda s: s["time_mean_s"])
    best_theirs = min(theirs, key=lambda s: s["time_mean_s"])
    return {
        "simrl": best_ours["algo"],
        "sb3": best_theirs["algo"],
        "ratio": best_theirs["time_mean_s"] / best_ours["time_mean_s"],
        "lower_bound": best_theirs["reached"] < best_theirs["seeds"],
    }


def _spread(stats: dict[str, Any], name: str, digits: int) -> str:
    """``mean (min–max)`` of the figure ``name`` (``time``: ``time_mean_s`` ..., ``steps``: ``steps_mean`` ...)."""
    unit = "_s" if name == "time" else ""
    low, avg, high = (stats[f"{name}_{which}{unit}"] for which in ("min", "mean", "max"))
    return f"{avg:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def time_split_lines(runs: list[dict[str, Any]], stats: list[dict[str, Any]], ratio: dict[str, Any] | None) -> list[str]:
    """Where each algorithm's time to 95 % went (means over the seeds that got there), and what a 10x speed-up would leave."""
    split_keys = ("startup_s", "first_iteration_s", "iterations_s", "evaluations_s")
    rows, fixed = [], {}
    for s in stats:
        splits = [(r["time_to_95_s"], r["time_split_at_95"]) for r in runs if r["algo"] == s["algo"] and r.get("time_split_at_95")]
        if not splits:
            continue
        parts = [mean(split[k] for _, split in splits) for k in split_keys]
        rest = mean(t for t, _ in splits) - sum(parts)
        fixed[s["algo"]] = parts[0] + parts[1]
        rows.append(f"| {s['algo']} | {len(splits)} | " + " | ".join(f"{v:.1f}" for v in (*parts, rest)) + " |")
    if not rows:
        return []
    lines = [
        "",
        "## Where the time to 95 % goes",
        "",
        "Means over the seeds that reached 95 %, in seconds, from each run's `time_split` at its first evaluation at 95 %",
        "(startup: process start to the first iteration, i.e. imports, building the envs, reset; the first iteration compiles",
        "the env step and the update, or for SB3 the env step, and warms torch up; the rest is logging and checkpoints).",
        "",
        "| algorithm | seeds | startup | first iteration | later iterations | evaluations | rest |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if ratio and ratio["simrl"] in fixed:
        sb3_time = next(s["time_mean_s"] for s in stats if s["algo"] == ratio["sb3"])
        lines += [
            "",
            f"A 10x speed-up over {ratio['sb3']} needs simrl at 95 % within {sb3_time / 10:.1f} s on this machine. "
            f"simrl {ratio['simrl']}'s startup and first, compiling iteration alone take {fixed[ratio['simrl']]:.1f} s, before any learning.",
        ]
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> None:
    meta, runs = report["meta"], report["runs"]
    stats = [aggregate(runs, algo) for algo in dict.fromkeys(r["algo"] for r in runs)]
    lines = [
        "# so101 reach: simrl against Stable-Baselines3, wall-clock and env steps to 95 % success",
        "",
        f"Made by `python experiments/bench_reach.py` on {meta['measured']} ({meta['cpus']} CPUs, {meta['machine']}).",
        f"Same env for all: so101 reach, cpu backend, randomization {meta['randomization']}; each algorithm from its",
        "shipped recipe (experiments/recipes/reach-so101-<algo>.yaml) via `simrl train reach --until-success 0.95 --minutes CAP`.",
        "Success: our Evaluator, 200 goals training never draws, 2 cm, every `eval_every` iterations.",
        "Wall-clock counts from the start of the `simrl train` process (imports and compilation included;",
        "each run starts on an empty compile cache, as a user's first run does).",
        "",
        "| algorithm | envs | seeds at 95 % | time to 95 %, s: mean (min–max) | env steps to 95 %: mean (min–max) |",
        "|---|---|---|---|---|",
    ]
    for s in stats:
        censored = s["reached"] < s["seeds"]
        time_cell = ("≥ " if censored else "") + _spread(s, "time", 1)
        if s["reached"] == 0:
            time_cell = f"did not reach 95 % in {s['cap_s']:.0f} s"
        steps_cell = _spread(s, "steps", 0) if s["steps_mean"] is not None else "—"
        lines.append(f"| {s['algo']} | {s['num_envs']} | {s['reached']}/{s['seeds']} | {time_cell} | {steps_cell} |")
    ratio = speedup(stats)
    if ratio:
        bound = "at least " if ratio["lower_bound"] else ""
        note = " (SB3 did not reach 95 % within its cap in every seed, so its time is a lower bound)" if ratio["lower_bound"] else ""
        lines += [
            "",
            f"simrl's speed-up, mean wall-clock to 95 % of the best SB3 algorithm ({ratio['sb3']}) over the best simrl one "
            f"({ratio['simrl']}): **{bound}{ratio['ratio']:.2f}x**{note}; below 1, SB3 got there first.",
        ]
    elif any(s["algo"] in OURS for s in stats) and any(s["algo"] not in OURS for s in stats):
        lines += ["", "No ratio: no simrl algorithm reached 95 % in every seed."]
    lines += time_split_lines(runs, stats, ratio)
    lines += [
        "",
        "Unreached seeds count as their cap in the means (marked ≥).",
        "",
        "## Every run",
        "",
        "| algorithm | seed | stop | time to 95 % (s) | env steps to 95 % | best eval success | env steps | training env steps/s | compile (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        t95 = f"{r['time_to_95_s']:.1f}" if r["time_to_95_s"] is not None else f"did not reach 95 % in {r['cap_s']:.0f} s"
        s95 = f"{r['steps_to_95']:,}" if r["steps_to_95"] is not None else "—"
        rate = f"{r['train_env_steps_per_s']:,.0f}" if r["train_env_steps_per_s"] else "—"
        lines.append(
            f"| {r['algo']} | {r['seed']} | {r['stop_reason']} | {t95} | {s95} | {100 * r['best_success']:.1f} % | {r['env_steps']:,} | {rate} | {r['compile_s']:.1f} |"
        )
    lines += ["", f"![success vs wall-clock and env steps]({path.with_suffix('.png').name})", ""]
    path.write_text("\n".join(lines))


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    fig, (by_time, by_steps) = plt.subplots(1, 2, figsize=(11, 4))
    labelled: set[str] = set()
    for r in runs:
        if not r["curve"]:
            continue
        wall, steps, success = zip(*r["curve"])
        label = None if r["algo"] in labelled else f"{r['algo']} ({r['num_envs']} envs)"
        labelled.add(r["algo"])
        style = {"color": COLORS.get(r["algo"]), "ls": "-" if r["algo"] in OURS else "--", "lw": 1.2, "label": label}
        by_time.plot(wall, [100 * s for s in success], **style)
        by_steps.plot(steps, [100 * s for s in success], **style)
    for ax, xlabel in ((by_time, "wall-clock incl. compilation (s)"), (by_steps, "env steps")):
        ax.axhline(100 * TARGET, color="grey", lw=0.8, ls=":")
        ax.set(xlabel=xlabel, ylabel="eval success, 200 goals (%)", ylim=(0, 102))
    by_time.set_xlim(left=0)
    by_steps.set_xscale("log")
    by_time.set_title("so101 reach, cpu backend: simrl (solid) vs SB3 (dashed)")
    by_time.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(report: dict[str, Any], json_path: Path) -> None:
    write_markdown(report, json_path.with_suffix(".md"))
    plot(report["runs"], json_path.with_suffix(".png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 for every algorithm")
    parser.add_argument("--algos", nargs="+", default=list(CAP_MINUTES), choices=list(CAP_MINUTES))
    parser.add_argument("--cap-minutes", type=float, help="one wall-clock cap for every algorithm (default: 3 for ours, 8 for SB3)")
    parser.add_argument("--randomization", default="none", help="profile every run trains and is evaluated with")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_reach", help="results path without suffix")
    parser.add_argument("--report-only", action="store_true", help="remake the .md and .png from OUT.json")
    parser.add_argument("--json", action="store_true", help="print the per-algorithm figures as JSON instead of the markdown")
    args = parser.parse_args()
    json_path = args.out.with_suffix(".json")
    if args.report_only:
        report = json.loads(json_path.read_text())
    else:
        meta = {
            "measured": time.strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "randomization": args.randomization,
            "seeds": args.seeds,
        }
        with tempfile.TemporaryDirectory(prefix="simrl-bench-reach-") as logdir:
            runs = [
                run_one(algo, seed, args.cap_minutes or CAP_MINUTES[algo], args.randomization, Path(logdir))
                for seed in range(args.seeds)
                for algo in args.algos
            ]
        report = {"meta": meta, "runs": runs}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    write_reports(report, json_path)
    if args.json:
        stats = [aggregate(report["runs"], algo) for algo in dict.fromkeys(r["algo"] for r in report["runs"])]
        print(json.dumps({"algorithms": stats, "speedup": speedup(stats)}, indent=2))
    else:
        print(json_path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
