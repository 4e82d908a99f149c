"""Register the Gymnasium ids ``simrl/Reach-<robot>-v0`` for the shipped robots.

Only names and entry-point strings are registered here, so ``import simrl``
stays light (no JAX, no MuJoCo) until an env is actually made.
"""

from __future__ import annotations

import gymnasium

# The shipped arms (robots/<name>/). A user's own robot folder is used through
# gymnasium.make("simrl/Reach-so101-v0", robot="path/to/robot").
SHIPPED_ROBOTS = ("so101", "openarm", "fr3", "omx")


def register_envs() -> None:
    """Register one reach id per shipped robot (idempotent)."""
    for robot in SHIPPED_ROBOTS:
        env_id = f"simrl/Reach-{robot}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point="simrl.envs:ReachGymEnv", kwargs={"robot": robot})
