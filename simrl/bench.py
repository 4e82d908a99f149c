"""Throughput of the full env against raw ``mujoco.batch`` and ``mujoco.rollout``, measured side by side.

The raw figures are the ceiling: the same model, the same number of worlds and
physics substeps, the same kind of controls (a random walk of joint targets,
as random actions make), stepped by one ``Batch.rollout`` call (what the cpu
backend runs on) or one ``mujoco.rollout`` call (what it ran on before) with no
Python, JAX or task code around it. The env figure is the jitted env
(``lax.scan`` over ``ReachEnv.step`` with random actions, auto-reset included).
All are measured alternately in one process so machine load affects them alike.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import jax
import mujoco
import mujoco.batch
import mujoco.rollout
import numpy as np

from simrl.envs import ReachEnv
from simrl.robots import Robot


@dataclass(frozen=True)
class EnvBenchResult:
    """Figures of one ``bench_env`` run (control steps are env steps: one policy action each)."""

    robot: str
    backend: str
    num_envs: int
    substeps: int
    steps_per_measurement: int
    repeats: int
    env_steps_per_s: float
    raw_batch_steps_per_s: float  # one mujoco.batch call: the ceiling
    raw_rollout_steps_per_s: float  # one mujoco.rollout call, what the cpu backend ran on before
    ratio: float  # env / raw batch
    compile_s: float
    randomized_env_steps_per_s: float | None  # the env under a randomization profile, when asked
    randomization_cost: float | None  # 1 - randomized / plain env rate: the median over back-to-back pairs
    randomization_cost_quartiles: tuple[float, float] | None  # the pairs' lower and upper quartiles: this machine's spread
    cpu_count: int
    jax_version: str
    mujoco_version: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _random_walk_controls(robot: Robot, num_envs: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(N, steps * substeps, nu) controls like those random joint-delta actions produce."""
    lo, hi = robot.arm_ranges.T
    deltas = rng.uniform(-1.0, 1.0, (num_envs, steps, robot.n_arm)) * robot.config.action_scale.joint_delta
    targets = np.clip(robot.home_qpos[robot.arm_qpos_adr] + np.cumsum(deltas, axis=1), lo, hi)
    ctrl = np.tile(robot.home_ctrl, (num_envs, steps, 1))
    ctrl[:, :, robot.arm_actuators] = targets
    return np.ascontiguousarray(np.repeat(ctrl, robot.substeps, axis=1))


def raw_batch_timer(robot: Robot, control: np.ndarray, fields: dict[str, np.ndarray] | None = None) -> Callable[[], float]:
    """A function that steps ``len(control)`` worlds from home under ``control`` (N, nstep, nu) in one
    ``Batch.rollout`` call and returns its seconds; ``fields`` (name -> (N, ...)) are expanded per world first."""
    num_envs, nstep = control.shape[:2]
    batch = mujoco.batch.Batch(robot.model, num_envs, nthread=min(os.cpu_count() or 1, num_envs))
    for name, values in (fields or {}).items():
        batch.expand(name)[...] = values
    batch.bind("qpos")[...] = robot.home_qpos
    home_rows = batch.state.copy()

    def run() -> float:
        batch.state[...] = home_rows  # as the cpu backend writes every world's state each call
        start = time.perf_counter()
        batch.rollout(nstep, control=control, record=())
        return time.perf_counter() - start

    return run


def raw_rollout_timer(robot: Robot, control: np.ndarray, models: list[mujoco.MjModel] | None = None) -> Callable[[], float]:
    """The same with ``mujoco.rollout`` as the cpu backend used it before (per-thread MjData, zero warmstart,
    ``skip_checks``), world ``w`` stepping ``models[w]`` (default: the robot's model for all)."""
    model = robot.model
    num_envs, nstep = control.shape[:2]
    nthread = min(os.cpu_count() or 1, num_envs)
    runner = mujoco.rollout.Rollout(nthread=nthread if nthread > 1 else 0)
    datas = [mujoco.MjData(model) for _ in range(max(nthread, 1))]
    data = mujoco.MjData(model)
    data.qpos[:] = robot.home_qpos
    nstate = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    initial = np.empty(nstate)
    mujoco.mj_getState(model, data, initial, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    initial = np.ascontiguousarray(np.tile(initial, (num_envs, 1)))
    states = np.empty((num_envs, nstep, nstate))
    sensors = np.empty((num_envs, nstep, model.nsensordata))
    models = models or [model] * num_envs
    warmstart = np.zeros((num_envs, model.nv))

    def run() -> float:
        start = time.perf_counter()
        runner.rollout(
            models, datas, initial, control, skip_checks=True, nstep=nstep, initial_warmstart=warmstart, state=states, sensordata=sensors
        )
        return time.perf_counter() - start

    return run


def _raw_timers(robot: Robot, num_envs: int, steps: int) -> dict[str, Callable[[], float]]:
    """Raw timers of ``steps`` control steps of random-walk controls: ``batch`` (what the cpu backend runs on:
    the ceiling) and ``rollout`` (what it ran on before)."""
    control = _random_walk_controls(robot, num_envs, steps, np.random.default_rng(0))
    return {"batch": raw_batch_timer(robot, control), "rollout": raw_rollout_timer(robot, control)}


def _env_timer(env: ReachEnv, steps: int, seed: int) -> tuple[Callable[[], float], float]:
    """A function timing ``steps`` jitted env steps, and the compile time it took."""

    def rollout(state, key):
        def body(carry, _):
            state, key = carry
            key, sub = jax.random.split(key)
            action = jax.random.uniform(sub, (env.num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return (env.step(state, action), key), None

        (state, key), _ = jax.lax.scan(body, (state, key), None, length=steps)
        return state, key

    run_steps = jax.jit(rollout)
    start = time.perf_counter()
    state = jax.jit(env.reset)(jax.random.key(seed))
    state, key = run_steps(state, jax.random.key(seed + 1))
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - start
    carry = {"state": state, "key": key}

    def run() -> float:
        begin = time.perf_counter()
        carry["state"], carry["key"] = run_steps(carry["state"], carry["key"])
        jax.block_until_ready(carry["state"])
        return time.perf_counter() - begin

    return run, compile_s


def _alternate(timers: dict[str, Callable[[], float]], repeats: int, progress: Callable[[int], None]) -> dict[str, list[float]]:
    """Seconds of each timer, measured in turn ``repeats`` times, so machine load hits all alike.

    The order flips every round (A B, B A, ...): neither timer always runs
    right after the other, whose cache footprint or clock boost it could inherit.
    """
    times: dict[str, list[float]] = {name: [] for name in timers}
    names = list(timers)
    for i in range(repeats):
        progress(i)
        for name in names if i % 2 == 0 else reversed(names):
            times[name].append(timers[name]())
    return times


def _rate(work: int, seconds: list[float]) -> float:
    return work / statistics.median(seconds)


def _cost_of(plain: list[float], other: list[float]) -> tuple[float, tuple[float, float]]:
    """``1 - other rate / plain rate`` from each back-to-back pair: the median, and the lower and upper quartiles.

    A ratio per pair cancels the machine's slow drifts (this VM's speed wanders by
    10-20 % over minutes), which a ratio of two medians would not.
    """
    costs = sorted(1.0 - p / o for p, o in zip(plain, other))
    if len(costs) < 2:
        return costs[0], (costs[0], costs[0])
    low, _, high = statistics.quantiles(costs, n=4, method="inclusive")
    return statistics.median(costs), (low, high)


def bench_env(
    env: ReachEnv,
    steps: int = 50,
    repeats: int = 3,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    randomized: ReachEnv | None = None,
) -> EnvBenchResult:
    """Measure env and raw control steps/s, alternating ``repeats`` times (medians), then the env against a ``randomized`` one the same way."""
    note = progress or (lambda _: None)
    note("compiling the env")
    env_run, compile_s = _env_timer(env, steps, seed)
    raw_runs = _raw_timers(env.robot, env.num_envs, steps)
    for run in raw_runs.values():
        run()  # warm the thread pools and caches like the env's first call did
    work = env.num_envs * steps
    times = _alternate({"env": env_run, **raw_runs}, repeats, lambda i: note(f"measuring {i + 1}/{repeats}"))
    env_rate, batch_rate = _rate(work, times["env"]), _rate(work, times["batch"])
    randomized_rate = cost = quartiles = None
    if randomized is not None:
        note("compiling the randomized env")
        randomized_run = _env_timer(randomized, steps, seed)[0]
        # A pair of its own: a raw rollout in between would evict the env's working set (its state buffer is
        # hundreds of MB), a cost training never pays, and charge it to whichever env runs after it.
        pair = _alternate({"env": env_run, "randomized": randomized_run}, repeats, lambda i: note(f"measuring randomized {i + 1}/{repeats}"))
        cost, quartiles = _cost_of(pair["env"], pair["randomized"])
        randomized_rate = env_rate * (1.0 - cost)  # the cost as measured in the pairs, on this run's env figure
    return EnvBenchResult(
        robot=env.robot.name,
        backend=env.physics.name,
        num_envs=env.num_envs,
        substeps=env.robot.substeps,
        steps_per_measurement=steps,
        repeats=repeats,
        env_steps_per_s=env_rate,
        raw_batch_steps_per_s=batch_rate,
        raw_rollout_steps_per_s=_rate(work, times["rollout"]),
        ratio=env_rate / batch_rate,
        compile_s=compile_s,
        randomized_env_steps_per_s=randomized_rate,
        randomization_cost=cost,
        randomization_cost_quartiles=quartiles,
        cpu_count=os.cpu_count() or 1,
        jax_version=jax.__version__,
        mujoco_version=mujoco.__version__,
    )


__all__ = ["EnvBenchResult", "bench_env"]
