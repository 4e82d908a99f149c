"""Stable-Baselines3 PPO and SAC on the batched reach env: the baseline, run the way our own trainers run.

``simrl train reach --algo sb3-ppo|sb3-sac`` trains SB3 on ``ReachVecEnv``
(all worlds in one jitted step) with ``VecNormalize`` observations, and writes
the same run directory as ``Runner``: ``config.yaml``, ``evals.jsonl`` from our
``Evaluator`` (same goals, same X/N), TensorBoard events with our tags and env
steps as x (SB3's own ``rollout/``, ``train/`` and ``time/`` scalars go into
the same file), ``summary.json``, and ``policy.npz``: the SB3 actor and the
normalizer's statistics converted into simrl's ``Policy``, so ``simrl eval``
and ``simrl export`` run the same code for both. SB3's own files
(``checkpoint.zip``, ``vecnormalize.pkl``, ``replay_buffer.pkl``) let
``--resume`` continue a run.

An iteration is one SB3 rollout plus the update that follows it: ``n_steps``
steps of every env for PPO, ``train_freq`` for SAC; ``eval_every`` and
``checkpoint_every`` count these. ``--minutes`` and Ctrl-C stop after the
current env step, ``--until-success`` after the evaluation that reaches it.

This module imports SB3 and torch; it is imported only once
``simrl.extras.require_sb3`` has passed.
"""

from __future__ import annotations

import math
import pickle
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import stable_baselines3
import torch
from rich.console import Console
from rich.progress import Progress, TaskID
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecNormalize

import simrl
from simrl.errors import SimrlError
from simrl.files import atomic_write
from simrl.physics import resolve_backend
from simrl.sb3_env import ReachVecEnv
from simrl.train.algorithm import EPISODE_TAGS
from simrl.train.checkpoint import load_arrays
from simrl.train.config import TrainConfig, config_to_yaml_dict
from simrl.train.evaluation import EvalResult, Evaluator
from simrl.train.normalization import OBS_CLIP
from simrl.train.parallel import DataParallel
from simrl.train.policy import Policy, save_policy
from simrl.train.reporting import TimeSplit, progress_bar, record_evaluation, target_record
from simrl.train.run_dir import RunDir
from simrl.train.runner import PROGRESS_KEYS, TrainResult, StopRequest, make_env
from simrl.train.sb3_config import SB3_ALGOS, SB3PPOConfig, SB3SACConfig
from simrl.train.summaries import RunWriter

TORCH_ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU}


# -- SB3 actor -> simrl Policy ---------------------------------------------------


def _mlp(modules: Iterable[torch.nn.Module]) -> tuple[list[dict[str, np.ndarray]], str]:
    """Linear layers as ``{"w": (in, out), "b": (out,)}`` and the one activation between them."""
    layers, activations = [], set()
    for module in modules:
        if isinstance(module, torch.nn.Linear):
            layers.append({"w": module.weight.detach().cpu().numpy().T.copy(), "b": module.bias.detach().cpu().numpy().copy()})
        else:
            activations.add(type(module))
    names = {name for name, cls in TORCH_ACTIVATIONS.items() if cls in activations}
    if len(activations) > 1 or len(names) != len(activations):
        raise ValueError(f"cannot convert activations {sorted(a.__name__ for a in activations)} (allowed: one of {', '.join(TORCH_ACTIVATIONS)})")
    return layers, names.pop() if names else "tanh"


def policy_from_sb3(model: BaseAlgorithm, normalizer: VecNormalize | None) -> Policy:
    """The deterministic policy of an SB3 PPO or SAC model as simrl's ``Policy`` (raw observations in).

    PPO's action is the Gaussian mean clipped to the box (``squash="clip"``),
    SAC's is tanh of its mean (``"tanh"``) — what ``predict(deterministic=True)``
    returns for the normalized observation. ``normalizer`` folds in as the
    Policy's mean and std (its clip must be ``OBS_CLIP``); without one the
    Policy still clips inputs at +-OBS_CLIP, so it matches SB3 only while raw
    observations stay inside that.
    """
    if isinstance(model, PPO):
        layers, activation = _mlp([*model.policy.mlp_extractor.policy_net, model.policy.action_net])
        squash = "clip"
    elif isinstance(model, SAC):
        layers, activation = _mlp([*model.actor.latent_pi, model.actor.mu])
        squash = "tanh"
    else:
        raise ValueError(f"cannot convert {type(model).__name__} (allowed: PPO, SAC)")
    size = layers[0]["w"].shape[0]
    if normalizer is None:
        mean, std = np.zeros(size, np.float32), np.ones(size, np.float32)
    else:
        if normalizer.clip_obs != OBS_CLIP:
            raise ValueError(f"VecNormalize clip_obs={normalizer.clip_obs} differs from the Policy's clip {OBS_CLIP}")
        mean = normalizer.obs_rms.mean.astype(np.float32)
        std = np.sqrt(normalizer.obs_rms.var + normalizer.epsilon).astype(np.float32)
    return Policy(obs_mean=mean, obs_std=std, layers=layers, activation=activation, squash=squash)


# -- building a model --------------------------------------------------------------


def _ppo(config: SB3PPOConfig, env: VecNormalize, seed: int) -> PPO:
    lr = config.learning_rate if config.lr_schedule == "constant" else LinearSchedule(config.learning_rate, 0.0, 1.0)
    sizes = list(config.hidden_sizes)
    return PPO(
        "MlpPolicy", env, learning_rate=lr, n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
        gamma=config.gamma, gae_lambda=config.gae_lambda, clip_range=config.clip_range, ent_coef=config.ent_coef,
        vf_coef=config.vf_coef, max_grad_norm=config.max_grad_norm, target_kl=config.target_kl, seed=seed, device=config.device,
        policy_kwargs={"net_arch": {"pi": sizes, "vf": sizes}, "activation_fn": TORCH_ACTIVATIONS[config.activation], "log_std_init": config.log_std_init},
    )  # fmt: skip


def _sac(config: SB3SACConfig, env: VecNormalize, seed: int) -> SAC:
    return SAC(
        "MlpPolicy", env, learning_rate=config.learning_rate, buffer_size=config.buffer_size, learning_starts=config.learning_starts,
        batch_size=config.batch_size, tau=config.tau, gamma=config.gamma, train_freq=config.train_freq,
        gradient_steps=config.gradient_steps, ent_coef=config.ent_coef, target_entropy=config.target_entropy or "auto",
        seed=seed, device=config.device,
        policy_kwargs={"net_arch": list(config.hidden_sizes), "activation_fn": TORCH_ACTIVATIONS[config.activation]},
    )  # fmt: skip


class _TensorBoardForward(KVWriter):
    """SB3's logger output into the run's own event file (x: env steps), so one TensorBoard run holds both."""

    def __init__(self, writer: RunWriter):
        self._writer = writer

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        numbers = {k: float(v) for k, v in key_values.items() if isinstance(v, (int, float, np.number)) and "tensorboard" not in (key_excluded.get(k) or ())}
        self._writer.scalars(numbers, step)

    def close(self) -> None:
        """The runner closes the writer."""


# -- the run ---------------------------------------------------------------------


class _RunCallback(BaseCallback):
    """Our side of SB3's ``learn()``: episode statistics, the stop conditions, and each finished iteration's
    scalars, evaluation and checkpoint (done when the next rollout starts, i.e. after SB3's update)."""

    def __init__(
        self, runner: "SB3Runner", writer: RunWriter, stop: StopRequest, progress: Progress, task: TaskID, clock_start: float, wall: Callable[[], float], iteration: int
    ):
        super().__init__()
        self.runner, self.writer, self.stop, self.progress, self.task, self.wall = runner, writer, stop, progress, task, wall
        self.clock_start = clock_start
        self.iteration = iteration
        self.stop_reason: str | None = None
        self.final_eval: EvalResult | None = None
        self.first_target: dict[str, Any] | None = None
        self.split = TimeSplit()
        self.train_steps = 0
        self._episodes: dict[str, list[float]] = defaultdict(list)
        self._shown: dict[str, float] = {}
        self._began: float | None = None  # start of the iteration in progress

    def _on_step(self) -> bool:
        for i in np.flatnonzero(self.locals["dones"]):
            info = self.locals["infos"][i]  # as ReachVecEnv fills it for a finished episode
            finished = {
                "episode_return": info["episode"]["r"], "episode_length": info["episode"]["l"],
                "episode_success": info["is_success"], "episode_final_distance": info["final_distance"],
            }  # fmt: skip
            for name, value in finished.items():
                self._episodes[name].append(float(value))
        cfg = self.runner.config
        if self.stop_reason is None and self.stop.requested:
            self.stop_reason = "interrupted"
        elif self.stop_reason is None and cfg.max_minutes is not None and self.wall() >= 60 * cfg.max_minutes:
            self.stop_reason = "time_budget"
        return self.stop_reason is None

    def _on_rollout_start(self) -> None:
        if self._began is not None:
            self.end_iteration()
        self._began = time.perf_counter()
        if self.split.startup_s is None:
            self.split.startup_s = self._began - self.clock_start

    def finish(self) -> None:
        """After ``learn()`` returns: account for its last update, which no rollout start followed, unless the run was stopped mid-rollout."""
        if self.stop_reason is None and self._began is not None:
            self.end_iteration()

    def end_iteration(self) -> None:
        """Log, evaluate and checkpoint the iteration that just finished (rollout and update)."""
        runner, cfg, model = self.runner, self.runner.config, self.model
        elapsed = time.perf_counter() - self._began
        self.iteration += 1
        env_steps = model.num_timesteps
        if not self.split.first_iteration_s:
            self.split.first_iteration_s = elapsed  # the first iteration compiles the env step and warms torch up
        else:
            self.split.iterations_s += elapsed
            self.train_steps += runner.steps_per_iteration
        values = {EPISODE_TAGS[name]: float(np.mean(v)) for name, v in self._episodes.items()}
        values["episode/count"] = float(len(self._episodes.get("episode_return", ())))
        self._episodes.clear()
        rate = self.train_steps / self.split.iterations_s if self.split.iterations_s > 0 else math.nan
        values.update({"perf/env_steps_per_s": rate, "perf/wall_time_s": self.wall(), "perf/iteration_s": elapsed})
        self.writer.scalars(values, env_steps)
        self._shown.update({k: values[k] for k in PROGRESS_KEYS if math.isfinite(values.get(k, math.nan))})
        self.progress.update(self.task, completed=env_steps, rate=rate, **{k.split("/")[1]: v for k, v in self._shown.items()})

        if self.iteration % cfg.eval_every == 0 or env_steps >= cfg.total_steps:
            began = time.perf_counter()
            self.final_eval = runner.evaluator(policy_from_sb3(model, runner.normalizer), cfg.eval_seed)
            record_evaluation(self.final_eval, runner.run_dir, self.writer, runner.console, self.iteration, env_steps, self.wall())
            self.split.evaluations_s += time.perf_counter() - began
            target = cfg.stop_at_success or 0.95
            if self.first_target is None and self.final_eval.success_rate >= target:
                self.first_target = target_record(self.final_eval, self.iteration, env_steps, self.wall(), self.split)
            if cfg.stop_at_success is not None and self.final_eval.success_rate >= cfg.stop_at_success:
                self.stop_reason = "target_reached"
        if self.iteration % cfg.checkpoint_every == 0:
            runner.save(model, self.iteration, self.wall(), replay_buffer=False)


class SB3Runner:
    """One Stable-Baselines3 training run: ``start(...)`` a new one or ``reopen(...)`` one to ``train(resume=True)``."""

    def __init__(self, config: TrainConfig, run_dir: RunDir, console: Console, show_progress: bool = True, devices: int | None = None):
        if config.algo not in SB3_ALGOS:
            raise SimrlError(f"{run_dir.config_file}: algo '{config.algo}' is not a Stable-Baselines3 one (allowed: {', '.join(SB3_ALGOS)})")
        if devices not in (None, 1):
            raise SimrlError(f"--devices {devices}: the Stable-Baselines3 baselines run on one device (allowed: 1)")
        self.parallel = DataParallel.for_envs(config.num_envs, 1)  # where the env batch lives
        self.config = config
        self.run_dir = run_dir
        self.console = console
        self.show_progress = show_progress
        self.backend = resolve_backend(config.backend)
        profile = run_dir.randomization_source(config)
        self.env = make_env(config, config.num_envs, auto_reset=True, randomization=profile)
        self.evaluator = Evaluator(make_env(config, config.eval_episodes, auto_reset=False, randomization=profile))
        hp = config.algo_config
        self.steps_per_iteration = config.num_envs * (hp.n_steps if isinstance(hp, SB3PPOConfig) else hp.train_freq)
        self.normalizer: VecNormalize | None = None  # set by train()

    @classmethod
    def start(cls, config: TrainConfig, logdir: Path, console: Console, show_progress: bool = True, devices: int | None = None) -> "SB3Runner":
        """A new run under ``logdir``."""
        return cls(config, RunDir.create(logdir, config), console, show_progress, devices)

    @classmethod
    def reopen(cls, path: Path, console: Console, show_progress: bool = True, devices: int | None = None, **updates: Any) -> "SB3Runner":
        """An existing SB3 run; ``updates`` that are not None (``total_steps``, ``max_minutes``, ``stop_at_success``) go into its config."""
        run_dir = RunDir.open(path)
        if not run_dir.sb3_model_file.is_file():
            raise SimrlError(f"{run_dir.sb3_model_file}: checkpoint not found, nothing to resume")
        return cls(run_dir.update_config(**updates), run_dir, console, show_progress, devices)

    def _model(self, resume: bool) -> tuple[BaseAlgorithm, int, float]:
        """The SB3 model on a fresh ``VecNormalize(ReachVecEnv)``, or as last saved; with the iteration and wall time it had reached."""
        cfg, hp = self.config, self.config.algo_config
        algo_class = PPO if cfg.algo == "sb3-ppo" else SAC
        if not resume:
            self.normalizer = VecNormalize(ReachVecEnv(self.env, cfg.seed), norm_reward=hp.normalize_reward, clip_obs=OBS_CLIP, gamma=hp.gamma)
            model = _ppo(hp, self.normalizer, cfg.seed) if cfg.algo == "sb3-ppo" else _sac(hp, self.normalizer, cfg.seed)
            return model, 0, 0.0
        _, meta = load_arrays(self.run_dir.policy_file)
        venv = ReachVecEnv(self.env, cfg.seed + meta["iteration"])
        self.normalizer = VecNormalize.load(str(self.run_dir.sb3_normalization_file), venv)
        model = algo_class.load(self.run_dir.sb3_model_file, env=self.normalizer, device=hp.device)
        if isinstance(model, SAC) and self.run_dir.sb3_replay_buffer_file.is_file():
            model.load_replay_buffer(self.run_dir.sb3_replay_buffer_file)
        return model, meta["iteration"], meta["wall_time_s"]

    def save(self, model: BaseAlgorithm, iteration: int, wall_time_s: float, replay_buffer: bool) -> None:
        """SB3's model and normalizer (and, when ``replay_buffer``, SAC's buffer), then the simrl policy; each file atomically."""
        atomic_write(self.run_dir.sb3_model_file, model.save)
        atomic_write(self.run_dir.sb3_normalization_file, lambda f: pickle.dump(self.normalizer, f))
        if replay_buffer and isinstance(model, SAC):
            atomic_write(self.run_dir.sb3_replay_buffer_file, model.save_replay_buffer)
        meta = {"simrl_version": simrl.__version__, "sb3_version": stable_baselines3.__version__, "algo": self.config.algo}
        meta |= {"robot": self.env.robot.name, "task": self.config.task, "iteration": iteration, "env_steps": model.num_timesteps, "wall_time_s": wall_time_s}
        save_policy(self.run_dir.policy_file, policy_from_sb3(model, self.normalizer), meta)

    def train(self, clock_start: float | None = None, resume: bool = False) -> TrainResult:
        """Run SB3's ``learn()`` until the step budget, the time budget, the target success or a stop request."""
        clock_start = time.perf_counter() if clock_start is None else clock_start
        cfg = self.config
        torch.set_num_threads(cfg.algo_config.torch_threads)
        model, iteration, previous_wall = self._model(resume)
        wall = lambda: previous_wall + time.perf_counter() - clock_start  # noqa: E731
        writer = RunWriter(self.run_dir.path)
        writer.config(config_to_yaml_dict(cfg), model.num_timesteps)
        model.set_logger(Logger(None, [_TensorBoardForward(writer)]))
        with StopRequest().installed() as stop, progress_bar(self.console, self.show_progress) as progress:
            nan = float("nan")
            task = progress.add_task("training", total=cfg.total_steps, completed=model.num_timesteps, rate=nan, success_rate=nan, **{"return": nan})
            loop = _RunCallback(self, writer, stop, progress, task, clock_start, wall, iteration)
            remaining = max(cfg.total_steps - model.num_timesteps, 0)
            # PPO logs once per rollout; SAC once per round of episodes (they end together in all worlds).
            log_interval = 1 if cfg.algo == "sb3-ppo" else cfg.num_envs
            model.learn(remaining, callback=loop, log_interval=log_interval, reset_num_timesteps=not resume)
            loop.finish()
            self.save(model, loop.iteration, wall(), replay_buffer=True)
        writer.close()
        result = TrainResult.of_run(
            self,
            stop_reason=loop.stop_reason or "completed",
            iterations=loop.iteration,
            env_steps=model.num_timesteps,
            wall_time_s=wall(),
            compile_s=loop.split.first_iteration_s,
            train_env_steps_per_s=loop.train_steps / loop.split.iterations_s if loop.split.iterations_s > 0 else None,
            time_split=loop.split.to_dict(),
            final_eval=loop.final_eval.to_dict() if loop.final_eval else None,
            first_target_eval=loop.first_target,
        )
        self.run_dir.write_summary(result.to_dict())
        return result
