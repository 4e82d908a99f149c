"""Where randomization's cost on the cpu backend comes from, at the raw ``mujoco.rollout`` level (no JAX).

Steps the same 4096 so101 worlds under the same random-walk controls with
these lists of models, measured in turn so machine load hits all alike:

- one shared nominal model (what the unrandomized env steps);
- 4096 nominal copies (the memory cost of per-world models alone);
- 4096 copies holding the default profile's draws (what the randomized env steps);
- one of those randomized models shared by every world (the physics cost of the draws alone);
- 16 or 256 of those randomized models cycled over the worlds (world w steps model w mod k): as many
  switches between models as per-world ones, with a working set (k x 15 KB) that fits each core's L2 cache
  or not: what a pool of k physics variants shared by the worlds would cost;
- 256 of them in blocks (neighbouring worlds share a model): the same pool with the worlds stepped in
  the order of their model, as a profile's ``physics_variants`` hands them out.

The env calls the physics once per control step, so ``--steps 1`` is the case training runs.

    python experiments/per_world_models.py [--envs 4096] [--steps 1] [--repeats 30] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import jax
import mujoco
import mujoco.rollout
import numpy as np

from simrl.bench import _random_walk_controls
from simrl.physics.base import model_field
from simrl.randomization.profile import resolve_profile
from simrl.randomization.sampler import DomainSampler
from simrl.robots import load_robot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robot", default="so101")
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=1, help="control steps per rollout call (the env makes one)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    robot = load_robot(args.robot)
    model, n = robot.model, args.envs
    draws = DomainSampler(robot, resolve_profile("default", robot)).sample(jax.random.key(0), n)
    randomized = [copy.copy(model) for _ in range(n)]
    for world, world_model in enumerate(randomized):
        for field, values in draws.model.items():
            model_field(world_model, field)[...] = np.asarray(values[world], np.float64)
    lists = {
        "shared nominal model": [model] * n,
        "per-world nominal copies": [copy.copy(model) for _ in range(n)],
        "per-world randomized models": randomized,
        "one randomized model, shared": [randomized[0]] * n,
        **{f"{k} randomized models, cycled": [randomized[world % k] for world in range(n)] for k in (min(16, n), min(256, n))},
        f"{min(256, n)} randomized models, in blocks": [randomized[world * min(256, n) // n] for world in range(n)],
    }

    runner = mujoco.rollout.Rollout(nthread=2)
    datas = [mujoco.MjData(model) for _ in range(2)]
    data = mujoco.MjData(model)
    data.qpos[:] = robot.home_qpos
    nstate = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    initial = np.empty(nstate)
    mujoco.mj_getState(model, data, initial, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    initial = np.tile(initial, (n, 1))
    control = _random_walk_controls(robot, n, args.steps, np.random.default_rng(0))
    nstep = args.steps * robot.substeps
    states, sensors = np.empty((n, nstep, nstate)), np.empty((n, nstep, model.nsensordata))

    times: dict[str, list[float]] = {name: [] for name in lists}
    for _ in range(args.repeats):
        for name, models in lists.items():
            start = time.perf_counter()
            runner.rollout(models, datas, initial, control, skip_checks=True, nstep=nstep, state=states, sensordata=sensors)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["shared nominal model"])
    rows = {name: {"ms_per_step": 1000 * statistics.median(t) / args.steps, "cost": 1 - base / statistics.median(t)} for name, t in times.items()}
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for name, row in rows.items():
            print(f"{name:32s} {row['ms_per_step']:7.1f} ms/step  cost {100 * row['cost']:5.1f} %")


if __name__ == "__main__":
    main()
