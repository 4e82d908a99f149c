"""The bus registry: one entry per motor family, keyed on the deploy file's ``bus.kind``, builds that family's bus."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from simrl.deploy.buses import BUS_KINDS, make_bus
from simrl.deploy.buses.damiao.bus import DamiaoBus
from simrl.deploy.buses.dynamixel.bus import DynamixelBus
from simrl.deploy.config import load_deploy_config
from simrl.deploy.emulation.wire import EMULATED_WIRES
from simrl.deploy.goals import GoalSpec
from simrl.deploy.session import DeployRequest, prepare, run_deploy
from simrl.deploy.stop import StopRequest
from simrl.errors import SimrlError
from simrl.robots import load_robot
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


DYNAMIXEL_SO101 = """robot: so101
bus: {kind: dynamixel, port: /dev/ttyUSB0, baud: 1000000, mode: position}
motors:
  - {joint: shoulder_pan, id: 1, model: xl430-w250}
  - {joint: shoulder_lift, id: 2, model: xl430-w250}
  - {joint: elbow_flex, id: 3, model: xl330-m288}
  - {joint: wrist_flex, id: 4, model: xl330-m288}
  - {joint: wrist_roll, id: 5, model: xl330-m288}
  - {joint: gripper, id: 6, model: xl330-m288}
"""


def test_a_dynamixel_arm_deploys_on_its_emulated_servos_over_a_pty(tmp_path: Path) -> None:
    so101 = load_robot("so101")
    config = tmp_path / "dynamixel.yaml"
    config.write_text(DYNAMIXEL_SO101.replace("model: xl330-m288}\n", "model: xl330-m2888}\n", 1))
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
    assert summary.stale_replies == 0 and summary.final_enabled == [False] * 6


def test_an_emulated_arm_that_cannot_start_in_its_own_process_says_why(tmp_path: Path) -> None:
    so101 = load_robot("so101")
    config = tmp_path / "dynamixel.yaml"
    config.write_text(DYNAMIXEL_SO101.replace("{joint: elbow_flex, id: 3,", "{joint: elbow_flex, sign: -1, id: 3,"))
    request = DeployRequest(robot="so101", policy=write_policy(tmp_path / "policy.onnx", so101, 0.0), config=config, emulate=True, log=tmp_path / "log.npz")
    with pytest.raises(SimrlError, match=r"^the emulated arm \(simrl emulate --robot so101\) did not start: error: the emulated Dynamixel servos read tick 2048 at joint zero, but .* calibrates elbow_flex"):
        run_deploy(request, prepare(request), StopRequest())
    assert (tmp_path / "log.npz").exists()  # written however the run ends
