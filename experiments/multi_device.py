"""Env and PPO training throughput on one device and on all devices, side by side; writes experiments/results/multi_device.md.

    python experiments/multi_device.py [--envs 1024] [--backends cpu mjx] [--mjx-envs 64] [--repeats 3] [--json]

On a machine without accelerators the CPU is split into two forced host
devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``, set here
before JAX starts unless the flag is already given). Forced host devices
share the same cores, so this measures what the data-parallel code path
costs, not a speed-up; on several GPUs the same script compares 1 with all.
Each configuration is compiled once, then the device counts are measured
alternately ``--repeats`` times (medians), so machine load affects them alike.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()

import argparse  # noqa: E402  (the flag above must precede JAX)
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import jax  # noqa: E402
import mujoco  # noqa: E402

from simrl.envs import ReachEnv  # noqa: E402
from simrl.train.config import resolve_config  # noqa: E402
from simrl.train.parallel import DataParallel  # noqa: E402
from simrl.train.runner import make_algorithm, make_env  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
Timer = Callable[[], float]  # runs one measurement, returns its seconds


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - start


def env_timer(env: ReachEnv, parallel: DataParallel, steps: int) -> tuple[Timer, float]:
    """``steps`` env steps with random actions in one jitted call (the env split as in training), and its compile time."""

    def rollout(agent: tuple[()], state: Any, key: jax.Array) -> tuple[tuple[()], Any]:
        def step(state: Any, step_key: jax.Array) -> tuple[Any, None]:
            action = jax.random.uniform(step_key, (env.num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return env.step(state, action), None

        return agent, jax.lax.scan(step, state, jax.random.split(key, steps))[0]

    state = parallel.reset(env.reset, jax.random.key(0), env.num_envs)
    run = parallel.jit_iteration(rollout, state, env.num_envs)
    carry = {"state": state, "key": jax.random.key(1)}

    def one() -> Any:
        carry["key"], key = jax.random.split(carry["key"])
        carry["state"] = run((), carry["state"], key)[1]
        return carry["state"]

    return (lambda: _timed(one)), _timed(one)


def train_timer(config: Any, env: ReachEnv, parallel: DataParallel, iterations: int) -> tuple[Timer, float, int]:
    """``iterations`` jitted PPO iterations (the runner's path), their compile time, and env steps per measurement."""
    algo = make_algorithm(config, env, parallel)
    state = parallel.reset(env.reset, jax.random.key(0), env.num_envs)
    carry = {"agent": parallel.replicate(algo.init(jax.random.key(1))), "state": state, "key": jax.random.key(2)}
    iterate = parallel.jit_iteration(algo.iteration, state, env.num_envs, donate_agent=True)

    def one() -> Any:
        carry["key"], key = jax.random.split(carry["key"])
        carry["agent"], carry["state"], stats = iterate(carry["agent"], carry["state"], key)
        return stats

    compile_s = _timed(one)
    return (lambda: sum(_timed(one) for _ in range(iterations))), compile_s, iterations * algo.env_steps_per_iteration


def measure_backend(backend: str, num_envs: int, env_steps: int, iterations: int, repeats: int) -> list[dict[str, Any]]:
    """One row per device count (1 and all) for ``backend``: median env and training steps/s."""
    config = resolve_config("reach", "so101", backend, algo="ppo", overrides={"num_envs": num_envs})
    env = make_env(config, num_envs, auto_reset=True)
    counts = sorted({1, len(jax.devices())})
    timers = {}
    for count in counts:
        print(f"{backend}: compiling for {count} device(s)", file=sys.stderr, flush=True)
        parallel = DataParallel.for_envs(num_envs, count)
        run_env, env_compile = env_timer(env, parallel, env_steps)
        run_train, train_compile, train_steps = train_timer(config, env, parallel, iterations)
        timers[count] = (run_env, run_train, env_compile + train_compile, train_steps)
    seconds: dict[int, dict[str, list[float]]] = {count: {"env": [], "train": []} for count in counts}
    for i in range(repeats):
        print(f"{backend}: measuring {i + 1}/{repeats}", file=sys.stderr, flush=True)
        for count in counts:
            seconds[count]["env"].append(timers[count][0]())
            seconds[count]["train"].append(timers[count][1]())
    return [
        {
            "backend": backend,
            "num_envs": num_envs,
            "devices": count,
            "env_steps_per_s": num_envs * env_steps / statistics.median(seconds[count]["env"]),
            "train_env_steps_per_s": timers[count][3] / statistics.median(seconds[count]["train"]),
            "compile_s": timers[count][2],
        }
        for count in counts
    ]


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, load: float) -> str:
    device = jax.devices()[0]
    forced = "The devices are forced host devices sharing the same cores: no speed-up is possible; the ratio is the cost of the split path."
    lines = [
        "# Data-parallel training: one device against all",
        "",
        f"Made by `python experiments/multi_device.py --envs {args.envs} --mjx-envs {args.mjx_envs} --backends {' '.join(args.backends)}"
        f" --repeats {args.repeats}` on {os.cpu_count()} CPU cores, {len(jax.devices())} {device.platform} devices"
        f" (jax {jax.__version__}, mujoco {mujoco.__version__}); so101 reach, the recipe's PPO settings per backend.",
        "env steps/s: a jitted scan of random-action env steps; train steps/s: env steps per second of whole PPO iterations",
        f"(rollout, advantages, updates; what `simrl train` reports), medians of alternating measurements; load average at start {load:.1f}.",
        *([forced] if device.platform == "cpu" else []),
        "",
        "| backend | envs | devices | env steps/s | train env steps/s | vs 1 device (env / train) | compile (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        base = next(r for r in rows if r["backend"] == row["backend"] and r["devices"] == 1)
        ratio = f"{row['env_steps_per_s'] / base['env_steps_per_s']:.2f}x / {row['train_env_steps_per_s'] / base['train_env_steps_per_s']:.2f}x"
        lines.append(
            f"| {row['backend']} | {row['num_envs']} | {row['devices']} | {row['env_steps_per_s']:,.0f} | {row['train_env_steps_per_s']:,.0f}"
            f" | {ratio} | {row['compile_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1024, help="worlds on the cpu backend")
    parser.add_argument("--mjx-envs", type=int, default=64, help="worlds on the mjx backend (slow on a CPU)")
    parser.add_argument("--backends", nargs="+", default=["cpu", "mjx"], choices=["cpu", "mjx"])
    parser.add_argument("--env-steps", type=int, default=20, help="env steps per env measurement")
    parser.add_argument("--iterations", type=int, default=2, help="PPO iterations per training measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")
    args = parser.parse_args()

    load = os.getloadavg()[0]  # other work on the machine lowers every figure alike
    rows = []
    for backend in args.backends:
        envs = args.envs if backend == "cpu" else args.mjx_envs
        rows += measure_backend(backend, envs, args.env_steps, args.iterations, args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multi_device.md").write_text(markdown(rows, args, load))
    print(json.dumps(rows, indent=2) if args.json else (RESULTS / "multi_device.md").read_text())


if __name__ == "__main__":
    main()
