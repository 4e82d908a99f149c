"""The functional vectorized env, and its Gymnasium face.

``ReachEnv`` follows Brax / MuJoCo Playground: ``reset(key) -> State`` and
``step(state, action) -> State`` are pure and jittable, the whole batch of N
worlds lives in one ``State`` pytree, and finished episodes restart inside
``step`` (auto-reset) so a training loop can ``lax.scan`` over it.

Contract for learners (shapes with N = num_envs):
- ``obs`` (N, obs_size) float32; actions (N, action_size) in [-1, 1].
- ``done`` (N,) marks the step that ended an episode. After an auto-reset,
  ``obs`` already belongs to the next episode; ``final_obs`` holds the last
  observation of the finished one. ``truncated`` (N,) says the episode hit the
  time limit (bootstrap from ``final_obs``); ``done & ~truncated`` is a true
  termination (the physics became non-finite).
- ``metrics`` holds this step's raw reward terms and distance, and the
  finished episode's ``episode_return``, ``episode_length``, ``episode_success``
  and ``episode_final_distance`` (meaningful where ``done``).

With a randomization profile, each world draws its physics, latency and sensor
errors when its episode starts (``state.domain``); the physics backend gets the
world's model fields, and latency, noise and quantization are applied here, so
both backends share them. Rewards and metrics use the true state; ``obs`` is
what the robot's sensors would report.

``make_sb3_vec_env`` puts the same batch behind Stable-Baselines3's ``VecEnv``
(``simrl.sb3_env``, imported only when asked for, as SB3 is an optional extra).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from simrl.errors import SimrlError
from simrl.extras import require_sb3
from simrl.physics import Backend, PhysicsState, make_backend
from simrl.physics.base import delayed_controls
from simrl.randomization.apply import quantize
from simrl.randomization.profile import ResolvedParameter, ResolvedProfile, resolve_profile
from simrl.randomization.sampler import Domain, DomainSampler, max_latency_steps, spread_over_joints
from simrl.robots import Robot, load_robot
from simrl.tasks.reach import ReachConfig, ReachState, ReachTask, load_reach_config

if TYPE_CHECKING:
    from simrl.sb3_env import ReachVecEnv


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class State:
    """Everything about N envs at one control step (a JAX pytree)."""

    physics: PhysicsState
    task: ReachState
    obs: jax.Array  # (N, obs_size)
    reward: jax.Array  # (N,)
    done: jax.Array  # (N,) bool
    truncated: jax.Array  # (N,) bool
    final_obs: jax.Array  # (N, obs_size)
    step_count: jax.Array  # (N,) int32, steps taken in the current episode
    episode_return: jax.Array  # (N,) running return of the current episode
    metrics: dict[str, jax.Array]  # (N,) each
    key: jax.Array  # PRNG key for resets and per-step noise
    domain: Domain  # this episode's randomized physics, timing and sensor values per world
    ctrl_history: jax.Array  # (N, H, nu) commands sent, newest first (H = 0 without latency)


class ReachEnv:
    """N reach envs of one robot on one physics backend."""

    def __init__(
        self,
        robot: Robot | str,
        num_envs: int,
        backend: str | Backend = "auto",
        task_config: ReachConfig | None = None,
        auto_reset: bool = True,
        randomization: ResolvedProfile | None = None,
    ):
        self.robot = robot if isinstance(robot, Robot) else load_robot(robot)
        self.num_envs = num_envs
        self.physics = (
            backend if not isinstance(backend, str) else make_backend(backend, self.robot.model, self.robot.substeps, num_envs)
        )
        if self.physics.num_worlds != num_envs:
            raise SimrlError(f"backend steps {self.physics.num_worlds} worlds but the env has {num_envs}")
        self.task = ReachTask.for_robot(self.robot, task_config or load_reach_config())
        self.auto_reset = auto_reset
        self._home_qpos = jnp.asarray(self.robot.home_qpos, jnp.float32)
        self._home_ctrl = jnp.asarray(self.robot.home_ctrl, jnp.float32)
        self.randomization = randomization
        self.domain = DomainSampler(self.robot, randomization)
        has_latency = randomization is not None and any(randomization.get(k) for k in ("latency_steps", "latency_substeps"))
        # newest command first; a latency of L periods plus a fraction needs commands t-L and t-L-1
        self._history = max_latency_steps(randomization) + 2 if has_latency else 0

    @property
    def observation_size(self) -> int:
        return self.task.observation_size

    @property
    def action_size(self) -> int:
        return self.task.action_size

    def _arm(self, qpos: jax.Array, qvel: jax.Array) -> tuple[jax.Array, jax.Array]:
        return qpos[:, self.robot.arm_qpos_adr], qvel[:, self.robot.arm_dof_adr]

    def _fresh(self, key: jax.Array) -> tuple[PhysicsState, ReachState, jax.Array, jax.Array, Domain, jax.Array]:
        """New episodes for every env: a fresh domain, start pose near home, goal in the workspace box."""
        n, n_arm = self.num_envs, self.task.n_arm
        goal_key, joint_key, domain_key, noise_key = jax.random.split(key, 4)
        domain = self.domain.sample(domain_key, n)
        uniform_goal = jax.random.uniform(goal_key, (n, 3))
        if "goal_workspace_scale" in domain.values:
            uniform_goal = 0.5 + (uniform_goal - 0.5) * domain.values["goal_workspace_scale"][:, None]
        goal = self.task.sample_goal(jnp, uniform_goal)
        offset = self._episode_joint_values("init_joint_noise", domain)
        if offset is None:
            joints = self.task.sample_initial_joints(jnp, jax.random.uniform(joint_key, (n, n_arm)))
        else:
            joints = jnp.clip(jnp.asarray(self.task.home) + offset, self.task.joint_low, self.task.joint_high)
        qpos = jnp.tile(self._home_qpos, (n, 1)).at[:, self.robot.arm_qpos_adr].set(joints)
        physics = PhysicsState(qpos=qpos, qvel=jnp.zeros((n, self.robot.model.nv), jnp.float32))
        task_state = self.task.initial_state(jnp, goal, joints)
        joint_pos, joint_vel = self._arm(physics.qpos, physics.qvel)
        obs = self._observe(joint_pos, joint_vel, task_state, domain, self.domain.step_noise(noise_key, n))
        ctrl = self._ctrl(joints)
        history = jnp.broadcast_to(ctrl[:, None], (n, self._history, ctrl.shape[-1]))
        return physics, task_state, obs, self.task.distance(jnp, self.task.ee_position(jnp, joint_pos), goal), domain, history

    def _param(self, kind: str) -> ResolvedParameter | None:
        return self.randomization.get(kind) if self.randomization else None

    def _ctrl(self, target: jax.Array) -> jax.Array:
        """Actuator commands (N, nu): the arm's joint targets, every other actuator at home."""
        return jnp.tile(self._home_ctrl, (self.num_envs, 1)).at[:, self.robot.arm_actuators].set(target)

    def _noisy(self, kind: str, value: jax.Array, domain: Domain, noise: dict[str, jax.Array], per_joint: bool = True) -> jax.Array:
        """``value`` plus this kind's per-step noise or per-episode bias, spread over the joints it covers."""
        param = self._param(kind)
        if param is None:
            return value
        sample = noise.get(kind, domain.values.get(kind))
        return value + (spread_over_joints(sample, param, self.task.n_arm) if per_joint else sample)

    def _episode_joint_values(self, kind: str, domain: Domain) -> jax.Array | None:
        """This episode's per-joint draw of ``kind`` over all arm joints (0 where not covered), None without it."""
        param = self._param(kind)
        return None if param is None else spread_over_joints(domain.values[kind], param, self.task.n_arm)

    def _observe(self, joint_pos: jax.Array, joint_vel: jax.Array, task_state: ReachState, domain: Domain, noise: dict[str, jax.Array]) -> jax.Array:
        """The observation as the robot's sensors would give it: noise, bias and encoder quantization applied.

        The end effector is computed from the measured joints (as on hardware) before its own noise.
        """
        measured_pos = self._noisy("obs_joint_pos_noise", joint_pos, domain, noise)
        resolution = self._episode_joint_values("encoder_resolution", domain)
        if resolution is not None:
            measured_pos = quantize(jnp, measured_pos, resolution)
        measured_vel = self._noisy("obs_joint_vel_noise", joint_vel, domain, noise)
        ee = self._noisy("obs_ee_noise", self.task.ee_position(jnp, measured_pos), domain, noise, per_joint=False)
        return self.task.observe(jnp, measured_pos, measured_vel, ee, task_state)

    def _delayed(self, ctrl: jax.Array, state: State) -> tuple[jax.Array, jax.Array]:
        """The command the motors act on this period under the world's latency, and the updated history."""
        if not self._history:
            return ctrl, state.ctrl_history
        history = jnp.concatenate([ctrl[:, None], state.ctrl_history[:, :-1]], axis=1)
        worlds = jnp.arange(self.num_envs)
        steps = state.domain.values.get("latency_steps", jnp.zeros(self.num_envs, jnp.int32))
        current, previous = history[worlds, steps], history[worlds, steps + 1]
        if "latency_substeps" not in state.domain.values:
            return current, history
        substeps = self.robot.substeps
        delay = jnp.clip(jnp.round(state.domain.values["latency_substeps"] * substeps), 0, substeps).astype(jnp.int32)
        return delayed_controls(previous, current, delay, substeps), history

    def reset(self, key: jax.Array) -> State:
        """Start N episodes."""
        key, sub = jax.random.split(key)
        physics, task_state, obs, distance, domain, history = self._fresh(sub)
        n = self.num_envs
        zeros = jnp.zeros(n, jnp.float32)
        false = jnp.zeros(n, bool)
        metric_names = [*self.task.config.scales.model_dump(), "distance", "episode_return", "episode_length", "episode_success", "episode_final_distance"]
        return State(
            physics=physics,
            task=task_state,
            obs=obs,
            reward=zeros,
            done=false,
            truncated=false,
            final_obs=obs,
            step_count=jnp.zeros(n, jnp.int32),
            episode_return=zeros,
            metrics={name: distance if name == "distance" else zeros for name in metric_names},
            key=key,
            domain=domain,
            ctrl_history=history,
        )

    def step(self, state: State, action: jax.Array) -> State:
        """Apply ``action`` (N, action_size) for one control period; auto-reset finished envs."""
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        key, noise_key = jax.random.split(state.key) if self.domain.parameters else (state.key, state.key)
        noise = self.domain.step_noise(noise_key, self.num_envs)
        target = self.task.next_target(jnp, action, state.task.target)
        # Actuation noise in joint-delta action units, added to the joint targets whatever the action space.
        target_noise = self._noisy("action_noise", jnp.zeros_like(target), state.domain, noise) * self.robot.config.action_scale.joint_delta
        target = jnp.clip(target + target_noise, self.task.joint_low, self.task.joint_high)
        ctrl, history = self._delayed(self._ctrl(target), state)
        # A world's physics is redrawn only when its episode starts (step_count 0): the cpu backend rewrites just those.
        physics = self.physics.step(state.physics, ctrl, state.domain.model or None, changed=state.step_count == 0).state

        joint_pos, joint_vel = self._arm(physics.qpos, physics.qvel)
        task_state = ReachState(goal=state.task.goal, target=target, last_action=action)
        ee = self.task.ee_position(jnp, joint_pos)
        distance = self.task.distance(jnp, ee, task_state.goal)
        terms = self.task.reward_terms(jnp, distance, action, state.task.last_action)
        finite = jnp.all(jnp.isfinite(physics.qpos), axis=1) & jnp.all(jnp.isfinite(physics.qvel), axis=1)
        reward = jnp.where(finite, self.task.reward(terms), 0.0)
        obs = jnp.where(finite[:, None], self._observe(joint_pos, joint_vel, task_state, state.domain, noise), 0.0)

        step_count = state.step_count + 1
        truncated = (step_count >= self.task.config.episode_steps) & finite
        done = truncated | ~finite
        episode_return = state.episode_return + reward
        metrics = {
            **terms,
            "distance": distance,
            "episode_return": episode_return,
            "episode_length": step_count.astype(jnp.float32),
            "episode_success": self.task.is_success(distance).astype(jnp.float32),
            "episode_final_distance": distance,
        }
        stepped = dataclasses.replace(
            state,
            physics=physics,
            task=task_state,
            obs=obs,
            reward=reward,
            done=done,
            truncated=truncated,
            final_obs=obs,
            step_count=step_count,
            episode_return=episode_return,
            metrics=metrics,
            key=key,
            ctrl_history=history,
        )
        if not self.auto_reset:
            return stepped
        # Episodes of a batch tend to end on the same step; skip the reset work on the others.
        return jax.lax.cond(jnp.any(done), self._auto_reset, lambda s: s, stepped)

    def _auto_reset(self, state: State) -> State:
        """Restart the envs whose episode just ended; ``final_obs``, reward, done and metrics stay those of the step."""
        key, sub = jax.random.split(state.key)
        physics, task_state, obs, _, domain, history = self._fresh(sub)

        def pick(fresh: jax.Array, old: jax.Array) -> jax.Array:
            mask = state.done.reshape((-1,) + (1,) * (old.ndim - 1))
            return jnp.where(mask, fresh, old)

        return dataclasses.replace(
            state,
            physics=jax.tree_util.tree_map(pick, physics, state.physics),
            task=jax.tree_util.tree_map(pick, task_state, state.task),
            obs=pick(obs, state.obs),
            step_count=jnp.where(state.done, 0, state.step_count),
            episode_return=jnp.where(state.done, 0.0, state.episode_return),
            key=key,
            domain=jax.tree_util.tree_map(pick, domain, state.domain),
            ctrl_history=pick(history, state.ctrl_history),
        )


class ReachGymEnv(gymnasium.Env):
    """One reach env behind the Gymnasium API (``gymnasium.make("simrl/Reach-so101-v0")``).

    It runs the same jitted ``ReachEnv`` code with N = 1 and no auto-reset, so a
    Gymnasium user and the batched trainer see the same task. ``info["is_success"]``
    follows the Stable-Baselines3 / Gymnasium-Robotics convention.
    """

    metadata = {"render_modes": []}

    def __init__(self, robot: str = "so101", backend: str = "cpu", task_config: str | None = None):
        self._env = ReachEnv(robot, num_envs=1, backend=backend, task_config=load_reach_config(task_config), auto_reset=False)
        self._reset_fn = jax.jit(self._env.reset)
        self._step_fn = jax.jit(self._env.step)
        self._state: State | None = None
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self._env.observation_size,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self._env.action_size,), np.float32)

    def _info(self, state: State) -> dict[str, Any]:
        distance = float(state.metrics["distance"][0])
        return {"is_success": bool(self._env.task.is_success(distance)), "distance": distance}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
        self._state = self._reset_fn(key)
        return np.asarray(self._state.obs[0]), self._info(self._state)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        self._state = self._step_fn(self._state, jnp.asarray(action, jnp.float32)[None])
        state = self._state
        terminated = bool(state.done[0] & ~state.truncated[0])
        return np.asarray(state.obs[0]), float(state.reward[0]), terminated, bool(state.truncated[0]), self._info(state)


def make_sb3_vec_env(
    task: str,
    robot: Robot | str,
    n_envs: int,
    backend: str = "cpu",
    task_config: ReachConfig | str | Path | None = None,
    randomization: str | Path | None = None,
    seed: int = 0,
) -> ReachVecEnv:
    """``n_envs`` worlds of ``task`` as one Stable-Baselines3 ``VecEnv`` (``simrl.sb3_env.ReachVecEnv``), stepped in one jitted call.

    ``randomization`` is a profile name or file (as ``--randomization``). SB3 is
    imported only here, so simrl works without the ``sb3`` extra; without it
    this raises a one-line ``SimrlError`` saying what to install.
    """
    if task != "reach":
        raise SimrlError(f"unknown task '{task}' (allowed: reach)")
    require_sb3("make_sb3_vec_env")
    from simrl.sb3_env import ReachVecEnv

    arm = robot if isinstance(robot, Robot) else load_robot(robot)
    settings = task_config if isinstance(task_config, ReachConfig) else load_reach_config(task_config)
    profile = resolve_profile(randomization, arm) if randomization else None
    env = ReachEnv(arm, n_envs, backend=backend, task_config=settings, randomization=profile if profile and profile.parameters else None)
    return ReachVecEnv(env, seed=seed)
