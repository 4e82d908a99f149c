"""The cpu backend against an earlier commit's: env throughput, resident memory, so101 reach time.

    python experiments/cpu_backend_compare.py --base 06a80ac                 # all three parts (~30 minutes on 2 cores)
    python experiments/cpu_backend_compare.py --base 06a80ac --parts memory  # one part
    python experiments/cpu_backend_compare.py --report-only                  # remake the .md from the .json

``--base`` is checked out into a temporary git worktree, and every measurement
runs once from each tree in its own process (``PYTHONPATH`` picks the tree),
in alternating order (this tree first, then the base; then the base first),
so the machine's slow swings in speed hit both alike. Throughput is the exception: separate processes
swung by more than 10 % against each other, so both backends run in one:

- throughput (in this process, the base's ``simrl/physics/cpu.py`` loaded
  from its worktree): the reach env with random actions on each backend, raw
  ``mujoco.batch`` and raw ``mujoco.rollout``, timed in turn as ``simrl bench
  env`` does, for every arm;
- memory: a process that builds the reach env under ``--randomization
  strong`` at 4096 and 16,384 worlds and steps it past the first episode
  start, where every world gets its physics: what that added to the resident
  set, the resident set then, and the peak (``ru_maxrss``);
- reach: ``simrl train reach --robot so101 --seed S --randomization P
  --until-success 0.95`` with an empty compile cache per run, time to 95 %
  counted from process start, median over the seeds, for ``none`` and
  ``default``.

Writes experiments/results/cpu_backend.{md,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from simrl_runs import simrl

RESULTS = Path(__file__).resolve().parent / "results"
HERE = Path(__file__).resolve().parent.parent
ROBOTS = ("so101", "openarm", "fr3")
PROFILES = ("none", "default")
MEMORY_WORLDS = (4096, 16384)
WORLDS, STEPS = 4096, 50  # the throughput measurement: as `simrl bench env`
PARTS = ("throughput", "memory", "reach")

# Builds the reach env under the strong profile and steps it past the first episode start (the step that
# hands every world its physics), then prints the resident set before the env, after the steps, and the
# process's peak (which compilation may set), in KiB.
MEMORY_PROBE = """
import resource, sys
def resident():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
import jax, jax.numpy as jnp
from simrl.envs import ReachEnv
from simrl.randomization.profile import resolve_profile
from simrl.robots import load_robot
arm = load_robot("so101")
before = resident()
env = ReachEnv(arm, int(sys.argv[1]), backend="cpu", randomization=resolve_profile("strong", arm))
step = jax.jit(env.step)
state = jax.jit(env.reset)(jax.random.key(0))
for _ in range(5):
    state = step(state, jnp.zeros((env.num_envs, env.action_size)))
jax.block_until_ready(state)
print(before, resident(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@contextlib.contextmanager
def worktree(base: str) -> Iterator[Path]:
    """``base`` checked out (detached) in a temporary worktree of this clone, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="simrl-base-"))
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(path), base], check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(path)], check=True, capture_output=True)


def trees_in_turn(trees: dict[str, Path], round_index: int) -> list[tuple[str, Path]]:
    """Both trees, this one first on even rounds and the base first on odd ones."""
    order = list(trees.items())
    return order if round_index % 2 == 0 else order[::-1]


def base_backend(tree: Path) -> type:
    """The ``CpuBackend`` class of the checkout at ``tree``, loaded from its file beside this tree's simrl."""
    spec = importlib.util.spec_from_file_location("base_cpu_backend", tree / "simrl" / "physics" / "cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CpuBackend


def throughput(trees: dict[str, Path], repeats: int) -> list[dict[str, Any]]:
    """Per arm, in this process: the env on this backend and on the base's, raw batch and raw rollout, in turn."""
    from simrl.bench import _alternate, _env_timer, _raw_timers
    from simrl.envs import ReachEnv
    from simrl.physics.cpu import CpuBackend
    from simrl.robots import load_robot

    backends = {"this": CpuBackend, "base": base_backend(trees["base"])}
    rows = []
    for robot in ROBOTS:
        arm = load_robot(robot)
        timers = {name: _env_timer(ReachEnv(arm, WORLDS, backend=cls(arm.model, arm.substeps, WORLDS)), STEPS, 0)[0] for name, cls in backends.items()}
        timers.update(_raw_timers(arm, WORLDS, STEPS))
        times = _alternate(timers, repeats, lambda i, r=robot: print(f"== throughput {r} {i + 1}/{repeats}", file=sys.stderr, flush=True))
        rate = {name: WORLDS * STEPS / statistics.median(t) for name, t in times.items()}
        pairs = sorted(base / this for this, base in zip(times["this"], times["base"]))
        low, _, high = statistics.quantiles(pairs, n=4, method="inclusive")
        rows.append(
            {
                "robot": robot,
                "substeps": arm.substeps,
                "env_steps_per_s": rate["this"],
                "base_env_steps_per_s": rate["base"],
                "raw_batch_steps_per_s": rate["batch"],
                "raw_rollout_steps_per_s": rate["rollout"],
                "env_over_raw_batch": rate["this"] / rate["batch"],
                "env_over_base": statistics.median(pairs),
                "env_over_base_quartiles": (low, high),
            }
        )
    return rows


def memory(trees: dict[str, Path]) -> list[dict[str, Any]]:
    rows = []
    for worlds in MEMORY_WORLDS:
        row: dict[str, Any] = {"worlds": worlds}
        for name, tree in trees.items():
            print(f"== memory {worlds} worlds: {name}", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, "-c", MEMORY_PROBE, str(worlds)], env=tree_env(tree), stdout=subprocess.PIPE, text=True, check=True
            )
            before, after, peak = (int(v) / 1024 for v in done.stdout.split()[-3:])
            row[f"{name}_env_rss_mib"] = after - before
            row[f"{name}_rss_mib"] = after
            row[f"{name}_peak_rss_mib"] = peak
        rows.append(row)
    return rows


def reach(trees: dict[str, Path], seeds: int, logdir: Path) -> list[dict[str, Any]]:
    rows = []
    for profile in PROFILES:
        times: dict[str, list[float | None]] = {name: [] for name in trees}
        for seed in range(seeds):
            for name, tree in trees_in_turn(trees, seed):
                print(f"== reach so101 --randomization {profile} seed {seed}: {name}", file=sys.stderr, flush=True)
                cache = tempfile.mkdtemp(prefix="xla-", dir=logdir)
                summary = simrl(
                    "--compile-cache", cache, "train", "reach", "--robot", "so101", "--backend", "cpu", "--seed", str(seed),
                    "--randomization", profile, "--until-success", "0.95", "--minutes", "5", "--logdir", str(logdir), "--no-progress",
                    tree=tree,
                )  # fmt: skip
                reached = summary["first_target_eval"]
                times[name].append(reached["wall_time_s"] if reached else None)
        rows.append({"profile": profile, **{f"{name}_time_to_95_s": t for name, t in times.items()}})
    return rows


def tree_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def median_or_none(values: list[float | None]) -> float | None:
    """The median, or None when some run never reached 95 % (its time is unknown, not small)."""
    return None if any(v is None for v in values) else statistics.median(values)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    base = report["base"]
    lines = [
        "# The cpu backend on `mujoco.batch` against the commit before it",
        "",
        f"Made by `python experiments/cpu_backend_compare.py --base {base}` on {report['cpu_count']} CPU cores.",
        f"\"this\" is the backend on `mujoco.batch` (its commit and time per part below); \"base\" is {base}, the backend on",
        "`mujoco.rollout` with a model copy per world. Memory and reach come from both trees in alternating order, each run in its own process.",
    ]
    stamp = report["measured"]
    if report.get("throughput"):
        lines += [
            "",
            "## Env throughput without randomization (4096 envs)",
            "",
            f"Measured at {stamp['throughput']}.",
            "",
            "In one process per arm: the reach env with random actions (as `simrl bench env`) on this backend and on the",
            "base's (its `simrl/physics/cpu.py` loaded from the worktree), raw `mujoco.batch` and raw `mujoco.rollout`,",
            "timed in turn, the order flipping every round; medians. this/base is the median over the rounds of the two",
            "envs' ratio, with its quartiles.",
            "",
            "| robot | substeps | this env steps/s | base env steps/s | this / base (quartiles) | raw mujoco.batch | raw mujoco.rollout | env / raw batch |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in report["throughput"]:
            low, high = r["env_over_base_quartiles"]
            lines.append(
                f"| {r['robot']} | {r['substeps']} | {r['env_steps_per_s']:,.0f} | {r['base_env_steps_per_s']:,.0f} | "
                f"{r['env_over_base']:.2f} ({low:.2f} to {high:.2f}) | {r['raw_batch_steps_per_s']:,.0f} | {r['raw_rollout_steps_per_s']:,.0f} | "
                f"{r['env_over_raw_batch']:.1%} |"
            )
    if report.get("memory"):
        lines += [
            "",
            "## Resident memory under `--randomization strong`",
            "",
            f"Measured at {stamp['memory']}.",
            "A process that builds the so101 reach env and steps it past the first episode start (where every world gets",
            "its physics): what the env and its steps added to the resident set, the resident set then, and the process's",
            "peak (which compilation can set).",
            "",
            "| worlds | this: added (MiB) | base: added (MiB) | this: resident | base: resident | this: peak | base: peak |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in report["memory"]:
            lines.append(
                f"| {r['worlds']:,} | {r['this_env_rss_mib']:,.0f} | {r['base_env_rss_mib']:,.0f} | {r['this_rss_mib']:,.0f} | "
                f"{r['base_rss_mib']:,.0f} | {r['this_peak_rss_mib']:,.0f} | {r['base_peak_rss_mib']:,.0f} |"
            )
    if report.get("reach"):
        lines += [
            "",
            "## so101 reach: time to 95 % success",
            "",
            f"Measured at {stamp['reach']}.",
            "`simrl train reach --robot so101 --backend cpu --seed S --randomization P --until-success 0.95`, an empty compile",
            "cache per run; seconds from process start to the first evaluation at 95 %; median over the seeds.",
            "",
            "| randomization | this: median (runs) | base: median (runs) | this / base |",
            "| --- | ---: | ---: | ---: |",
        ]
        for r in report["reach"]:
            this, old = median_or_none(r["this_time_to_95_s"]), median_or_none(r["base_time_to_95_s"])
            ratio = f"{this / old:.2f}" if this and old else "-"
            lines.append(
                f"| {r['profile']} | {fmt_s(this)} ({', '.join(map(fmt_s, r['this_time_to_95_s']))}) | "
                f"{fmt_s(old)} ({', '.join(map(fmt_s, r['base_time_to_95_s']))}) | {ratio} |"
            )
    path.write_text("\n".join(lines) + "\n")


def fmt_s(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="the commit to compare against (e.g. the one before the backend changed)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--repeats", type=int, default=9, help="throughput rounds per arm (each times all four in turn)")
    parser.add_argument("--seeds", type=int, default=3, help="reach runs per tree and profile")
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_backend")
    parser.add_argument("--report-only", action="store_true", help="remake the .md from OUT.json")
    args = parser.parse_args()
    json_path = args.out.with_suffix(".json")
    if args.report_only:
        write_markdown(json.loads(json_path.read_text()), args.out.with_suffix(".md"))
        return
    if not args.base:
        parser.error("--base is required unless --report-only")
    this = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    report: dict[str, Any] = {"base": args.base, "cpu_count": os.cpu_count(), "measured": {}}
    earlier = json.loads(json_path.read_text()) if json_path.exists() else {}
    if earlier.get("base") == args.base:  # a run of some parts keeps the others' figures, each stamped with its commit
        report = {**earlier, "measured": dict(earlier["measured"])}
    for part in args.parts:
        report["measured"][part] = f"{this}, {time.strftime('%Y-%m-%d %H:%M')}"
    with worktree(args.base) as base_tree, tempfile.TemporaryDirectory(prefix="simrl-compare-") as logdir:
        trees = {"this": HERE, "base": base_tree}
        if "throughput" in args.parts:
            report["throughput"] = throughput(trees, args.repeats)
        if "memory" in args.parts:
            report["memory"] = memory(trees)
        if "reach" in args.parts:
            report["reach"] = reach(trees, args.seeds, Path(logdir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
