"""Where randomization's cost on the cpu backend comes from, at the raw physics level (no JAX).

Steps the same 4096 so101 worlds under the same random-walk controls, one
control step per call as the env makes it, measured in turn (the order flips
every round) so machine load hits all alike:

- ``mujoco.batch`` (what the cpu backend runs on):
  - one shared nominal model (what the unrandomized env steps; the baseline);
  - the nominal values expanded to a row per world (the cost of ``expand`` alone);
  - the default profile's draws, a row per world (what the randomized env steps);
  - one of those draws given to every world (the physics cost of the drawn values alone);
  - 256 of those draws, each given to a block of neighbouring worlds (what the removed
    ``physics_variants: 256`` did, to see whether sharing values still buys anything);
- ``mujoco.rollout`` (what the cpu backend ran on before):
  - one shared nominal model;
  - a model copy per world holding the default profile's draws (what the randomized env stepped).

    python experiments/per_world_models.py [--envs 4096] [--repeats 30] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

import jax
import numpy as np

from simrl.bench import _random_walk_controls, raw_batch_timer, raw_rollout_timer
from simrl.physics.base import model_field
from simrl.randomization.profile import resolve_profile
from simrl.randomization.sampler import DomainSampler
from simrl.robots import load_robot

BASELINE = "batch: shared nominal model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="so101")
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    robot = load_robot(args.robot)
    model, n = robot.model, args.envs
    draws = {field: np.asarray(values, np.float64) for field, values in DomainSampler(robot, resolve_profile("default", robot)).sample(jax.random.key(0), n).model.items()}
    nominal = {field: np.broadcast_to(model_field(model, field), values.shape) for field, values in draws.items()}
    first_draw = {field: np.broadcast_to(values[0], values.shape) for field, values in draws.items()}
    blocks = (np.arange(n) * min(256, n)) // n
    pooled = {field: values[blocks] for field, values in draws.items()}
    copies = [copy.copy(model) for _ in range(n)]
    for world, world_model in enumerate(copies):
        for field, values in draws.items():
            model_field(world_model, field)[...] = values[world]
    control = _random_walk_controls(robot, n, 1, np.random.default_rng(0))
    timers = {
        BASELINE: raw_batch_timer(robot, control),
        "batch: nominal values expanded per world": raw_batch_timer(robot, control, nominal),
        "batch: per-world randomized values": raw_batch_timer(robot, control, draws),
        "batch: one randomized draw for every world": raw_batch_timer(robot, control, first_draw),
        "batch: 256 randomized draws in blocks of worlds": raw_batch_timer(robot, control, pooled),
        "rollout: shared nominal model": raw_rollout_timer(robot, control),
        "rollout: per-world randomized model copies": raw_rollout_timer(robot, control, copies),
    }

    times: dict[str, list[float]] = {name: [] for name in timers}
    for i in range(args.repeats):
        for name in timers if i % 2 == 0 else reversed(timers):
            times[name].append(timers[name]())
    base = statistics.median(times[BASELINE])
    rows = {name: {"ms_per_step": 1000 * statistics.median(t), "cost": 1 - base / statistics.median(t)} for name, t in times.items()}
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for name, row in rows.items():
            print(f"{name:48s} {row['ms_per_step']:7.1f} ms/step  cost {100 * row['cost']:5.1f} %")


if __name__ == "__main__":
    main()
