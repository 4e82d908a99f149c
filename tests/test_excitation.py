"""Excitation schedules (`simrl deploy --excite`): safety and identifiability properties, and one emulated run end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from simrl.deploy.excitation import KP_LEVELS, LIMIT_MARGIN, SIGNALS, STEP_SHARE, VELOCITY_SHARE, ArmSetup, ExcitationRequest, Schedule, design
from simrl.deploy.log import PHASE_EXCITE, read_log
from simrl.deploy.session import DeployRequest, Plan, prepare
from simrl.errors import SimrlError
from tests.cli import assert_one_line_error, run_simrl

ARM = [f"joint{i}" for i in range(1, 8)]


def plan_for(**fields: object) -> Plan:
    return prepare(DeployRequest(robot="openarm", excitation=ExcitationRequest(**fields)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def mixed() -> Plan:
    return plan_for(signal="mixed", duration=30.0)


def nominal(plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    config = plan.config
    kp, kd = np.array([m.kp for m in config.motors]), np.array([m.kd for m in config.motors])
    home = plan.schedule.position[0]  # type: ignore[union-attr]
    return home, kp, kd


@pytest.mark.parametrize("signal", SIGNALS)
def test_every_signal_stays_in_the_limits_and_the_safety_steps_and_starts_and_ends_at_home(signal: str) -> None:
    plan = plan_for(signal=signal, duration=20.0)
    schedule, safety = plan.schedule, plan.config.safety
    assert schedule is not None
    home, kp, kd = nominal(plan)
    limits = np.array([plan.config.joint_limits[m.joint] for m in plan.config.motors])
    assert (schedule.position >= limits[:, 0] + LIMIT_MARGIN - 1e-12).all() and (schedule.position <= limits[:, 1] - LIMIT_MARGIN + 1e-12).all()
    step = np.abs(np.diff(schedule.position, axis=0)).max()
    assert 0 < step <= STEP_SHARE * safety.max_step_rad + 1e-12
    assert step / plan.config.period <= VELOCITY_SHARE * safety.max_velocity_rad_s + 1e-9
    for row in (0, -1):  # home at nominal gains at both ends: the home ramp before and the shutdown after see nothing new
        np.testing.assert_array_equal(schedule.position[row], home)
        np.testing.assert_array_equal(schedule.kp[row], kp)
        np.testing.assert_array_equal(schedule.kd[row], kd)
    assert schedule.ticks == pytest.approx(20.0 / plan.config.period, abs=8)


def test_one_joint_moves_at_a_time_the_rest_hold_home_at_nominal_gains(mixed: Plan) -> None:
    schedule = mixed.schedule
    assert schedule is not None
    home, kp, kd = nominal(mixed)
    away = np.abs(schedule.position - home) > 1e-12
    changed = away | (schedule.kp != kp) | (schedule.kd != kd)
    assert changed.sum(axis=1).max() == 1  # never two motors off their hold at once
    groups = schedule.description["groups"]
    assert groups == [[joint] for joint in ARM]  # default: every arm joint, one per group, in arm order
    for g, (joint,) in enumerate(groups):
        motor = ARM.index(joint)
        assert not changed[schedule.group != g, motor].any()  # only during its own group
        assert away[schedule.group == g, motor].mean() > 0.8  # and it really moves then
    assert not changed[:, 7].any()  # the gripper holds


def test_each_excited_joint_moves_at_two_kp_and_two_kd_levels(mixed: Plan) -> None:
    schedule = mixed.schedule
    assert schedule is not None
    home, kp, kd = nominal(mixed)
    for motor, joint in enumerate(ARM):
        moving = np.abs(schedule.position[:, motor] - home[motor]) > 1e-3
        kp_seen = sorted(set(schedule.kp[moving, motor]))
        kd_seen = sorted(set(schedule.kd[moving, motor]))
        assert kp_seen == pytest.approx(sorted(kp[motor] * np.array(KP_LEVELS))), joint
        assert len(kd_seen) == 2 and kd_seen[0] == kd[motor] and kd[motor] * 1.25 <= kd_seen[1] <= 5.0, joint  # within the Damiao kd range
        for level in kd_seen:  # moving at each kd level, and at both amplitudes of the broadband part
            assert (moving & (schedule.kd[:, motor] == level)).sum() > 20, joint
    assert schedule.description["kd_levels"]["joint1"] == [2.7, 5.0]  # 2 x 2.7 capped at the motor's kd range


def test_mixed_has_ramps_steps_and_two_amplitudes_of_broadband_per_joint(mixed: Plan) -> None:
    pieces = mixed.schedule.description["pieces"]  # type: ignore[union-attr]
    for g in range(len(ARM)):
        mine = [p for p in pieces if p["group"] == g]
        assert [p["kind"] for p in mine] == ["ramps", "steps", "multisine", "multisine"]
        assert [p["relative_amplitude"] for p in mine[2:]] == pytest.approx([1.0, 1 / 3], rel=1e-5)
        assert {(p["kp_level"], p["kd_level"]) for p in mine} == {(0, 0), (1, 0), (0, 1), (1, 1)}


def test_the_same_seed_repeats_the_schedule_and_another_seed_changes_it() -> None:
    def arrays(schedule: Schedule | None) -> list[np.ndarray]:
        assert schedule is not None
        return [schedule.position, schedule.kp, schedule.kd]

    for signal in ("mixed", "multisine", "steps"):
        first, again, other = (plan_for(signal=signal, duration=10.0, seed=seed).schedule for seed in (3, 3, 4))
        for a, b in zip(arrays(first), arrays(again)):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(first.position, other.position), signal  # type: ignore[union-attr]


def test_joints_restricts_and_orders_the_groups() -> None:
    schedule = plan_for(signal="chirp", joints=("joint4", "joint2"), duration=4.0).schedule
    assert schedule is not None and schedule.description["groups"] == [["joint4"], ["joint2"]]
    home = schedule.position[0]
    moved = np.abs(schedule.position - home).max(axis=0) > 0
    assert moved.tolist() == [False, True, False, True, False, False, False, False]
    assert np.flatnonzero(moved[None] & (np.abs(schedule.position - home) > 0))[0] % 8 == 3  # joint4 goes first


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"signal": "mixd"}, "--excite = 'mixd' is not a signal (did you mean 'mixed'?); allowed: mixed, chirp, multisine, steps, ramps"),
        ({"joints": ("joint2", "jiont4")}, "--joints: 'jiont4' is not a joint with a motor (did you mean 'joint4'?); allowed: joint1,"),
        ({"amplitude": 2.0}, "--amplitude = 2: allowed: radians above 0, at most 1"),
        ({"duration": 0.5}, "--duration = 0.5 is too short for 7 joint group(s); allowed: at least"),
    ],
)
def test_bad_excitation_input_is_one_line_naming_flag_value_and_what_is_allowed(fields: dict, message: str) -> None:
    with pytest.raises(SimrlError) as error:
        plan_for(**fields)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_deploy_needs_a_policy_or_an_excitation(tmp_path: Path) -> None:
    assert_one_line_error(run_simrl("deploy", "--robot", "openarm", "--goal", "0.2,-0.15,0.4"), "--policy is missing: give an ONNX policy written by `simrl export`, or --excite SIGNAL")
    assert_one_line_error(run_simrl("deploy", "--robot", "openarm", "--excite", "chrip"), "--excite = 'chrip' is not a signal (did you mean 'chirp'?)")


def test_deploy_excite_on_the_emulated_arm_logs_the_levels_and_the_motion(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    result = run_simrl("deploy", "--robot", "openarm", "--excite", "mixed", "--duration", "3", "--emulate", "--reality", "openarm-sysid", "--log", str(path), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stop_reason"] == "completed" and summary["policy"] is None and summary["excitation"].startswith("mixed on joint1")
    assert summary["obs_to_command_p50_ms"] < 0.25 * 20  # the command leaves right after the reading, not a period later
    arrays, meta = read_log(path)
    assert meta["format_version"] == 4 and meta["excitation"]["signal"] == "mixed" and meta["reality"]["reality"] == "openarm-sysid"
    assert meta["excitation"]["groups"] == [[joint] for joint in ARM] and meta["excitation"]["seed"] == 0
    excite = arrays["phase"] == PHASE_EXCITE
    assert excite.sum() == meta["excitation"]["ticks"] == summary["excite_ticks"]
    # Each joint's own stretch of the run (its group's pieces, plus 3 ticks for the 30 ms latency), from the meta.
    own = np.zeros((excite.sum(), len(ARM)), bool)
    for piece in meta["excitation"]["pieces"]:
        own[round(piece["start_s"] * 50) : round(piece["end_s"] * 50) + 3, piece["group"]] = True
    velocity = np.abs(arrays["velocity"][excite])
    for motor, joint in enumerate(ARM):
        kp_levels, kd_levels = meta["excitation"]["kp_levels"][joint], meta["excitation"]["kd_levels"][joint]
        assert sorted(set(arrays["command_kp"][excite, motor])) == pytest.approx(sorted(kp_levels))
        assert sorted(set(arrays["command_kd"][excite, motor])) == pytest.approx(sorted(kd_levels))
        assert np.ptp(arrays["command_position"][excite, motor]) > 0.05, joint
        # It moved when excited, not just through the other joints' coupling (measured 4.5x-10x here).
        assert velocity[own[:, motor], motor].mean() > 2 * velocity[~own[:, motor], motor].mean(), joint
    assert np.ptp(arrays["position"][excite, 7]) < 1e-3  # the gripper held


SO101_ARM = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]


def so101_setup() -> ArmSetup:
    """The SO-101's deploy/so101.yaml as the schedule sees it (home and limits from the file and robot.yaml)."""
    plan = prepare(DeployRequest(robot="so101", excitation=ExcitationRequest(), emulate=True))  # --emulate: no calibration file needed to plan
    config = plan.config
    return ArmSetup(
        joints=tuple(m.joint for m in config.motors), arm_joints=tuple(SO101_ARM), home=plan.schedule.position[0],  # type: ignore[union-attr]
        limits=np.array([config.joint_limits[m.joint] for m in config.motors]), kp=np.zeros(6), kd=np.zeros(6), kd_max=np.zeros(6),
        laws=("servo",) * 6, period=config.period, max_step=config.safety.max_step_rad, max_velocity=config.safety.max_velocity_rad_s,
    )


def test_a_servo_arm_plays_the_same_signals_at_one_gain_level_its_own() -> None:
    """The SO-101's servos take no gains with a goal (P/D sit in EEPROM): the schedule sends the config's 0, 0 on every
    tick, says each excited joint runs its own loop, and is otherwise the schedule an MIT arm with these limits gets."""
    servo = so101_setup()
    request = ExcitationRequest(signal="mixed", duration=30.0)
    schedule = design(request, servo)
    assert not schedule.kp.any() and not schedule.kd.any()
    d = schedule.description
    assert d["control_law"] == {joint: "servo" for joint in SO101_ARM} and d["kp_levels"] == {} and d["kd_levels"] == {}
    assert {(p["kp_level"], p["kd_level"]) for p in d["pieces"]} == {(0, 0)}  # one level: the servo's own
    assert schedule.summary().endswith("seed 0, the servos' own gains (one level)")
    mit = design(request, dataclasses.replace(servo, kp=np.full(6, 998.0), kd=np.full(6, 2.73), kd_max=np.full(6, 5.0), laws=("impedance",) * 6))
    np.testing.assert_array_equal(schedule.position, mit.position)  # same signals, order, limits and holds
    np.testing.assert_array_equal(schedule.group, mit.group)
    assert [p["kind"] for p in d["pieces"]] == [p["kind"] for p in mit.description["pieces"]]
    assert mit.summary().endswith("kp x{1, 0.6}, kd x{1, 2}") and {(p["kp_level"], p["kd_level"]) for p in mit.description["pieces"]} == {
        (0, 0), (1, 0), (0, 1), (1, 1)
    }


def test_deploy_excite_on_the_emulated_so101_logs_the_servo_law_and_no_gains(tmp_path: Path) -> None:
    """`simrl deploy --robot so101 --excite` was refused (kd 0); it now runs on the Feetech emulator behind a pty."""
    path = tmp_path / "so101.npz"
    result = run_simrl("deploy", "--robot", "so101", "--excite", "mixed", "--duration", "3", "--emulate", "--log", str(path), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stop_reason"] == "completed" and summary["excitation"].endswith("the servos' own gains (one level)")
    arrays, meta = read_log(path)
    assert meta["format_version"] == 4 and meta["control_law"] == {joint: "servo" for joint in SO101_ARM + ["gripper"]}
    assert meta["excitation"]["control_law"] == {joint: "servo" for joint in SO101_ARM}
    excite = arrays["phase"] == PHASE_EXCITE
    assert excite.sum() == meta["excitation"]["ticks"] and not arrays["command_kp"][excite].any() and not arrays["command_kd"][excite].any()
    for motor, joint in enumerate(SO101_ARM):
        assert np.ptp(arrays["position"][excite, motor]) > 0.02, joint  # each joint moved under its own loop
