"""Carry a trained policy onto an arm: the real-time bridge, motor buses and their emulators.

Nothing on the robot side needs JAX: the exported graph runs in onnxruntime,
and the observation and joint-target mapping are the numpy path of the task
code. The ONNX export reads a training run, so it lives above, in ``simrl.export``.
"""
