"""A deploy log as the gap checker reads it, and every way a log is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simrl.errors import SimrlError
from simrl.gap.recording import read_recording
from simrl.robots import Robot, load_robot
from simrl.deploy.buses.settings import IMPEDANCE, SERVO
from tests.gap_logs import INFERENCE_S, OPENARM_KD, OPENARM_KP, SO101_KD, SO101_KP, write_reality, write_synthetic_log


@pytest.fixture(scope="module")
def openarm() -> Robot:
    return load_robot("openarm")


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory, openarm: Robot) -> Path:
    folder = tmp_path_factory.mktemp("log")
    write_synthetic_log(folder / "log.npz", openarm, write_reality(folder / "truth.yaml"), OPENARM_KP, OPENARM_KD, duration=2.0)
    return folder / "log.npz"


@pytest.fixture(scope="module")
def so101() -> Robot:
    return load_robot("so101")


@pytest.fixture(scope="module")
def servo_log(tmp_path_factory: pytest.TempPathFactory, so101: Robot) -> Path:
    path = tmp_path_factory.mktemp("servo") / "log.npz"
    write_synthetic_log(path, so101, "so101-sysid", SO101_KP, SO101_KD, duration=2.0, law=SERVO)
    return path


def rewrite(source: Path, target: Path, **changes) -> Path:
    """A copy of a log with columns replaced (an array) or removed (None), or ``meta`` keys set or removed (a dict, None removes)."""
    with np.load(source) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    for key, value in changes.pop("meta", {}).items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(target, **arrays, meta=np.array(json.dumps(meta)))
    return target


def test_a_current_log_reads_commands_after_the_reading_they_came_from(log: Path, openarm: Robot) -> None:
    recording = read_recording(log, openarm)
    assert recording.version == 4 and recording.joints == tuple(openarm.config.arm_joints) + ("finger_joint1",)
    assert recording.laws == (IMPEDANCE,) * 8
    assert recording.period == pytest.approx(0.02)
    assert np.allclose(recording.command_to_read_delay, INFERENCE_S)
    assert recording.moving_joints == tuple(openarm.config.arm_joints)


def test_a_version_1_log_sent_each_command_one_exchange_later(log: Path, openarm: Robot, tmp_path: Path) -> None:
    with np.load(log) as data:
        read = data["t_read"]
    old = rewrite(log, tmp_path / "v1.npz", t_send=read - 0.0004, t_read_send=None, t_command=None, meta={"format_version": 1})
    recording = read_recording(old, openarm)
    assert recording.version == 1
    assert np.allclose(recording.command_to_read_delay, 0.02, atol=5e-4)  # about one period: the extra tick the bridge used to add


def test_the_kp_a_command_acted_with_is_kp_times_its_effort_and_v2_logs_ramped_kp_itself(log: Path, openarm: Robot, tmp_path: Path) -> None:
    with np.load(log) as data:
        kp = data["command_kp"]
    ramped = read_recording(rewrite(log, tmp_path / "ramp.npz", command_effort=np.full(kp.shape, 0.25)), openarm)
    np.testing.assert_allclose(ramped.command_kp, kp / 4)  # a shutdown ramp at a quarter: the MIT motor ran a quarter of kp
    v2 = read_recording(rewrite(log, tmp_path / "v2.npz", command_effort=None, meta={"format_version": 2}), openarm)
    np.testing.assert_array_equal(v2.command_kp, kp)


def test_shifted_readings_move_only_the_reading_clock(log: Path, openarm: Robot) -> None:
    recording = read_recording(log, openarm)
    later = recording.shifted_readings(0.04)
    assert np.allclose(later.read_time - recording.read_time, 0.04)
    assert np.array_equal(later.command_time, recording.command_time)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"meta": {"robot": "so101"}}, "from robot 'so101', not 'openarm'"),
        ({"meta": {"policy_metadata": {"robot": "fr3"}}}, "trained for 'fr3'"),
        ({"t_command": None}, "needs t_command"),
        ({"fresh": np.zeros((100, 8), bool)}, "usable ticks"),
    ],
)
def test_a_log_that_cannot_be_replayed_is_refused_in_one_line(log: Path, openarm: Robot, tmp_path: Path, change: dict, message: str) -> None:
    bad = rewrite(log, tmp_path / "bad.npz", **change)
    with pytest.raises(SimrlError, match=message) as error:
        read_recording(bad, openarm)
    assert "\n" not in str(error.value) and str(bad) in str(error.value)


def test_a_truncated_log_is_refused(log: Path, openarm: Robot, tmp_path: Path) -> None:
    cut = tmp_path / "cut.npz"
    cut.write_bytes(log.read_bytes()[: len(log.read_bytes()) // 2])
    with pytest.raises(SimrlError, match="truncated or corrupt"):
        read_recording(cut, openarm)


def test_a_log_without_motion_is_refused(log: Path, openarm: Robot, tmp_path: Path) -> None:
    with np.load(log) as data:
        held = np.tile(data["command_position"][:1], (len(data["command_position"]), 1))
    with pytest.raises(SimrlError, match="no motion"):
        read_recording(rewrite(log, tmp_path / "still.npz", command_position=held), openarm)


def test_a_log_that_does_not_say_its_control_laws_reads_as_impedance_motors(log: Path, openarm: Robot, tmp_path: Path) -> None:
    old = rewrite(log, tmp_path / "v3.npz", meta={"format_version": 3, "control_law": None})
    recording = read_recording(old, openarm)
    assert recording.version == 3 and recording.laws == (IMPEDANCE,) * 8  # every log before format 4 was an MIT arm's


def test_a_servo_log_says_so_and_leaves_out_the_rows_under_a_lowered_torque_cap(servo_log: Path, so101: Robot, tmp_path: Path) -> None:
    recording = read_recording(servo_log, so101)
    assert recording.laws == (SERVO,) * 6 and not recording.capped.any()
    assert not recording.command_kp.any() and not recording.command_kd.any()  # what the bridge sent: no gains
    with np.load(servo_log) as data:
        effort = data["command_effort"].copy()
    effort[-20:] = 0.5  # the safe stop's ramp, halfway down
    ramped = read_recording(rewrite(servo_log, tmp_path / "ramp.npz", command_effort=effort), so101)
    assert ramped.capped.sum() == 20 and not ramped.usable[-20:].any() and ramped.usable[:-20].sum() == recording.usable[:-20].sum()
    assert ramped.describe()["rows_under_reduced_torque_cap"] == 20


def test_an_old_servo_log_is_refused_rather_than_replayed_limp(servo_log: Path, so101: Robot, tmp_path: Path) -> None:
    """A format-3 SO-101 log (before control_law): kp = kd = 0 on moving joints cannot be an impedance motor's."""
    old = rewrite(servo_log, tmp_path / "so101-v3.npz", meta={"format_version": 3, "control_law": None})
    with pytest.raises(SimrlError, match=r"moves shoulder_pan, .*wrist_roll with commanded kp = kd = 0 and does not say which control law") as error:
        read_recording(old, so101)
    assert "\n" not in str(error.value) and str(old) in str(error.value)


def test_a_control_law_that_is_not_one_is_refused(servo_log: Path, so101: Robot, tmp_path: Path) -> None:
    laws = {joint: SERVO for joint in so101.config.arm_joints} | {"gripper": "position"}
    with pytest.raises(SimrlError, match="meta control_law = .*allowed: impedance or servo for each of shoulder_pan"):
        read_recording(rewrite(servo_log, tmp_path / "bad.npz", meta={"control_law": laws}), so101)
