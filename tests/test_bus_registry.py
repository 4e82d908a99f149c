"""The bus registry: one entry per motor family, keyed on the deploy file's ``bus.kind``, builds that family's bus."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest

from simrl.deploy.buses import BUS_KINDS, make_bus
from simrl.deploy.buses.damiao.bus import DamiaoBus
from simrl.deploy.buses.dynamixel.bus import DynamixelBus
from simrl.deploy.calibration import Calibration
from simrl.deploy.config import load_deploy_config
from simrl.deploy.emulation.wire import EMULATED_WIRES
from simrl.deploy.goals import GoalSpec
from simrl.deploy.log import PHASE_POLICY, read_log
from simrl.deploy.session import DeployRequest, prepare, run_deploy
from simrl.deploy.stop import StopRequest
from simrl.errors import SimrlError
from simrl.robots import load_robot
from tests.dynamixel_wire import KOCH_MOTORS
from tests.test_deploy import FAST, write_policy


def test_each_entry_is_keyed_on_the_kind_its_models_accept() -> None:
    for kind, entry in BUS_KINDS.items():
        assert typing.get_args(entry.bus.model_fields["kind"].annotation) == (kind,)
        assert typing.get_args(entry.motor.model_fields["kind"].annotation) == (kind,)


def test_make_bus_builds_the_family_bus_kind_names_with_the_files_motors() -> None:
    openarm = load_robot("openarm")
    config = load_deploy_config(openarm, overrides={"rate_hz": 200.0})
    bus = make_bus(config, interface="virtual", channel="registry-test")
    assert isinstance(bus, DamiaoBus) and bus.motor_names == tuple(m.joint for m in config.motors)
    assert config.reply_timeout == 0.4 * 0.005  # capped at 40 % of the 5 ms period, below the file's 8 ms


def test_every_bus_kind_has_an_emulated_arm() -> None:
    assert set(EMULATED_WIRES) == set(BUS_KINDS)


# The SO-101's joints on Koch-like Dynamixel servos, configured as LeRobot's Koch follower (koch_follower.py configure):
# extended position mode for the arm, current-based position for the gripper, P/I/D 1500/0/600 on elbow_flex.
DYNAMIXEL_SO101 = """robot: so101
bus: {kind: dynamixel, port: /dev/ttyUSB0, baud: 1000000, full_turn_motors: [wrist_roll]}
""" + KOCH_MOTORS


def test_a_dynamixel_arm_deploys_on_its_emulated_servos_through_its_calibration_file(tmp_path: Path) -> None:
    so101 = load_robot("so101")
    config = tmp_path / "dynamixel.yaml"
    config.write_text(DYNAMIXEL_SO101.replace("model: xl330-m288,", "model: xl330-m2888,", 1))
    with pytest.raises(SimrlError, match=r"field 'motors.2.model' = 'xl330-m2888': unknown model \(did you mean 'xl330-m288'\?\); allowed: xl430-w250"):
        load_deploy_config(so101, config)
    config.write_text(DYNAMIXEL_SO101)
    assert isinstance(make_bus(load_deploy_config(so101, config)), DynamixelBus)
    request = DeployRequest(
        robot="so101", policy=write_policy(tmp_path / "policy.onnx", so101, 0.0), config=config, goals=GoalSpec(random=1, seed=0),
        duration=0.1, emulate=True, overrides=FAST, log=tmp_path / "log.npz",
    )
    summary = run_deploy(request, prepare(request), StopRequest())
    assert summary.stop_reason == "completed", summary.detail
    assert summary.final_enabled == [False] * 6  # (stale replies are timing: a loaded machine makes some, the run holds through them)
    arrays, meta = read_log(tmp_path / "log.npz")
    assert meta["deploy_config"]["bus"]["calibration"].endswith("calibration.json")  # the file the emulated arm's owner would have
    # The encoder zeros are drawn at random (--reality-seed 0): only the file makes the arm reach home, where a wrong
    # calibration would be off by a random share of a turn. Koch servos on the SO-101's heavier links sag under gravity
    # (measured: shoulder_lift 0.09 rad, elbow_flex 0.19 rad, as an XL330 at P 1500 gives 2.24 N·m/rad with its measured
    # P divisor 256, protocol.py), hence 0.25 rad.
    home = [so101.config.home[m["joint"]] for m in meta["deploy_config"]["motors"]]
    reached_home = arrays["position"][np.flatnonzero(arrays["phase"] == PHASE_POLICY)[0]]
    np.testing.assert_allclose(reached_home, home, atol=0.25)


def test_an_emulated_arm_that_cannot_start_in_its_own_process_says_why(tmp_path: Path) -> None:
    so101 = load_robot("so101")
    config = tmp_path / "dynamixel.yaml"
    config.write_text(DYNAMIXEL_SO101.replace("baud: 1000000", "baud: 4500000"))  # an X430 rate the XL330 lacks
    request = DeployRequest(robot="so101", policy=write_policy(tmp_path / "policy.onnx", so101, 0.0), config=config, emulate=True, log=tmp_path / "log.npz")
    with pytest.raises(SimrlError, match=r"^the emulated arm \(simrl emulate --robot so101\) did not start: error: Dynamixel emulator: xl330-m288 cannot run at 4500000 baud"):
        run_deploy(request, prepare(request), StopRequest())
    assert (tmp_path / "log.npz").exists()  # written however the run ends


def test_a_dynamixel_arm_needs_its_calibration_file_and_takes_no_offset_sign_or_bus_mode(tmp_path: Path) -> None:
    so101 = load_robot("so101")
    config = tmp_path / "dynamixel.yaml"
    config.write_text(DYNAMIXEL_SO101)
    with pytest.raises(SimrlError, match=r"field 'bus.calibration' is not set; a Dynamixel arm needs its calibration: pass LeRobot's file with --calibration FILE"):
        Calibration.from_config(load_deploy_config(so101, config), so101)
    config.write_text(DYNAMIXEL_SO101.replace("{joint: elbow_flex, id: 3,", "{joint: elbow_flex, sign: -1, id: 3,"))
    with pytest.raises(SimrlError, match=r"field 'motors.2' = .*a servo arm's joint zero and direction come from its calibration file"):
        load_deploy_config(so101, config)
    config.write_text(DYNAMIXEL_SO101.replace("{kind: dynamixel,", "{kind: dynamixel, mode: position,"))
    with pytest.raises(SimrlError, match=r"field 'bus.mode' = 'position' is now each Dynamixel motor's 'mode'"):
        load_deploy_config(so101, config)
