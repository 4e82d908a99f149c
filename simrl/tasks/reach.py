"""Reach: bring the end effector within ``success_radius`` of a random goal.

Everything here is pure array code parameterised by ``xp`` (numpy or
jax.numpy); randomness comes in as uniform samples so the caller owns the RNG.
Weights and settings live in ``rewards/reach.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pydantic

from simrl.config import StrictModel, load_yaml_model
from simrl.kinematics import KinematicChain, ee_jacobian, ee_position
from simrl.paths import data_dir
from simrl.robots import Robot

ACTION_SPACES = ("joint_delta", "ee_delta")


class ReachRewardScales(StrictModel):
    """Weight of each raw reward term (the raw terms are logged under these names)."""

    distance: float = pydantic.Field(description="times metres from ee to goal")
    reached: float = pydantic.Field(description="times 1 while within success_radius")
    action_rate: float = pydantic.Field(description="times squared change of the action")


class ReachConfig(StrictModel):
    """The schema of ``rewards/reach.yaml``."""

    success_radius: float = pydantic.Field(0.02, gt=0, le=0.5, description="m")
    episode_steps: int = pydantic.Field(50, ge=1, le=100_000)
    action_space: Literal["joint_delta", "ee_delta"] = "joint_delta"
    init_joint_noise: float = pydantic.Field(0.05, ge=0, le=1.0, description="rad")
    ik_damping: float = pydantic.Field(0.05, gt=0, le=1.0, description="m")
    scales: ReachRewardScales


def load_reach_config(path: str | Path | None = None) -> ReachConfig:
    """Read ``rewards/reach.yaml`` (or a user's copy)."""
    return load_yaml_model(Path(path) if path else data_dir("rewards") / "reach.yaml", ReachConfig)


class ReachState(NamedTuple):
    """Task variables per env: ``goal`` (..., 3), joint ``target`` and ``last_action`` (..., n_arm)."""

    goal: Any
    target: Any
    last_action: Any


@dataclass(frozen=True)
class ReachTask:
    """Constants of the reach task for one robot, and the pure functions that use them."""

    config: ReachConfig
    chain: KinematicChain
    joint_low: np.ndarray  # (n_arm,)
    joint_high: np.ndarray  # (n_arm,)
    home: np.ndarray  # (n_arm,)
    goal_low: np.ndarray  # (3,)
    goal_high: np.ndarray  # (3,)
    action_scale: float

    @classmethod
    def for_robot(cls, robot: Robot, config: ReachConfig) -> "ReachTask":
        scale = robot.config.action_scale
        return cls(
            config=config,
            chain=KinematicChain.from_model(robot.model, robot.ee_site_id, robot.arm_joint_ids),
            joint_low=robot.arm_ranges[:, 0],
            joint_high=robot.arm_ranges[:, 1],
            home=robot.home_qpos[robot.arm_qpos_adr],
            goal_low=np.array(robot.config.goal_workspace.low),
            goal_high=np.array(robot.config.goal_workspace.high),
            action_scale=scale.joint_delta if config.action_space == "joint_delta" else scale.ee_delta,
        )

    @property
    def n_arm(self) -> int:
        return len(self.home)

    @property
    def action_size(self) -> int:
        return self.n_arm if self.config.action_space == "joint_delta" else 3

    def observation_layout(self) -> list[tuple[str, int]]:
        """Names and sizes of the observation's parts, in order."""
        n = self.n_arm
        return [
            ("joint_pos", n),
            ("joint_vel", n),
            ("ee_pos", 3),
            ("goal", 3),
            ("ee_to_goal", 3),
            ("last_action", self.action_size),
            ("joint_target", n),
        ]

    @property
    def observation_size(self) -> int:
        return sum(size for _, size in self.observation_layout())

    def sample_goal(self, xp: Any, uniform: Any) -> Any:
        """Goal (..., 3) from uniform samples (..., 3) in [0, 1)."""
        return xp.asarray(self.goal_low) + uniform * xp.asarray(self.goal_high - self.goal_low)

    def sample_initial_joints(self, xp: Any, uniform: Any) -> Any:
        """Arm joint positions (..., n_arm) near home from uniform samples (..., n_arm) in [0, 1)."""
        noise = (2.0 * uniform - 1.0) * self.config.init_joint_noise
        return xp.clip(xp.asarray(self.home) + noise, xp.asarray(self.joint_low), xp.asarray(self.joint_high))

    def initial_state(self, xp: Any, goal: Any, joints: Any) -> ReachState:
        """Task state at the start of an episode: targets at the start pose, no previous action."""
        last_action = xp.zeros(joints.shape[:-1] + (self.action_size,), dtype=joints.dtype)
        return ReachState(goal=goal, target=joints, last_action=last_action)

    def next_target(self, xp: Any, action: Any, target: Any) -> Any:
        """Map an action in [-1, 1] to new joint targets (..., n_arm) — the same code runs on hardware.

        ``joint_delta`` adds ``action * scale`` rad to each target. ``ee_delta``
        asks for an ee displacement of ``action * scale`` m and converts it with
        damped least squares at the current targets: dq = Jᵀ (J Jᵀ + λ² I)⁻¹ dx.
        """
        action = xp.clip(action, -1.0, 1.0) * self.action_scale
        if self.config.action_space == "joint_delta":
            delta = action
        else:
            _, jac = ee_jacobian(xp, self.chain, target)
            jac_t = xp.swapaxes(jac, -1, -2)
            damping = (self.config.ik_damping**2) * xp.eye(3, dtype=target.dtype)
            weights = xp.linalg.solve(jac @ jac_t + damping, action[..., None])
            delta = (jac_t @ weights)[..., 0]
        return xp.clip(target + delta, xp.asarray(self.joint_low), xp.asarray(self.joint_high))

    def ee_position(self, xp: Any, joint_pos: Any) -> Any:
        """End-effector position (..., 3) from arm joint positions (..., n_arm)."""
        return ee_position(xp, self.chain, joint_pos)

    def observe(self, xp: Any, joint_pos: Any, joint_vel: Any, ee: Any, state: ReachState) -> Any:
        """Observation (..., observation_size) in the order of ``observation_layout``."""
        parts = [joint_pos, joint_vel, ee, state.goal, state.goal - ee, state.last_action, state.target]
        return xp.concatenate([xp.asarray(p, dtype=joint_pos.dtype) for p in parts], axis=-1)

    def distance(self, xp: Any, ee: Any, goal: Any) -> Any:
        """Distance (...,) from the end effector to the goal, in metres."""
        return xp.linalg.norm(ee - goal, axis=-1)

    def reward_terms(self, xp: Any, distance: Any, action: Any, last_action: Any) -> dict[str, Any]:
        """Raw reward terms (...,), keyed like ``ReachRewardScales``."""
        return {
            "distance": distance,
            "reached": xp.asarray(distance < self.config.success_radius, dtype=distance.dtype),
            "action_rate": xp.sum((action - last_action) ** 2, axis=-1),
        }

    def reward(self, terms: dict[str, Any]) -> Any:
        """Weighted sum of the raw terms."""
        scales = self.config.scales.model_dump()
        return sum(scales[name] * value for name, value in terms.items())

    def is_success(self, distance: Any) -> Any:
        """Success test on the final distance of an episode."""
        return distance < self.config.success_radius
