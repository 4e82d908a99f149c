"""Carry a trained policy off the training machine: ONNX export and its latency benchmark.

Nothing here needs JAX at inference time: the exported graph runs in
onnxruntime, and the joint-target mapping is the numpy path of the task code.
"""
