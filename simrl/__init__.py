"""simrl: reinforcement learning for robot arms in massively parallel MuJoCo, carried onto real arms."""

from simrl.registration import register_envs

__version__ = "0.1.0"

register_envs()
