"""``simrl gap`` as a user runs it: an excitation recorded on the emulated arm, then the report, the fit and the patch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from simrl.randomization.profile import load_profile
from tests.cli import assert_one_line_error, run_simrl


@pytest.fixture(scope="module")
def excitation_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of `mixed` excitation on joint4 and joint6 of the emulated openarm-sysid arm, in real time, through the CAN emulator."""
    path = tmp_path_factory.mktemp("deploy") / "excite.npz"
    result = run_simrl(
        "deploy", "--robot", "openarm", "--excite", "mixed", "--joints", "joint4,joint6", "--duration", "6",
        "--emulate", "--reality", "openarm-sysid", "--log", str(path), "--json", timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return path


def test_gap_on_an_emulated_excitation_writes_the_report_the_fit_and_a_patch_training_accepts(excitation_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "gap"
    result = run_simrl("gap", str(excitation_log), "--out", str(out), "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for name in ("report.md", "report.html", "fitted.yaml", "randomization_patch.yaml", "gap.json", "joint4.png"):
        assert (out / name).is_file(), name
    assert report["next_command"] == f"simrl train reach --robot openarm --randomization {out / 'randomization_patch.yaml'}"
    assert report["logs"][0]["timing"]["observation_to_command_ms"]["p50"] < 5.0  # the bridge no longer waits a period
    values = {v["name"]: v for v in report["fit"]["values"]}
    assert set(report["logs"][0]["moving_joints"]) == {"joint4", "joint6"}
    assert values["joint4.kp"]["scale"] == pytest.approx(0.7, rel=0.1)  # the reality's motors give 70 % of the commanded kp
    assert 0.020 <= report["fit"]["latency_s"] <= 0.045  # 30 ms, plus the physics step and the loop's own jitter
    joints = {j["joint"]: j for j in report["logs"][0]["joints"]}
    assert joints["joint4"]["rmse_fitted"] < 0.5 * joints["joint4"]["rmse_nominal"]
    profile, _ = load_profile(out / "randomization_patch.yaml", "openarm")  # `simrl train --randomization` reads it like this
    kp_entries = yaml.safe_load((out / "randomization_patch.yaml").read_text())["actuator_kp"]
    fitted = next(e for e in kp_entries if e["joints"] == ["joint4"])
    assert fitted["low"] < 0.7 < fitted["high"] and fitted["high"] < 1.0  # centred on the weak motor, not on the model
    assert "html" in (out / "report.html").read_text()[:40] and "data:image/png;base64," in (out / "report.html").read_text()


def test_a_log_of_another_robot_is_refused_and_leaves_nothing_behind(excitation_log: Path, tmp_path: Path) -> None:
    with np.load(excitation_log) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["robot"] = "so101"
    other = tmp_path / "other.npz"
    np.savez(other, **arrays, meta=np.array(json.dumps(meta)))
    out = tmp_path / "gap"
    result = run_simrl("gap", str(excitation_log), str(other), "--out", str(out))
    assert_one_line_error(result, f"error: {other}: this log is from robot 'so101', not 'openarm'")
    assert not out.exists()


def test_a_missing_log_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_simrl("gap", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "gap")), f"error: {tmp_path / 'nope.npz'}: no such deploy log")


def test_gap_on_a_policys_own_log_measures_that_run_and_its_training_envelope(tmp_path: Path) -> None:
    """A policy deploy log (every joint moving at once, one block): the gap, the training envelope, and a fit that explains it."""
    from simrl.deploy.session import prepare
    from simrl.gap.pipeline import GapRequest, run_gap
    from simrl.robots import load_robot
    from tests.test_deploy import fast_request, sim_run, write_policy

    openarm = load_robot("openarm")
    default = {"joint_damping": {"distribution": "loguniform", "low": 0.5, "high": 2.0}, "actuator_kp": {"distribution": "uniform", "low": 0.8, "high": 1.2}}
    policy = write_policy(tmp_path / "policy.onnx", openarm, 0.6, {"randomization": {"name": "default", "content": default}})
    _, _, log = sim_run(prepare(fast_request(policy, ticks=150)), reality="openarm-sysid")
    log.write(tmp_path / "policy-run.npz")
    result = run_gap(GapRequest(logs=(tmp_path / "policy-run.npz",), worlds=8))
    gap = result.logs[0]
    assert gap.recording.describe()["kind"] == "policy" and len(gap.recording.moving_joints) >= 3
    assert result.envelope is not None and result.envelope.profile == "default" and result.envelope.worlds == 8
    moving = [j for j in gap.joints if j.joint in gap.recording.moving_joints]
    assert all(0.0 <= j.inside_envelope <= 1.0 for j in moving)
    low, high = gap.envelope
    assert np.all(low <= high) and np.ptp(high - low) > 0  # the drawn worlds do differ
    assert sum(j.rmse_fitted for j in moving) < 0.5 * sum(j.rmse_nominal for j in moving)


SO101_ARM = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")


@pytest.mark.slow
def test_gap_on_the_emulated_so101s_servos_recovers_what_the_model_can_show(tmp_path: Path) -> None:
    """Two 30 s `mixed` excitations of the emulated SO-101 under so101-sysid (Feetech firmware on a pty, in real time;
    seed 1 held out), then `simrl gap`. The servos' loop is replayed at the model's gains: damping (x1.8 on the three
    base joints) and the torque cap (x0.85) come back, the latency within a 5 ms physics step; friction, 2 % of the
    cap, is flagged; kp reads below the reality's 0.8: the emulated STS3215 keeps its one-tick dead zone, which the
    model lacks. Three runs of these same seeds measured damping within 7, 14 and 4 %, the cap within 7, 17 and 4 %,
    kp 0.64-0.76, 0.31-0.49 and 0.63-0.73, held-out 5.6x, 4.9x, 4.7x: kp and the cap trade against the dead zone,
    and the emulator applies each goal on its 5 ms physics grid (a latency that jitters by up to a step, differently
    each run), which we take to be why runs differ (not separated)."""
    logs = []
    for seed in ("0", "1"):
        logs.append(tmp_path / f"excite{seed}.npz")
        result = run_simrl(
            "deploy", "--robot", "so101", "--excite", "mixed", "--duration", "30", "--seed", seed, "--reality-seed", seed,
            "--emulate", "--reality", "so101-sysid", "--log", str(logs[-1]), "--json", timeout=300,
        )
        assert result.returncode == 0, result.stderr
    out = tmp_path / "gap"
    result = run_simrl("gap", str(logs[0]), "--validate", str(logs[1]), "--out", str(out), "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    values = {v["name"]: v for v in report["fit"]["values"]}
    for joint in SO101_ARM:
        damping = values[f"{joint}.damping"]
        if damping["identifiable"]:
            assert damping["scale"] == pytest.approx(1.8 if joint in ("shoulder_pan", "shoulder_lift", "elbow_flex") else 1.0, rel=0.2), joint
        assert values[f"{joint}.torque_limit"]["scale"] == pytest.approx(0.85, rel=0.2), joint
        assert values[f"{joint}.kp"]["scale"] < 0.85 and values[f"{joint}.kp"]["unit"] == "N·m/rad", joint
        assert not values[f"{joint}.frictionloss"]["identifiable"], joint
    assert 0.025 <= report["fit"]["latency_s"] <= 0.040
    assert report["validation_rmse_rad"]["nominal"] >= 4 * report["validation_rmse_rad"]["fitted"]
    assert any("close their own position loop (control law servo)" in note for note in report["notes"])
    caps = yaml.safe_load((out / "randomization_patch.yaml").read_text())["actuator_force_limit"]
    assert all(entry["low"] < 0.85 < entry["high"] for entry in caps if entry.get("joints") and entry["joints"][0] in SO101_ARM)
