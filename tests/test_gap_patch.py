"""The randomization patch of ``simrl gap`` over a base profile whose kinds are lists of per-joint entries (e.g. an earlier patch)."""

from __future__ import annotations

from pathlib import Path

import yaml

from simrl.gap.identify import Fit, FittedValue
from simrl.gap.patch import randomization_patch
from simrl.randomization.profile import resolve_profile
from simrl.robots import load_robot

BASE = """\
joint_damping:
  - {distribution: fixed, value: 1.5, joints: [joint1, joint2]}
  - {distribution: uniform, low: 0.7, high: 1.3, joints: 're:joint[5-7]'}
"""


def _fit(*values: FittedValue) -> Fit:
    return Fit(joints=("joint1",), values=list(values), motor_values=None, latency_s=0.0, cost_nominal=1.0, cost_fitted=0.5, iterations=1)  # type: ignore[arg-type]


def test_unfitted_joints_keep_the_base_entry_that_covered_them(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    openarm = load_robot("openarm")
    damping = FittedValue("joint1.damping", "joint1", "damping", scale=1.8, value=1.8, nominal=1.0, interval=0.01, unit="N·m·s/rad", identifiable=True)
    patch = randomization_patch(_fit(damping), openarm, base)
    by_joints = {tuple(entry["joints"]): entry for entry in patch["joint_damping"]}
    assert set(by_joints) == {("joint1",), ("joint2",), ("joint5", "joint6", "joint7")}  # joint3-4: the base left them nominal
    assert by_joints[("joint1",)]["low"] < 1.8 < by_joints[("joint1",)]["high"]
    assert by_joints[("joint2",)] == {"distribution": "fixed", "value": 1.5, "joints": ["joint2"]}
    assert (by_joints[("joint5", "joint6", "joint7")]["low"], by_joints[("joint5", "joint6", "joint7")]["high"]) == (0.7, 1.3)
    path = tmp_path / "patch.yaml"
    path.write_text(yaml.safe_dump(patch))
    again = randomization_patch(_fit(damping), openarm, path)  # a patch is a valid base for the next one
    assert resolve_profile(path, openarm).entries("joint_damping") and again["joint_damping"] == patch["joint_damping"]
