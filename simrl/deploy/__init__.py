"""Carry a trained policy onto an arm: ONNX export, the real-time bridge, motor buses and their emulators.

Nothing on the robot side needs JAX: the exported graph runs in onnxruntime,
and the observation and joint-target mapping are the numpy path of the task
code (``simrl.deploy.export`` alone imports the training code, to read a run).
"""
