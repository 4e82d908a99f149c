"""Latency of one policy call in onnxruntime, made as the robot loop makes it: batch 1, one call at a time.

A control loop at 30-100 Hz calls the policy once per period and misses a
deadline on its slowest call, not on the average one, so the figures are
per-call percentiles and the maximum over many calls, each timed alone with
``perf_counter_ns``, after warm-up calls (the first runs allocate buffers and
fill caches). The session is sequential with ``intra_op_num_threads`` threads
(1 by default, what a robot loop that keeps its other cores for the bus and
the camera would give it).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from simrl.errors import SimrlError

WARMUP_CALLS = 200


@dataclass(frozen=True)
class PolicyBenchResult:
    """Per-call latency of one ``bench_policy`` run, in microseconds."""

    policy: str
    calls: int
    warmup_calls: int
    threads: int
    obs_size: int
    action_size: int
    p50_us: float
    p99_us: float
    max_us: float
    mean_us: float
    onnxruntime_version: str
    cpu_count: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def open_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session running the graph's nodes one after another on ``threads`` threads."""
    if not path.is_file():
        raise SimrlError(f"{path}: file not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's load errors (InvalidProtobuf, Fail, ...) share no narrower base class
        raise SimrlError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None


def _io_sizes(path: Path, session: ort.InferenceSession) -> tuple[str, int, int]:
    """Input name, observation and action sizes of a policy graph (one input and one output, batch first)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 2 or not isinstance(inputs[0].shape[1], int):
        raise SimrlError(f"{path}: not a policy graph (expected one input [batch, obs_size] and one output)")
    return inputs[0].name, inputs[0].shape[1], outputs[0].shape[-1]


def bench_policy(path: Path, calls: int = 10_000, threads: int = 1, seed: int = 0) -> PolicyBenchResult:
    """Time ``calls`` single-observation runs (random standard-normal observations) after ``WARMUP_CALLS``."""
    session = open_session(path, threads)
    name, obs_size, action_size = _io_sizes(path, session)
    observations = np.random.default_rng(seed).standard_normal((WARMUP_CALLS + calls, 1, obs_size), dtype=np.float32)
    for obs in observations[:WARMUP_CALLS]:
        session.run(None, {name: obs})
    latencies_ns = np.empty(calls, dtype=np.int64)
    for i, obs in enumerate(observations[WARMUP_CALLS:]):
        start = time.perf_counter_ns()
        session.run(None, {name: obs})
        latencies_ns[i] = time.perf_counter_ns() - start
    latencies_us = latencies_ns / 1e3
    p50, p99 = np.percentile(latencies_us, [50, 99])
    return PolicyBenchResult(
        policy=str(path),
        calls=calls,
        warmup_calls=WARMUP_CALLS,
        threads=threads,
        obs_size=obs_size,
        action_size=action_size,
        p50_us=float(p50),
        p99_us=float(p99),
        max_us=float(latencies_us.max()),
        mean_us=float(latencies_us.mean()),
        onnxruntime_version=ort.__version__,
        cpu_count=os.cpu_count() or 1,
    )


__all__ = ["PolicyBenchResult", "bench_policy", "open_session"]
