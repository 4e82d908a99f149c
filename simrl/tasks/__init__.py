"""Tasks: observation, action mapping, reward terms, success and reset distribution.

Pure array code written against the numpy / jax.numpy array API (``xp``) so the
training env and the robot-side deploy loop run the same lines.
"""
