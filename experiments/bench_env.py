"""Env throughput vs raw mujoco.batch and mujoco.rollout for every shipped arm; writes experiments/results/bench_env.{md,json}.

    python experiments/bench_env.py [--envs 4096] [--backend cpu] [--repeats 5]

Each arm is measured by ``simrl.bench.bench_env`` (env, raw batch and raw
rollout alternating in one process, medians), so the ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from simrl.bench import bench_env
from simrl.envs import ReachEnv
from simrl.robots import available_robots

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    results = []
    for robot in available_robots():
        env = ReachEnv(robot, args.envs, backend=args.backend)
        result = bench_env(env, steps=args.steps, repeats=args.repeats, progress=lambda msg, r=robot: print(f"{r}: {msg}", flush=True))
        results.append(result.to_dict())
        print(json.dumps(results[-1]), flush=True)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_env.json").write_text(json.dumps({"machine": platform.processor() or platform.machine(), "results": results}, indent=2) + "\n")
    lines = [
        f"# Env throughput, {args.envs} envs, `{args.backend}` backend",
        "",
        f"Made by `python experiments/bench_env.py --envs {args.envs} --backend {args.backend} --repeats {args.repeats}`"
        f" on {results[0]['cpu_count']} CPU cores (jax {results[0]['jax_version']}, mujoco {results[0]['mujoco_version']}).",
        "Control steps/s (one policy action each); the env runs the reach task with random actions and auto-reset;",
        "raw is one `mujoco.batch` call (what the cpu backend runs on) or one `mujoco.rollout` call (what it ran on before)",
        "on the same model, worlds, substeps and kind of controls. Medians of alternating runs.",
        "",
        "| robot | substeps | env steps/s | raw batch steps/s | raw rollout steps/s | env / raw batch | compile (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['robot']} | {r['substeps']} | {r['env_steps_per_s']:,.0f} | {r['raw_batch_steps_per_s']:,.0f} | "
            f"{r['raw_rollout_steps_per_s']:,.0f} | {r['ratio']:.1%} | {r['compile_s']:.1f} |"
        )
    (RESULTS / "bench_env.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "bench_env.md").read_text())


if __name__ == "__main__":
    main()
