"""GPU figures in one run: simrl PPO vs Brax PPO to 95 % reach on MJX, and MJX env throughput.

Meant for a lent GPU machine that has JAX with CUDA but not MuJoCo (the wheels
travel with the repo, see experiments/README.md). In order, each part under its
own time cap so a slow part cannot starve the rest, and results are written
after every part (a cut-off run still leaves figures):

1. ``simrl train reach --robot so101 --backend mjx --envs 4096 --until-success 0.95``
   — wall-clock to 95 % from the start of the process, compilation included, for each
   ``--seeds`` on an empty compile cache and, with ``--warm``, again on the cache that run filled;
2. Brax's own PPO on the same env and settings (experiments/brax_baseline.py);
3. ``bench_env`` (the code behind ``simrl bench env``) on mjx for so101 and fr3 at
   1,024 / 4,096 / 16,384 envs, impl ``jax``, and impl ``warp`` where it runs.

    python experiments/gpu_bench.py --out experiments/results/gpu
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from simrl_runs import first_at, run_evals, simrl

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.95


def simrl_ppo(robot: str, envs: int, minutes: float, logdir: Path, seed: int, cache: Path, cache_state: str) -> dict:
    """simrl's default PPO on mjx until 95 %: time from process start to the first eval at or above it.

    ``cache`` is the compile cache folder the run uses: empty (``cache_state`` "cold": everything compiles)
    or filled by an earlier run of the same command ("warm": what a user's second run sees).
    """
    start = time.perf_counter()
    summary = simrl(
        "--compile-cache", str(cache), "train", "reach", "--robot", robot, "--backend", "mjx", "--envs", str(envs),
        "--seed", str(seed), "--until-success", str(TARGET), "--minutes", str(minutes), "--logdir", str(logdir),
        "--no-progress", timeout_s=60 * minutes + 120,
    )  # fmt: skip
    evals = run_evals(summary)
    reached = first_at(evals, TARGET)
    return {
        "trainer": "simrl-ppo",
        "robot": robot,
        "num_envs": envs,
        "seed": seed,
        "compile_cache": cache_state,
        "time_to_target_s": reached["wall_time_s"] if reached else None,
        "steps_to_target": reached["env_steps"] if reached else None,
        "process_wall_s": round(time.perf_counter() - start, 1),
        "compile_s": summary.get("compile_s"),
        "train_env_steps_per_s": summary.get("train_env_steps_per_s"),
        "curve": [{"env_steps": e["env_steps"], "wall_time_s": e["wall_time_s"], "success_rate": e["success_rate"]} for e in evals],
    }


def brax_ppo(robot: str, envs: int, minutes: float) -> dict:
    """Brax's PPO on the same env (experiments/brax_baseline.py, which prints one JSON line last)."""
    script = Path(__file__).with_name("brax_baseline.py")
    command = [sys.executable, str(script), "--robot", robot, "--envs", str(envs), "--minutes", str(minutes), "--json"]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=60 * minutes + 120, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def throughput(robots: list[str], sizes: list[int], impls: list[str], deadline: float, steps: int, repeats: int) -> list[dict]:
    """``bench_env`` on mjx for each robot, env count and impl, until ``deadline`` (perf_counter seconds)."""
    from simrl.bench import bench_env
    from simrl.envs import ReachEnv
    from simrl.physics import make_backend
    from simrl.robots import load_robot

    rows = []
    for impl in impls:
        for robot_name in robots:
            robot = load_robot(robot_name)
            for n in sizes:
                if time.perf_counter() > deadline:
                    rows.append({"robot": robot_name, "impl": impl, "num_envs": n, "error": "skipped: out of time"})
                    continue
                try:
                    env = ReachEnv(robot, n, backend=make_backend("mjx", robot.model, robot.substeps, n, mjx_impl=impl))
                    result = bench_env(env, steps=steps, repeats=repeats).to_dict()
                    rows.append({"impl": impl, **result})
                    print(f"{robot_name} {impl} {n}: {result['env_steps_per_s']:,.0f} env steps/s", file=sys.stderr, flush=True)
                except Exception as exc:  # a failing impl is a result to report, not a reason to stop
                    rows.append({"robot": robot_name, "impl": impl, "num_envs": n, "error": f"{type(exc).__name__}: {exc}"[:300]})
                    print(f"{robot_name} {impl} {n}: failed: {exc}", file=sys.stderr, flush=True)
                    break  # the same impl fails the same way at other sizes
    return rows


def device_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no nvidia-smi)"


def fmt(value: float | None, unit: str = " s") -> str:
    return "not reached" if value is None else f"{value:.1f}{unit}"


def write_markdown(report: dict, path: Path) -> None:
    lines = [
        "# GPU figures (MJX backend)",
        "",
        f"Made by `python experiments/gpu_bench.py` on **{report['device']}** ({report['measured']}; jax {report.get('jax')}, "
        f"mujoco {report.get('mujoco')}).",
        "",
        "## Wall-clock to 95 % reach success, so101, PPO, 4,096 envs",
        "",
        "From the start of the training process, compilation included, to the first periodic evaluation",
        "(simrl's Evaluator, 200 held-out goals, 2 cm) at or above 95 %; same env, same hyperparameters and eval cadence.",
        "",
        "A cold compile cache is an empty folder (`simrl --compile-cache DIR`), so everything compiles, as on a first run;",
        "a warm one was filled by the cold run of the same seed just before, as a user's next run finds it.",
        "",
        "| trainer | seed | compile cache | time to 95 % | env steps to 95 % | compile (s) | process (s) | target | measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["training"]:
        seed, cache = run.get("seed", 0), run.get("compile_cache", "cold" if run["trainer"] == "simrl-ppo" else "-")
        if "error" in run:
            lines.append(f"| {run['trainer']} | {seed} | {cache} | failed: {run['error'][:120]} | | | | | {run.get('measured', '')} |")
            continue
        steps = f"{run['steps_to_target']:,}" if run["steps_to_target"] else "-"
        compiled = fmt(run.get("compile_s"), "") if run.get("compile_s") is not None else "-"
        lines.append(
            f"| {run['trainer']} | {seed} | {cache} | {fmt(run['time_to_target_s'])} | {steps} | {compiled} | {run['process_wall_s']:.0f} | ≤ 60 s "
            f"| {run.get('measured', report['measured'])} |"
        )
    lines += [
        "",
        "## Env throughput (`simrl bench env --backend mjx`)",
        "",
        "Random actions, auto-reset included; beside it, raw `mujoco.rollout` of the same worlds on the machine's CPU cores.",
        "",
        "| robot | impl | envs | mjx env steps/s | compile (s) | raw rollout on CPU, steps/s | measured |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(report["throughput"], key=lambda r: (r["impl"], r["robot"] != "so101", r["robot"], r["num_envs"])):
        if "error" in row:
            lines.append(f"| {row['robot']} | {row['impl']} | {row['num_envs']:,} | {row['error'][:150]} | | | {row.get('measured', '')} |")
        else:
            lines.append(
                f"| {row['robot']} | {row['impl']} | {row['num_envs']:,} | {row['env_steps_per_s']:,.0f} | {row['compile_s']:.1f} | "
                f"{row['raw_rollout_steps_per_s']:,.0f} ({row['cpu_count']} cores) | {row.get('measured', report['measured'])} |"
            )
    if report.get("notes"):
        lines += ["", "## Notes", "", *(f"- {note}" for note in report["notes"])]
    path.write_text("\n".join(lines) + "\n")


def keep_earlier(report: dict, earlier: dict, args: argparse.Namespace) -> None:
    """Carry into ``report`` the earlier runs and rows this run will not measure again, stamped with when and where
    they were measured, so a short device run can re-measure a few rows without losing the rest."""
    when = earlier["measured"] if earlier["device"] == report["device"] else f"{earlier['measured']} on {earlier['device']}"
    rerun = {f"{name}-ppo" for name in ("simrl", "brax") if name not in args.skip}
    grid = set() if "bench" in args.skip else {(r, i, n) for r in args.robots for i in args.impls for n in args.sizes}
    report["training"] += [{"measured": when, **run} for run in earlier["training"] if run["trainer"] not in rerun]
    report["throughput"] += [{"measured": when, **row} for row in earlier["throughput"]
                             if (row["robot"], row["impl"], row["num_envs"]) not in grid]
    report["runs"] = earlier.get("runs", [])  # earlier device runs, kept as they were recorded
    report["notes"] = earlier.get("notes", [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu", help="writes OUT.json and OUT.md")
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--train-minutes", type=float, default=2.0, help="cap per trainer")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="simrl PPO seeds, each with an empty compile cache")
    parser.add_argument("--warm", action="store_true", help="then run each seed again on the compile cache its first run filled")
    parser.add_argument("--bench-minutes", type=float, default=2.5, help="cap for the throughput sweep")
    parser.add_argument("--robots", nargs="+", default=["so101", "fr3"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--impls", nargs="+", default=["jax", "warp"])
    parser.add_argument("--report-only", action="store_true", help="remake OUT.md from OUT.json")
    parser.add_argument("--bench-steps", type=int, default=50, help="control steps per throughput measurement")
    parser.add_argument("--bench-repeats", type=int, default=3, help="measurements per throughput row (median)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["simrl", "brax", "bench"])
    parser.add_argument("--keep", action="store_true",
                        help="keep the rows of an earlier OUT.json that this run does not measure again (each row says when it was measured)")
    args = parser.parse_args()
    if args.report_only:
        write_markdown(json.loads(args.out.with_suffix(".json").read_text()), args.out.with_suffix(".md"))
        return

    import jax
    import mujoco

    report: dict = {"device": device_name(), "measured": time.strftime("%Y-%m-%d %H:%M"), "jax": jax.__version__,
                    "mujoco": mujoco.__version__, "jax_devices": [str(d) for d in jax.devices()], "training": [], "throughput": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.keep and args.out.with_suffix(".json").is_file():
        keep_earlier(report, json.loads(args.out.with_suffix(".json").read_text()), args)

    def save() -> None:
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        write_markdown(report, args.out.with_suffix(".md"))

    stamped = lambda row: {**row, "measured": report["measured"]}  # noqa: E731

    def simrl_runs() -> None:
        for seed in args.seeds:
            cache = Path(tempfile.mkdtemp(prefix=f"simrl-xla-seed{seed}-"))
            for state in ("cold", "warm") if args.warm else ("cold",):
                report["training"].append(stamped(simrl_ppo("so101", args.envs, args.train_minutes, Path("/tmp/simrl-gpu-runs"), seed, cache, state)))
                save()

    parts = [
        ("simrl", simrl_runs),
        ("brax", lambda: report["training"].append(stamped(brax_ppo("so101", args.envs, args.train_minutes)))),
        ("bench", lambda: report["throughput"].extend(map(stamped, throughput(
            args.robots, args.sizes, args.impls, time.perf_counter() + 60 * args.bench_minutes, args.bench_steps, args.bench_repeats)))),
    ]
    for name, part in parts:
        if name in args.skip:
            continue
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            part()
        except Exception as exc:  # record and go on: the other parts still give figures
            traceback.print_exc()
            if name != "bench":
                report["training"].append({"trainer": f"{name}-ppo", "error": f"{type(exc).__name__}: {exc}"[:300]})
        save()
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
