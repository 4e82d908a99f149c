"""A deploy log as the gap checker reads it, and every way a log is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simrl.errors import SimrlError
from simrl.gap.recording import read_recording
from simrl.robots import Robot, load_robot
from tests.gap_logs import INFERENCE_S, OPENARM_KD, OPENARM_KP, write_reality, write_synthetic_log


@pytest.fixture(scope="module")
def openarm() -> Robot:
    return load_robot("openarm")


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory, openarm: Robot) -> Path:
    folder = tmp_path_factory.mktemp("log")
    write_synthetic_log(folder / "log.npz", openarm, write_reality(folder / "truth.yaml"), OPENARM_KP, OPENARM_KD, duration=2.0)
    return folder / "log.npz"


def rewrite(source: Path, target: Path, **changes) -> Path:
    """A copy of a log with columns replaced (an array) or removed (None), or ``meta`` updated (a dict)."""
    with np.load(source) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta.update(changes.pop("meta", {}))
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(target, **arrays, meta=np.array(json.dumps(meta)))
    return target


def test_a_current_log_reads_commands_after_the_reading_they_came_from(log: Path, openarm: Robot) -> None:
    recording = read_recording(log, openarm)
    assert recording.version == 3 and recording.joints == tuple(openarm.config.arm_joints) + ("finger_joint1",)
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
