"""The ROBOTIS OMX on its Dynamixel bus as a user deploys it: deploy/omx.yaml, LeRobot's calibration file, the emulated arm.

Expected numbers are worked out by hand in the comments (2 pi / 4096 rad a
tick; ROBOTIS puts every joint's zero at tick 2048, robots/omx/README.md), never
with the code under test. ROBOTIS' dynamixel_sdk talks to the emulated servos
over a real pseudo-terminal.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simrl.deploy import session
from simrl.deploy.buses import make_bus
from simrl.deploy.buses.dynamixel.bus import DynamixelBus
from simrl.deploy.config import load_deploy_config
from simrl.deploy.emulation.dynamixel_firmware import DynamixelFirmware
from simrl.deploy.emulation.emulated_arm import motor_torque_limits
from simrl.deploy.emulation.reality import RealityPlant, load_reality
from simrl.deploy.emulation.serial_link import PtySerialLink
from simrl.deploy.log import PHASE_POLICY, read_log
from simrl.errors import SimrlError
from simrl.robots import Robot, load_robot
from tests.cli import assert_one_line_error, run_simrl, simrl_command
from tests.test_deploy import TIMEOUT, read_line, write_policy

TICK = 2 * math.pi / 4096
SHIPPED = Path(__file__).parents[1] / "deploy" / "omx.yaml"
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
IDS = [11, 12, 13, 14, 15, 16]  # LeRobot omx_follower.py
MODELS = ["xl430-w250"] * 3 + ["xl330-m288"] * 3
# What LeRobot writes for an OMX (omx_follower.py calibrate: "factory default values"), typed by hand in its format.
FACTORY_FILE = "{\n" + ",\n".join(
    f'    "{joint}": {{\n        "id": {servo_id},\n        "drive_mode": 0,\n        "homing_offset": 0,\n        "range_min": 0,\n        "range_max": 4095\n    }}'
    for joint, servo_id in zip(JOINTS, IDS)
) + "\n}"


@pytest.fixture(scope="module")
def omx() -> Robot:
    return load_robot("omx")


@pytest.fixture
def factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "omx_follower.json"
    path.write_text(FACTORY_FILE)
    return path


def config_error(omx: Robot, path: Path | None = None, **overrides: Any) -> str:
    with pytest.raises(SimrlError) as error:
        load_deploy_config(omx, path, overrides)
    message = str(error.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- deploy/omx.yaml and LeRobot's file


def test_the_shipped_file_with_lerobots_factory_calibration_builds_the_bus_and_maps_tick_2048_to_zero(omx: Robot, factory_file: Path) -> None:
    config = load_deploy_config(omx, overrides={"bus.calibration": str(factory_file)})
    assert [m.joint for m in config.motors] == JOINTS and [m.id for m in config.motors] == IDS and [m.model for m in config.motors] == MODELS
    assert [m.mode for m in config.motors] == ["extended_position"] * 5 + ["current_position"]
    assert config.rate_hz == 1 / omx.config.control_dt == 50
    bus = make_bus(config)
    assert isinstance(bus, DynamixelBus) and bus.motor_names == tuple(JOINTS)
    calibration = session.Calibration.from_config(config, omx)
    # every range is 0..4095: its middle 2047.5 is half a tick below 2048, so the offset is -TICK / 2 and the gain 1;
    # the gripper too, whose unswept range says nothing of the jaw's travel (one to one, as ROBOTIS maps it)
    np.testing.assert_allclose(calibration.offset, -TICK / 2, atol=1e-12)
    np.testing.assert_allclose(calibration.gain, 1.0)


def test_a_deploy_without_lerobots_file_or_with_a_koch_file_is_refused(tmp_path: Path, omx: Robot) -> None:
    policy = write_policy(tmp_path / "policy.onnx", omx, 0.0)
    result = run_simrl("deploy", "--robot", "omx", "--policy", str(policy), "--port", str(tmp_path / "ttyACM7"), "--log", str(tmp_path / "log.npz"))
    assert_one_line_error(result, "field 'bus.calibration' is not set; a Dynamixel arm needs its calibration: pass LeRobot's file with --calibration FILE")
    assert "`simrl calibrate --robot omx`" in result.stderr and not (tmp_path / "log.npz").exists()
    koch = tmp_path / "koch_follower.json"  # a Koch follower's ids are 1..6 (koch_follower.py)
    koch.write_text(FACTORY_FILE.replace('"id": 11,', '"id": 1,'))
    assert config_error(omx, **{"bus.calibration": str(koch)}) == (
        f"{SHIPPED}: field 'bus.calibration' = '{koch}': motor 'shoulder_pan' has id 1 there but motors.0.id = 11; "
        "allowed: the same id (is it another arm's file?)"
    )


def test_a_factory_calibrated_arm_has_no_full_turn_motors(tmp_path: Path, omx: Robot) -> None:
    path = tmp_path / "omx.yaml"
    path.write_text(SHIPPED.read_text().replace("  factory_calibrated: true", "  full_turn_motors: [wrist_roll]\n  factory_calibrated: true"))
    assert "factory_calibrated = true and full_turn_motors = ['wrist_roll']: a factory-calibrated arm gives every motor 0..4095; allowed: one of them" in config_error(omx, path)


# ---------------------------------------------------------------- the emulated OMX


def test_simrl_calibrate_writes_lerobots_factory_file_on_the_emulated_omx(tmp_path: Path, omx: Robot) -> None:
    plant = RealityPlant(omx, load_reality("none", omx, 0), JOINTS, motor_torque_limits(omx, JOINTS))
    firmware = DynamixelFirmware(plant, list(zip(IDS, MODELS)))  # as ROBOTIS assembles it: every joint's zero at tick 2048
    out = tmp_path / "my-omx.json"
    with PtySerialLink(firmware) as link:
        command = simrl_command("calibrate", "--robot", "omx", "--port", link.port, "--out", str(out))
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as user:
            assert "omx ships calibrated by its maker" in read_line(user.stdout, TIMEOUT)  # no pose, no sweep, no Enter
            out_text, err = user.communicate(timeout=TIMEOUT)
    assert user.returncode == 0, err
    assert f"--calibration {out}" in out_text
    assert out.read_text() == FACTORY_FILE  # byte for byte what LeRobot writes
    assert [firmware.tables()[m][11] for m in range(6)] == [4] * 6  # extended position before homing (koch_follower.py calibrate)


def test_deploy_emulate_drives_the_omx_through_its_calibration_file_and_leaves_it_resting(tmp_path: Path, omx: Robot) -> None:
    path = tmp_path / "log.npz"
    result = run_simrl("deploy", "--robot", "omx", "--policy", str(write_policy(tmp_path / "policy.onnx", omx, 0.0)), "--emulate",
                       "--goal", "0.22,0.0,0.12", "--duration", "0.2", "--log", str(path), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stop_reason"] == "completed" and summary["final_enabled"] == [False] * 6  # (timing: the e2e results)
    arrays, meta = read_log(path)
    assert meta["reality"]["reality"] == "omx-test" and meta["deploy_config"]["bus"]["port"].startswith("/dev/pts/")
    assert meta["deploy_config"]["bus"]["calibration"].endswith("calibration.json")
    home = [omx.config.home[j] for j in JOINTS]
    reached_home = arrays["position"][np.flatnonzero(arrays["phase"] == PHASE_POLICY)[0]]
    # within the model's own gravity sag of home (robots/omx/robot.xml: 0.03, 0.02, 0.05 rad on shoulder_lift, elbow_flex,
    # wrist_flex), made larger by the test reality's heavier links and softer servos
    np.testing.assert_allclose(reached_home, home, atol=0.1)
    rest = meta["deploy_config"]["shutdown"]["rest"]
    np.testing.assert_allclose(arrays["position"][-1][:5], [rest[j] for j in JOINTS[:5]], atol=0.1)
