"""Data parallelism on two forced host devices: the numbers of one device, the work split, bad splits refused.

JAX reads ``XLA_FLAGS`` once, when it starts, so every check runs in a fresh
process that sees two CPU devices (``tests/multi_device_checks.py`` trains
the same seed on one and on both and saves what the test compares).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli import assert_one_line_error, simrl_command
from tests.tiny_run import tiny_train_args, write_tiny_recipe

TWO_DEVICES = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def run_check(check: str, out: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """One and two-device results of ``check`` (see tests/multi_device_checks.py)."""
    command = [sys.executable, "-m", "tests.multi_device_checks", check, str(out)]
    done = subprocess.run(command, env=TWO_DEVICES, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (dict(np.load(out / f"{name}.npz")) for name in ("one", "two"))
    return one, two, json.loads((out / "facts.json").read_text())


def assert_same_numbers(one: dict[str, np.ndarray], two: dict[str, np.ndarray]) -> None:
    """Equal up to float summation order (a cross-device all-reduce adds in another order)."""
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_two_devices_train_what_one_device_trains_and_split_the_work(tmp_path, algo):
    one, two, facts = run_check(algo, tmp_path)
    assert_same_numbers(one, two)
    assert np.ptp(one["stats/loss/policy" if algo == "ppo" else "stats/loss/q"]) > 0  # it learned something to compare
    assert (facts["one"]["envs_per_device"], facts["two"]["envs_per_device"]) == (16, 8)
    assert facts["two"]["params_fully_replicated"]
    # Each device computes its half of the rollout and of every minibatch (the gradient averaged by an all-reduce);
    # without the minibatch split each device would redo most of the update (about 0.75 of the flops for PPO).
    assert facts["two"]["flops_per_device"] < 0.7 * facts["one"]["flops_per_device"]


def test_the_runner_on_the_cpu_backend_trains_the_same_policy_on_two_devices(tmp_path):
    # The cpu backend's host callback steps the whole batch (gathered from both devices and split again).
    one, two, facts = run_check("runner", tmp_path)
    assert (facts["one"]["devices"], facts["two"]["devices"]) == (1, 2)
    assert_same_numbers(one, two)
    assert facts["two"]["final_eval"]["episodes"] == 8


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--envs", "15"], "num_envs = 15 is not divisible by the 2 devices; use a multiple of 2 or fewer devices (--devices)"),
        (["--devices", "3"], "--devices 3: JAX sees 2 device(s) (cpu); allowed 1 to 2"),
    ],
)
def test_a_batch_the_devices_cannot_split_is_a_one_line_error(tmp_path, flags, message):
    args = tiny_train_args(tmp_path, write_tiny_recipe(tmp_path))
    done = subprocess.run(simrl_command(*args, *flags), env=TWO_DEVICES, capture_output=True, text=True, timeout=300)
    assert_one_line_error(done, message)
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made
