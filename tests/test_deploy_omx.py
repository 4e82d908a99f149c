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

import mujoco
import numpy as np
import pytest

from simrl.deploy import session
from simrl.deploy.buses import make_bus
from simrl.deploy.buses.base import BusError, MotorCommand
from simrl.deploy.buses.dynamixel import protocol as dxl
from simrl.deploy.buses.dynamixel.bus import MODES, DynamixelBus
from simrl.deploy.config import load_deploy_config
from simrl.deploy.emulation.dynamixel_firmware import DynamixelFirmware, rated_torques
from simrl.deploy.emulation.emulated_arm import EmulatedArm
from simrl.deploy.emulation.reality import RealityPlant, load_reality
from simrl.deploy.emulation.serial_link import PtySerialLink
from simrl.deploy.log import PHASE_POLICY, read_log
from simrl.errors import SimrlError
from simrl.robots import Robot, load_robot
from tests.cli import assert_one_line_error, run_simrl, simrl_command
from tests.dynamixel_wire import Recording, patient_sdk, sdk_frame, with_crc  # noqa: F401 (fixture)
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


def test_a_goal_current_the_gripper_cannot_hold_or_on_a_position_motor_is_refused(tmp_path: Path, omx: Robot) -> None:
    path = tmp_path / "omx.yaml"
    path.write_text(SHIPPED.read_text().replace("goal_current: 600", "goal_current: 1751"))
    message = config_error(omx, path)  # the XL330-M288's Current Limit (38) range is 0 ~ 1,750 (e-manual xl330-m288.md)
    assert "field 'motors.5' = " in message and message.endswith("goal_current = 1751: the xl330-m288's Current Limit reaches 1750; allowed: 1..1750")
    path.write_text(SHIPPED.read_text().replace("{joint: wrist_roll, id: 15, model: xl330-m288}", "{joint: wrist_roll, id: 15, model: xl330-m288, goal_current: 300}"))
    message = config_error(omx, path)
    assert "field 'motors.4' = " in message
    assert message.endswith("goal_current = 300 with mode = 'extended_position', which ignores it; allowed: mode current_position")


# ---------------------------------------------------------------- one servo model: the MJCF equals the emulated servos'


def test_the_models_servos_are_the_servo_table_at_the_gains_and_goal_current_the_file_sets(omx: Robot, factory_file: Path) -> None:
    """robots/omx/robot.xml's actuators and joint damping are what protocol.py's servo table (which the emulated servos
    run) gives for deploy/omx.yaml's gains, else the factory's, and its gripper Goal Current: neither can drift alone.
    (The table's own numbers are checked by hand in tests/test_dynamixel_protocol.py.)"""
    config = load_deploy_config(omx, overrides={"bus.calibration": str(factory_file)})
    assert [m.goal_current for m in config.motors] == [None] * 5 + [600]  # ROBOTIS' 600 mA on the gripper
    for motor in config.motors:
        spec, mode = dxl.MODELS[motor.model], MODES[motor.mode]
        p_gain, i_gain, d_gain = motor.gains or tuple(spec.register(f"position_{g}_gain").default for g in "pid")
        assert i_gain == 0, motor.joint  # the model has no integral action
        actuator = omx.model.actuator(motor.joint)
        if mode == dxl.CURRENT_POSITION_MODE:  # Goal Current caps the loop's current: the force limit
            limit = dxl.current_torque(spec, motor.goal_current or spec.register("current_limit").default)
        else:
            limit = spec.stall_torque  # full duty
        assert actuator.gainprm[0] == pytest.approx(dxl.position_kp(spec, p_gain, mode), rel=1e-3), motor.joint
        assert -actuator.biasprm[2] == pytest.approx(dxl.position_kv(spec, d_gain, mode), rel=1e-3), motor.joint
        np.testing.assert_allclose(actuator.forcerange, [-limit, limit], rtol=1e-3, err_msg=motor.joint)
        damping = omx.model.dof_damping[omx.model.joint(motor.joint).dofadr[0]]
        assert damping == pytest.approx(dxl.back_emf_damping(spec), rel=1e-3), motor.joint


def test_under_no_reality_the_emulated_omx_moves_exactly_as_the_training_model(omx: Robot, patient_sdk: None) -> None:
    """Enabled through deploy/omx.yaml and stepped to targets that drive the XL330s and the gripper into their torque
    limits, the emulated arm (reality none) and the MJCF follow the same path: within 0.1 mrad after 1 s, the spread the
    MJCF's gains written to 4 digits leave. The gaps the emulated servos had before they ran the model's table show by far
    more: the XL330s' P read at 1/128 instead of 1/256, 15 mrad; the gripper at its 1,750 mA Current Limit, 2.9 mrad."""
    targets = TICK * np.array([300, -200, 250, -400, 500, 521])  # whole ticks, so the goals the servos hold are these
    arm = EmulatedArm(omx, load_deploy_config(omx), reality="none")
    arm.wire.start()  # no physics clock: the plant moves only when advanced below
    try:
        with make_bus(load_deploy_config(omx, overrides=arm.overrides())) as bus:
            bus.enable()
            bus.exchange(MotorCommand.hold(targets, np.zeros(6), np.zeros(6)))
            arm.plant.advance(1.0)
            emulated = arm.plant.qpos
    finally:
        arm.wire.stop()
    model = omx.model
    data = mujoco.MjData(model)
    data.qpos[:], data.ctrl[:] = omx.home_qpos, omx.home_ctrl
    data.ctrl[np.concatenate([omx.arm_actuators, omx.gripper_actuators])] = targets
    for _ in range(round(1.0 / model.opt.timestep)):
        mujoco.mj_step(model, data)
    assert np.abs(data.qpos - omx.home_qpos).max() > 0.5  # the step moved the arm
    np.testing.assert_allclose(emulated, data.qpos, atol=1e-4)


def test_enable_writes_the_grippers_goal_current_once_in_a_hand_computed_packet(omx: Robot, factory_file: Path, patient_sdk: None) -> None:
    plant = RealityPlant(omx, load_reality("none", omx, 0), JOINTS, rated_torques(MODELS))
    recording = Recording(DynamixelFirmware(plant, list(zip(IDS, MODELS))))

    def goal_current_writes() -> list[bytes]:  # WRITE packets to Goal Current (102 = 0x66): byte 7 instruction, 8-9 address
        stream = bytes(recording.received)
        return [stream[at : at + 14] for at in range(len(stream)) if stream[at : at + 10].hex() == "fffffd00100700036600"]

    with PtySerialLink(recording) as link:
        overrides = {"bus.calibration": str(factory_file), "bus.port": link.port}
        with make_bus(load_deploy_config(omx, overrides=overrides)) as bus:
            bus.enable()
            # FF FF FD 00, id 16 = 0x10, LEN 7, WRITE 03, address 0x66 0x00, 600 mA = 0x0258 little-endian; CRC by hand's route
            assert goal_current_writes() == [with_crc(bytes.fromhex("FF FF FD 00 10 07 00 03 66 00 58 02"))]
            bus.disable()
            recording.clear()
            bus.enable()  # the servo holds 600 now (RAM keeps it until power-off): not written again
            assert goal_current_writes() == []
            bus.disable()
            # a servo whose owner lowered its Current Limit (38, EEPROM) to 500 mA = 0x01F4 cannot take 600
            (reply,) = recording.firmware.receive(sdk_frame(16, dxl.Instruction.WRITE, bytes([38, 0, 0xF4, 0x01])))
            assert reply.data[8] == 0  # no error
            with pytest.raises(BusError) as error:
                bus.enable()
    assert str(error.value) == (
        f"Dynamixel motor 'gripper' (id 16) on '{link.port}': goal_current 600 is above the servo's Current Limit (38) 500; "
        "allowed: 0..500 (or raise the servo's Current Limit)"
    )


# ---------------------------------------------------------------- the emulated OMX


def test_simrl_calibrate_writes_lerobots_factory_file_on_the_emulated_omx(tmp_path: Path, omx: Robot) -> None:
    plant = RealityPlant(omx, load_reality("none", omx, 0), JOINTS, rated_torques(MODELS))
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
