"""Each arm end to end, as experiments/deploy_arm.py runs it: train, export, deploy on the emulated arm through its own bus.

Slow (training takes 2-5 minutes on 2 cores per arm): run with `make test-slow`. The
timing figures mean something only on a quiet machine (no other benchmark running).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "experiments" / "deploy_arm.py"


@pytest.mark.slow
@pytest.mark.parametrize("robot, motors", [("openarm", 8), ("so101", 6), ("omx", 6)])
def test_a_trained_policy_reaches_18_of_20_goals_on_the_emulated_arm_through_its_bus_at_50_hz(robot: str, motors: int, tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--robot", robot, "--out", str(tmp_path), "--sweep", "100"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / f"deploy_{robot}.json").read_text())
    # The config's own setup, and a second one of the same bus where there is one (the OpenArm: CAN FD, then classic CAN).
    twenty = [result["deploy_50hz"]] + ([result["comparison"]["run"]] if robot == "openarm" else [])
    for run in twenty:
        assert run["stop_reason"] == "completed" and run["final_enabled"] == [False] * motors  # every motor confirmed torque off
        assert run["goals_reached"] >= 18, run["final_distances_mm"]
        assert run["overruns"] == 0
        if result["scheduling"].startswith("SCHED_FIFO"):  # at normal priority a loaded machine decides the jitter, not the loop
            assert run["jitter_p99_ms"] < 0.5
    for short in ("deploy_50hz_emulator_apart", "deploy_50hz_normal_priority"):  # `simrl emulate` in another process; no RT rights
        run = result[short]
        assert run["stop_reason"] == "completed" and run["final_enabled"] == [False] * motors and run["goals_reached"] >= 4, short
    assert (tmp_path / f"deploy_{robot}.md").is_file()
