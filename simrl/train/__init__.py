"""Learning: PPO and SAC written in JAX (one jitted function per iteration), and the runner around them.

The split follows rsl_rl: an algorithm (``ppo.py``, ``sac.py``) knows how to
turn env steps into parameter updates; the runner (``runner.py``) owns the run
directory, logging, checkpoints, evaluation and the user's Ctrl-C.
``sb3.py`` runs the Stable-Baselines3 baselines into the same run directory
(imported only when asked for: SB3 is the optional ``sb3`` extra).
"""
