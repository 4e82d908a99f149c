"""robot.yaml validation and the CLI's one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from simrl.errors import SimrlError
from simrl.paths import data_dir
from simrl.robots import available_robots, load_robot
from tests.cli import run_simrl


def _edited_copy(tmp_path: Path, edit) -> Path:
    """A copy of the so101 folder whose robot.yaml went through ``edit(dict)``."""
    folder = tmp_path / "myarm"
    shutil.copytree(data_dir("robots") / "so101", folder)
    config = yaml.safe_load((folder / "robot.yaml").read_text())
    edit(config)
    (folder / "robot.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_shipped_robots_are_listed() -> None:
    assert available_robots() == ["fr3", "omx", "openarm", "so101"]


def test_unknown_robot_names_the_choices() -> None:
    with pytest.raises(SimrlError, match=r"unknown robot 'so100' \(did you mean 'so101'\?\); available: fr3, omx, openarm, so101"):
        load_robot("so100")


def test_user_folder_loads(tmp_path: Path) -> None:
    robot = load_robot(_edited_copy(tmp_path, lambda c: None))
    assert robot.name == "so101" and robot.n_arm == 5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(contol_dt=c.pop("control_dt")), r"unknown field 'contol_dt'; did you mean 'control_dt'\?"),
        (lambda c: c["home"].update(elbow_flex=5.0), r"field 'home.elbow_flex' = 5.0 is outside the joint range"),
        (lambda c: c["arm_joints"].__setitem__(1, "shoulder_lft"), r"field 'arm_joints\[1\]' = 'shoulder_lft' is not in the model; did you mean 'shoulder_lift'\?"),
        (lambda c: c.pop("ee_site"), r"missing required field 'ee_site'"),
        (lambda c: c.update(control_dt=0.0123), r"field 'control_dt' = 0.0123 must be a whole multiple of the MJCF timestep"),
        (lambda c: c.update(control_dt=-1), r"field 'control_dt' = -1: Input should be greater than 0"),
        (lambda c: c["goal_workspace"].update(low=[5.0, -0.1, 0.05]), r"field 'goal_workspace' .*low.x = 5.0 must be below high.x"),
        (lambda c: c.update(ee_site="tcp"), r"field 'ee_site' = 'tcp' is not in the model"),
        (lambda c: c["action_scale"].update(joint_delta="fast"), r"field 'action_scale.joint_delta' = 'fast': Input should be a valid number"),
    ],
)
def test_bad_robot_yaml_names_file_field_and_value(tmp_path: Path, edit, message: str) -> None:
    folder = _edited_copy(tmp_path, edit)
    with pytest.raises(SimrlError, match=message) as info:
        load_robot(folder)
    text = str(info.value)
    assert text.startswith(str(folder / "robot.yaml")) and "\n" not in text


def test_broken_mjcf_is_reported(tmp_path: Path) -> None:
    folder = _edited_copy(tmp_path, lambda c: None)
    (folder / "robot.xml").write_text("<mujoco><worldbody><body><geom type='sphere'/></body></worldbody>")
    with pytest.raises(SimrlError, match=r"robot.xml: MuJoCo cannot compile it"):
        load_robot(folder)


def test_cli_error_is_one_line_exit_2_no_traceback() -> None:
    result = run_simrl("bench", "env", "--robot", "so100", "--envs", "8")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown robot 'so100' (did you mean 'so101'?); available: fr3, omx, openarm, so101"
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_debug_shows_the_traceback() -> None:
    result = run_simrl("--debug", "bench", "env", "--robot", "so100")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_cli_robots_json() -> None:
    result = run_simrl("robots", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["so101"]["arm_dof"] == 5 and rows["openarm"]["arm_dof"] == 7 and rows["fr3"]["arm_dof"] == 7
    assert 0.3 < rows["so101"]["reach_m"] < 0.6 and 0.7 < rows["fr3"]["reach_m"] < 1.1
    assert all(row["control_hz"] == 50 for row in rows.values())


def test_cli_bench_env_json_reports_env_and_raw_rates() -> None:
    result = run_simrl("bench", "env", "--robot", "so101", "--envs", "32", "--steps", "10", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["env_steps_per_s"] > 0 and figures["raw_batch_steps_per_s"] > 0 and figures["raw_rollout_steps_per_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["env_steps_per_s"] / figures["raw_batch_steps_per_s"])
    assert figures["num_envs"] == 32 and figures["backend"] == "cpu"
