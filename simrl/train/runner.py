"""The training runner: drives an algorithm and owns everything around it.

The algorithm (PPO or SAC) only turns env steps into updates; the runner
builds the envs, jits the iteration, and handles what a user relies on: the
run directory, TensorBoard, a progress bar, periodic X/N evaluation on goals
the training never sees, atomic checkpoints (every N iterations, at the end,
on Ctrl-C / SIGTERM and on a wall-clock budget), ``--resume``, and a NaN guard
that stops the run while keeping the last good checkpoint.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import jax
from rich.console import Console
from rich.progress import Progress

import simrl
from simrl.envs import ReachEnv
from simrl.errors import SimrlError
from simrl.physics import make_backend, resolve_backend
from simrl.randomization.profile import resolve_profile
from simrl.robots import load_robot
from simrl.train.algorithm import Algorithm, tree_is_finite
from simrl.train.checkpoint import load_checkpoint, save_checkpoint
from simrl.train.config import TrainConfig, config_to_yaml_dict
from simrl.train.evaluation import EvalResult, Evaluator
from simrl.train.parallel import DataParallel
from simrl.train.policy import save_policy
from simrl.train.reporting import TimeSplit, progress_bar, record_evaluation, target_record
from simrl.train.ppo import PPO
from simrl.train.run_dir import RunDir
from simrl.train.sac import SAC
from simrl.train.summaries import RunWriter

PROGRESS_KEYS = ("episode/return", "episode/success_rate")


def steps_per_env_per_iteration(config: TrainConfig) -> int:
    return config.ppo.rollout_steps if config.algo == "ppo" else config.sac.steps_per_iteration


def total_iterations(config: TrainConfig) -> int:
    return math.ceil(config.total_steps / (config.num_envs * steps_per_env_per_iteration(config)))


def make_algorithm(config: TrainConfig, env: ReachEnv, parallel: DataParallel | None = None) -> Algorithm:
    algo_class = PPO if config.algo == "ppo" else SAC
    return algo_class(env, config.algo_config, total_iterations(config), parallel=parallel)


def make_env(
    config: TrainConfig, num_envs: int, auto_reset: bool, backend: str | None = None, randomization: str | Path | None = None
) -> ReachEnv:
    """A reach env batch as the config describes it (``backend`` and ``randomization`` override the config's)."""
    robot = load_robot(config.robot)
    physics = make_backend(backend or config.backend, robot.model, robot.substeps, num_envs, mjx_impl=config.mjx_impl)
    profile = resolve_profile(randomization or config.randomization, robot)
    return ReachEnv(
        robot, num_envs, backend=physics, task_config=config.task_settings, auto_reset=auto_reset, randomization=profile if profile.parameters else None
    )


@dataclass(frozen=True)
class TrainResult:
    """How a run ended (also written to ``summary.json``)."""

    run_dir: str
    algo: str
    robot: str
    backend: str
    num_envs: int
    devices: int  # the env batch was split over this many devices
    stop_reason: str  # completed | target_reached | time_budget | interrupted
    iterations: int
    env_steps: int
    wall_time_s: float
    compile_s: float
    train_env_steps_per_s: float | None  # iterations only: evaluation, checkpoints and compilation excluded
    time_split: dict[str, float | None]  # TimeSplit: startup, first iteration, later iterations, evaluations
    final_eval: dict[str, Any] | None
    first_target_eval: dict[str, Any] | None  # the first evaluation at or above stop_at_success / 95 %, with the time split then

    @classmethod
    def of_run(cls, runner: Any, **outcome: Any) -> "TrainResult":
        """What a runner (ours or SB3's: ``run_dir``, ``config``, ``env``, ``backend``, ``parallel``) knows of itself, plus ``outcome``."""
        return cls(
            run_dir=str(runner.run_dir.path),
            algo=runner.config.algo,
            robot=runner.env.robot.name,
            backend=runner.backend,
            num_envs=runner.config.num_envs,
            devices=runner.parallel.count,
            **outcome,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StopRequest:
    """Turns the first Ctrl-C / SIGTERM into "stop after this iteration"; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested: str | None = None

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class Runner:
    """One training run: ``Runner.start(...)`` for a new run, ``Runner.resume(...)`` to continue one.

    ``parallel`` splits the env batch over devices; ``start`` and ``reopen`` build it from ``devices``,
    how many of ``jax.devices()`` to use (None: all; see ``simrl.train.parallel``).
    """

    def __init__(self, config: TrainConfig, run_dir: RunDir, console: Console, show_progress: bool = True, parallel: DataParallel | None = None):
        self.config = config
        self.run_dir = run_dir
        self.console = console
        self.show_progress = show_progress
        self.backend = resolve_backend(config.backend)
        self.parallel = parallel or DataParallel.for_envs(config.num_envs)
        profile = run_dir.randomization_source(config)
        self.env = make_env(config, config.num_envs, auto_reset=True, randomization=profile)
        self.algo = make_algorithm(config, self.env, self.parallel)
        self.evaluator = Evaluator(make_env(config, config.eval_episodes, auto_reset=False, randomization=profile))
        self.total_iterations = total_iterations(config)
        env_state = jax.eval_shape(self.env.reset, jax.random.key(0))  # shapes only: where each leaf lives
        # The agent is donated: SAC's replay buffer would otherwise be copied every iteration.
        self._iterate = self.parallel.jit_iteration(self._guarded_iteration, env_state, config.num_envs, donate_agent=True)
        self._saved: tuple[int, int] | None = None  # (iteration, env steps) of the last checkpoint

    @classmethod
    def start(cls, config: TrainConfig, logdir: Path, console: Console, show_progress: bool = True, devices: int | None = None) -> "Runner":
        """A new run under ``logdir``."""
        parallel = DataParallel.for_envs(config.num_envs, devices)  # refuse a bad split before making the run dir
        return cls(config, RunDir.create(logdir, config), console, show_progress, parallel)

    @classmethod
    def reopen(cls, path: Path, console: Console, show_progress: bool = True, devices: int | None = None, **updates: Any) -> "Runner":
        """An existing run, to be continued with ``train(resume=True)``; ``updates`` (e.g. a larger
        ``total_steps``) that are not None are validated and saved into its config."""
        run_dir = RunDir.open(path)
        if not run_dir.checkpoint_file.is_file():
            raise SimrlError(f"{run_dir.checkpoint_file}: checkpoint not found, nothing to resume")
        config = run_dir.update_config(**updates)
        return cls(config, run_dir, console, show_progress, DataParallel.for_envs(config.num_envs, devices))

    def _guarded_iteration(self, agent: Any, env_state: Any, key: jax.Array) -> tuple[Any, Any, dict[str, jax.Array], jax.Array]:
        """The algorithm's iteration plus the NaN guard, in one compiled call."""
        new_agent, env_state, stats = self.algo.iteration(agent, env_state, key)
        losses = {k: v for k, v in stats.items() if k.startswith("loss/")}
        return new_agent, env_state, stats, tree_is_finite(new_agent) & tree_is_finite(losses)

    # -- checkpoints ---------------------------------------------------------

    def _meta(self, iteration: int, env_steps: int, wall_time_s: float) -> dict[str, Any]:
        return {
            "simrl_version": simrl.__version__,
            "algo": self.config.algo,
            "robot": self.env.robot.name,
            "task": self.config.task,
            "iteration": iteration,
            "env_steps": env_steps,
            "wall_time_s": wall_time_s,
        }

    def save(self, agent: Any, key: jax.Array, iteration: int, env_steps: int, wall_time_s: float) -> None:
        """Learner state and the policy, each written atomically."""
        meta = self._meta(iteration, env_steps, wall_time_s)
        save_checkpoint(self.run_dir.checkpoint_file, {"agent": agent, "key": key}, meta)
        save_policy(self.run_dir.policy_file, self.algo.policy(agent), meta)
        self._saved = (iteration, env_steps)

    def _fresh_state(self) -> tuple[Any, jax.Array]:
        init_key, loop_key = jax.random.split(jax.random.key(self.config.seed))
        return self.algo.init(init_key), loop_key

    # -- the loop ------------------------------------------------------------

    def train(self, clock_start: float | None = None, resume: bool = False) -> TrainResult:
        """Run until the step budget, the time budget, the target success or a stop request."""
        clock_start = time.perf_counter() if clock_start is None else clock_start
        cfg = self.config
        agent, key = self._fresh_state()
        iteration, env_steps, previous_wall = 0, 0, 0.0
        if resume:
            restored, meta = load_checkpoint(self.run_dir.checkpoint_file, {"agent": agent, "key": key})
            agent, key = restored["agent"], restored["key"]
            iteration, env_steps, previous_wall = meta["iteration"], meta["env_steps"], meta["wall_time_s"]
        agent, key = self.parallel.replicate((agent, key))
        env_state = self.parallel.reset(self.env.reset, jax.random.fold_in(jax.random.key(cfg.seed + 1), iteration), cfg.num_envs)
        self.evaluator.compile_in_background(self.parallel.to_host(self.algo.policy(agent)))  # ready by the first evaluation

        writer = RunWriter(self.run_dir.path)
        writer.config(config_to_yaml_dict(cfg), env_steps)
        writer.histograms(self.env.domain.summary(self.parallel.to_host(env_state.domain)), env_steps)
        wall = lambda: previous_wall + time.perf_counter() - clock_start  # noqa: E731
        split, train_steps = TimeSplit(), 0
        stop_reason = "completed"
        final_eval: EvalResult | None = None
        first_target: dict[str, Any] | None = None
        target = cfg.stop_at_success or 0.95
        shown: dict[str, float] = {}

        with StopRequest().installed() as stop, self._progress() as progress:
            total = self.total_iterations * self.algo.env_steps_per_iteration
            nan = float("nan")
            task = progress.add_task("training", total=total, completed=env_steps, rate=nan, success_rate=nan, **{"return": nan})
            while iteration < self.total_iterations:
                if stop.requested:
                    stop_reason = "interrupted"
                    break
                if cfg.max_minutes is not None and wall() >= 60 * cfg.max_minutes:
                    stop_reason = "time_budget"
                    break
                key, sub = jax.random.split(key)
                began = time.perf_counter()
                if split.startup_s is None:
                    split.startup_s = began - clock_start
                agent, env_state, stats, finite = self._iterate(agent, env_state, sub)
                if not bool(finite):
                    writer.close()
                    raise SimrlError(self._divergence_message(iteration + 1, stats))
                elapsed = time.perf_counter() - began
                iteration += 1
                env_steps += self.algo.env_steps_per_iteration
                if not split.first_iteration_s:
                    split.first_iteration_s = elapsed  # this process's first call compiles; keep it out of the throughput figure
                else:
                    split.iterations_s += elapsed
                    train_steps += self.algo.env_steps_per_iteration
                values = {k: float(v) for k, v in jax.device_get(stats).items()}
                rate = train_steps / split.iterations_s if split.iterations_s > 0 else float("nan")
                values.update({"perf/env_steps_per_s": rate, "perf/wall_time_s": wall(), "perf/iteration_s": elapsed})
                writer.scalars(values, env_steps)
                shown.update({k: values[k] for k in PROGRESS_KEYS if math.isfinite(values.get(k, math.nan))})
                progress.update(task, completed=env_steps, rate=rate, **{k.split("/")[1]: v for k, v in shown.items()})

                if iteration % cfg.eval_every == 0 or iteration == self.total_iterations:
                    began = time.perf_counter()
                    final_eval = self._evaluate(agent, iteration, env_steps, wall(), writer)
                    split.evaluations_s += time.perf_counter() - began
                    writer.histograms(self.env.domain.summary(self.parallel.to_host(env_state.domain)), env_steps)  # the worlds' current draws
                    if first_target is None and final_eval.success_rate >= target:
                        first_target = target_record(final_eval, iteration, env_steps, wall(), split)
                    if cfg.stop_at_success is not None and final_eval.success_rate >= cfg.stop_at_success:
                        stop_reason = "target_reached"
                        break
                if iteration % cfg.checkpoint_every == 0:
                    self.save(agent, key, iteration, env_steps, wall())

            self.save(agent, key, iteration, env_steps, wall())
        writer.close()
        result = TrainResult.of_run(
            self,
            stop_reason=stop_reason,
            iterations=iteration,
            env_steps=env_steps,
            wall_time_s=wall(),
            compile_s=split.first_iteration_s,
            train_env_steps_per_s=train_steps / split.iterations_s if split.iterations_s > 0 else None,
            time_split=split.to_dict(),
            final_eval=final_eval.to_dict() if final_eval else None,
            first_target_eval=first_target,
        )
        self.run_dir.write_summary(result.to_dict())
        return result

    def _divergence_message(self, iteration: int, stats: dict[str, jax.Array]) -> str:
        losses = ", ".join(f"{k}={float(v):.3g}" for k, v in stats.items() if k.startswith("loss/"))
        if self._saved is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = f"the last good checkpoint (iteration {self._saved[0]}, {self._saved[1]:,} env steps) is kept in {self.run_dir.checkpoint_file}"
        return f"training diverged at iteration {iteration} (non-finite parameters or losses: {losses}); {kept}"

    def _evaluate(self, agent: Any, iteration: int, env_steps: int, wall_time_s: float, writer: RunWriter) -> EvalResult:
        result = self.evaluator(self.parallel.to_host(self.algo.policy(agent)), self.config.eval_seed)  # on one device
        record_evaluation(result, self.run_dir, writer, self.console, iteration, env_steps, wall_time_s)
        return result

    def _progress(self) -> Progress:
        return progress_bar(self.console, self.show_progress)
