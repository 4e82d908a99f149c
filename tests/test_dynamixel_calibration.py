"""A Dynamixel arm calibrated the LeRobot way: its file, our `calibrate` of the same emulated arm, and the bytes the bus writes.

The arm is the SO-101's kinematics on Koch v1.1 servos (ROBOTS.md: ids 1-2
XL430-W250, 3-6 XL330-M288; the plant does not care about the vendor), behind
the Dynamixel emulator on a real pty (the plant's torque limits the SO-101's
MJCF ones), driven through ROBOTIS' dynamixel_sdk.
Expected ticks and packets are worked out by hand in the comments (2 pi / 4096
rad a tick; Present Position = actual + Homing Offset, e-manual
x/homing_offset.md; LeRobot's homing 2047 - position, dynamixel.py
``_get_half_turn_homings``); packet CRCs come from the bitwise CRC in
tests/dynamixel_wire.py, not from the codec.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from simrl.deploy.buses.base import BusError
from simrl.deploy.buses.dynamixel.bus import DynamixelBus, DynamixelMotor
from simrl.deploy.buses.dynamixel.protocol import Instruction, PacketParser
from simrl.deploy.buses.dynamixel.settings import DYNAMIXEL_SERVOS
from simrl.deploy.config import load_deploy_config
from simrl.deploy.emulation.dynamixel_firmware import DynamixelFirmware
from simrl.deploy.emulation.reality import RealityPlant
from simrl.deploy.emulation.serial_link import PtySerialLink
from simrl.deploy.emulation.serial_wire import assembly_calibration
from simrl.deploy.servo_calibration import RangeSnapshot, apply_calibration, calibrate, joint_mapping, load_calibration
from simrl.errors import SimrlError
from simrl.robots import Robot, load_robot
from tests.dynamixel_wire import KOCH_MOTORS, Recording, patient_sdk, sdk_frame, with_crc  # noqa: F401 (fixture)
from tests.cli import simrl_command
from tests.feetech_rig import so101_plant
from tests.servo_arm import place, walk_through_calibrate

TICK = 2 * math.pi / 4096
PATIENT_S = 0.2  # s: the shared test machine may stall a reply
KOCH = (  # (joint, id, model): LeRobot koch_follower.py
    ("shoulder_pan", 1, "xl430-w250"),
    ("shoulder_lift", 2, "xl430-w250"),
    ("elbow_flex", 3, "xl330-m288"),
    ("wrist_flex", 4, "xl330-m288"),
    ("wrist_roll", 5, "xl330-m288"),
    ("gripper", 6, "xl330-m288"),
)
JOINTS = [joint for joint, _, _ in KOCH]
# The emulated servos' encoder readings at the model's joint zero (assembly left the magnets there).
ZEROS = (3100, 1000, 2547, 600, 3900, 1500)
# The LeRobot file a user records on that arm, typed by hand. homing_offset = 2047 - zero (the middle pose, the model's
# zero, then reads 2047): 2047 - 3100 = -1053, 1047, -500, 1447, -1853, 547. Ranges: the MJCF range in ticks about 2047
# (robots/so101/robot.xml; as in tests/test_deploy_so101.py): 795..3299, 909..3185, 945..3149, 966..3128, wrist_roll
# 0..4095 (LeRobot's full turn), gripper 1933..3185.
HAND_FILE = """{
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1053, "range_min": 795, "range_max": 3299},
    "shoulder_lift": {"id": 2, "drive_mode": 0, "homing_offset": 1047, "range_min": 909, "range_max": 3185},
    "elbow_flex": {"id": 3, "drive_mode": 0, "homing_offset": -500, "range_min": 945, "range_max": 3149},
    "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": 1447, "range_min": 966, "range_max": 3128},
    "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": -1853, "range_min": 0, "range_max": 4095},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 547, "range_min": 1933, "range_max": 3185}
}"""
# deploy/<arm>.yaml for it, as LeRobot configures a Koch follower (koch_follower.py configure)
DEPLOY = """robot: so101
bus: {kind: dynamixel, full_turn_motors: [wrist_roll], calibration: CALIBRATION}
""" + KOCH_MOTORS


@pytest.fixture(scope="module")
def so101() -> Robot:
    return load_robot("so101")


@pytest.fixture
def hand_file(tmp_path: Path) -> Path:
    path = tmp_path / "koch_follower.json"
    path.write_text(HAND_FILE)
    return path


def deploy_file(tmp_path: Path, calibration: Path | None, text: str = DEPLOY) -> Path:
    path = tmp_path / "koch.yaml"
    path.write_text(text.replace("CALIBRATION", "null" if calibration is None else str(calibration)))
    return path


@pytest.fixture
def emulated(so101: Robot, patient_sdk: None) -> Iterator[tuple[RealityPlant, Recording, DynamixelBus]]:
    """The arm whose servos read ``ZEROS`` at joint zero, never calibrated (Homing Offset 0), on a pty; the bus open."""
    plant = so101_plant(so101)
    recording = Recording(DynamixelFirmware(plant, [(i, m) for _, i, m in KOCH], encoder_zero=ZEROS))
    with PtySerialLink(recording) as link:
        with DynamixelBus(link.port, [DynamixelMotor(*motor) for motor in KOCH], reply_timeout=PATIENT_S) as bus:
            yield plant, recording, bus


def joint_angles(bus: DynamixelBus, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return gain * (bus.read().position - offset)


# ---------------------------------------------------------------- the file


def test_the_emulated_arm_writes_the_file_a_user_would_record(tmp_path: Path, so101: Robot, hand_file: Path) -> None:
    config = load_deploy_config(so101, deploy_file(tmp_path, hand_file))
    assert assembly_calibration(so101, config, ZEROS, DYNAMIXEL_SERVOS) == load_calibration(hand_file, JOINTS, DYNAMIXEL_SERVOS)


def config_error(so101: Robot, path: Path) -> str:
    with pytest.raises(SimrlError) as error:
        load_deploy_config(so101, path)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_file_for_other_ids_or_missing_a_motor_is_refused_naming_file_and_field(tmp_path: Path, so101: Robot) -> None:
    omx_ids = tmp_path / "omx.json"  # an OMX follower's file: ids 11..16 (LeRobot omx_follower.py)
    omx_ids.write_text(HAND_FILE.replace('"id": 3,', '"id": 13,'))
    config = deploy_file(tmp_path, omx_ids)
    where = f"{config}: field 'bus.calibration' = '{omx_ids}'"
    assert config_error(so101, config) == (
        f"{where}: motor 'elbow_flex' has id 13 there but motors.2.id = 3; allowed: the same id (is it another arm's file?)"
    )
    no_gripper = tmp_path / "no-gripper.json"
    no_gripper.write_text(HAND_FILE.replace(',\n    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 547, "range_min": 1933, "range_max": 3185}', ""))
    config = deploy_file(tmp_path, no_gripper)
    assert config_error(so101, config) == (
        f"{config}: field 'bus.calibration' = '{no_gripper}': no calibration for motor 'gripper' "
        "(the file has: shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll)"
    )


def test_a_homing_offset_that_position_mode_would_ignore_is_refused(tmp_path: Path, so101: Robot, hand_file: Path) -> None:
    # shoulder_pan's -1053 is beyond the +-1,024 a servo in position mode (3) honours (e-manual x/homing_offset.md)
    config = deploy_file(tmp_path, hand_file, DEPLOY.replace("{joint: shoulder_pan, id: 1, model: xl430-w250}", "{joint: shoulder_pan, id: 1, model: xl430-w250, mode: position}"))
    message = config_error(so101, config)
    assert message.startswith(f"{config}: field 'bus.calibration' = '{hand_file}': motor 'shoulder_pan' has homing_offset -1053, which a servo")
    assert message.endswith("allowed: mode extended_position or current_position, as LeRobot runs it")


def test_the_xl430_has_no_current_based_position_mode(tmp_path: Path, so101: Robot, hand_file: Path) -> None:
    config = deploy_file(tmp_path, hand_file, DEPLOY.replace("{joint: shoulder_lift, id: 2, model: xl430-w250}", "{joint: shoulder_lift, id: 2, model: xl430-w250, mode: current_position}"))
    assert "field 'motors.1' = " in config_error(so101, config) and "the xl430-w250 senses no current" in config_error(so101, config)


# ---------------------------------------------------------------- LeRobot's file against our calibrate() on the same emulated arm


def test_a_lerobot_file_gives_the_same_joint_angles_as_our_calibration_of_the_same_emulated_arm(
    so101: Robot, hand_file: Path, emulated: tuple[RealityPlant, Recording, DynamixelBus]
) -> None:
    plant, _, bus = emulated
    ranges = so101.model.jnt_range[[so101.model.joint(j).id for j in JOINTS]]
    middle = {i: 0.0 for i in range(5)} | {5: 0.78540}  # the arm joints' zero is their travel's middle; the gripper's middle
    sweep = [{i: ranges[i, end]} for i in (0, 1, 2, 3, 5) for end in (0, 1)]  # each joint to both stops by hand
    moves = iter(sweep)

    def watch(snapshot: RangeSnapshot) -> bool:
        pose = next(moves, None)
        if pose is not None:
            place(plant, pose)
        return pose is None

    ours = calibrate(bus, {j: i for j, i, _ in KOCH}, DYNAMIXEL_SERVOS, lambda: place(plant, middle), watch, full_turn=("wrist_roll",))
    # the gripper was held at 0.78540 rad = 512 ticks past its zero tick 1500: homing 2047 - 2012 = 35;
    # its stops are -0.95993 rad = -625.78 ticks and +625.78 ticks from there: 2047 -+ 625.78 = 1421.2 and 2672.8
    assert (ours["gripper"].homing_offset, ours["gripper"].range_min, ours["gripper"].range_max) == (35, 1421, 2673)
    theirs = load_calibration(hand_file, JOINTS, DYNAMIXEL_SERVOS)
    assert {j: ours[j].model_dump() for j in JOINTS[:5]} == {j: theirs[j].model_dump() for j in JOINTS[:5]}

    poses = [dict(enumerate(so101.config.home[j] for j in JOINTS)), {0: 1.2, 1: -1.0, 2: 1.5, 3: -0.7, 4: 2.5, 5: 1.7}, {0: -1.9, 5: -0.1}]
    for pose in poses:
        place(plant, pose)
        truth = np.array([plant.sample(i).position for i in range(6)])
        by_ours = joint_angles(bus, *joint_mapping(ours, so101, DYNAMIXEL_SERVOS))  # the servos hold our calibration
        apply_calibration(bus, theirs)
        by_theirs = joint_angles(bus, *joint_mapping(theirs, so101, DYNAMIXEL_SERVOS))
        apply_calibration(bus, ours)
        np.testing.assert_allclose(by_theirs, by_ours, atol=TICK)
        np.testing.assert_allclose(by_ours, truth, atol=TICK)


# ---------------------------------------------------------------- what the bus writes, as LeRobot's code would


def writes(recording: Recording) -> list[bytes]:
    """The WRITE packets the client sent, whole, in order (framing from the codec; the bytes are compared by hand)."""
    return [p.raw for p in PacketParser().feed(bytes(recording.received)) if p.instruction == Instruction.WRITE]


def packet(hex_without_crc: str) -> bytes:
    return with_crc(bytes.fromhex(hex_without_crc))


def test_enable_writes_the_calibration_modes_and_gains_once_in_hand_computed_packets(
    so101: Robot, hand_file: Path, emulated: tuple[RealityPlant, Recording, DynamixelBus]
) -> None:
    plant, recording, bus = emulated
    bus.close()
    theirs = load_calibration(hand_file, JOINTS, DYNAMIXEL_SERVOS)
    theirs["elbow_flex"] = theirs["elbow_flex"].model_copy(update={"drive_mode": 1})  # a servo the file says is reversed
    motors = [DynamixelMotor(*KOCH[0]), DynamixelMotor(*KOCH[1]), DynamixelMotor(*KOCH[2], gains=(1500, 0, 600))]
    motors += [DynamixelMotor(*KOCH[3]), DynamixelMotor(*KOCH[4]), DynamixelMotor(*KOCH[5], mode="current_position")]
    recording.clear()
    with DynamixelBus(bus.port, motors, theirs, reply_timeout=PATIENT_S) as configured:
        configured.enable()
        sent = writes(recording)
        # WRITE = FF FF FD 00, id, LEN = 3 + 2 address bytes + data, 03, address (2), data (little-endian)
        shoulder_pan = [
            packet("FF FF FD 00 01 09 00 03 14 00 E3 FB FF FF"),  # Homing Offset (20 = 0x14) -1053 = 0xFFFFFBE3
            packet("FF FF FD 00 01 09 00 03 34 00 1B 03 00 00"),  # Min Position Limit (52 = 0x34) 795 = 0x031B
            packet("FF FF FD 00 01 09 00 03 30 00 E3 0C 00 00"),  # Max Position Limit (48 = 0x30) 3299 = 0x0CE3
            packet("FF FF FD 00 01 06 00 03 09 00 00"),  # Return Delay Time (9) 0 (factory 250)
            packet("FF FF FD 00 01 06 00 03 0B 00 04"),  # Operating Mode (11) 4: extended position (factory 3)
        ]
        at = [sent.index(p) for p in shoulder_pan]
        assert at == sorted(at)  # LeRobot's order: write_calibration, then configure
        elbow = [
            packet("FF FF FD 00 03 06 00 03 0A 00 01"),  # Drive Mode (10) bit 0: Reverse, from drive_mode 1
            packet("FF FF FD 00 03 07 00 03 54 00 DC 05"),  # Position P Gain (84 = 0x54) 1500 = 0x05DC
            packet("FF FF FD 00 03 07 00 03 52 00 00 00"),  # Position I Gain (82 = 0x52) 0 (the XL330 ships 0: not written)
            packet("FF FF FD 00 03 07 00 03 50 00 58 02"),  # Position D Gain (80 = 0x50) 600 = 0x0258
        ]
        assert elbow[0] in sent and elbow[1] in sent and elbow[3] in sent and elbow[2] not in sent
        assert packet("FF FF FD 00 06 06 00 03 0B 00 05") in sent  # the gripper: current-based position (5)
        # no goal_current given: Goal Current (102 = 0x66) stays the Current Limit, the XL330's 1,750 mA it powered on with
        assert [p for p in sent if p[4] == 6 and p[8] == 0x66] == []
        configured.disable()
        recording.clear()
        configured.enable()  # the servos hold it all now: nothing in EEPROM (addresses below 64) is written again
        assert [p for p in writes(recording) if int.from_bytes(p[8:10], "little") < 64] == []


def test_calibrate_resets_drive_mode_and_switches_to_extended_position_first(emulated: tuple[RealityPlant, Recording, DynamixelBus]) -> None:
    _, recording, bus = emulated
    (reply,) = recording.firmware.receive(sdk_frame(3, Instruction.WRITE, bytes([10, 0, 1])))  # elbow_flex left reversed
    assert reply.data[8] == 0
    recording.clear()
    bus.prepare_for_calibration()
    sent = writes(recording)
    # koch_follower.py calibrate: extended position before homing; omx_follower.py calibrate: Drive_Mode NON_INVERTED
    assert sent[:6] == [packet(f"FF FF FD 00 {i:02X} 06 00 03 40 00 00") for i in range(1, 7)]  # Torque Enable (64) 0
    assert packet("FF FF FD 00 03 06 00 03 0A 00 00") in sent  # Drive Mode (10) normal: only elbow_flex was reversed
    assert [p for p in sent if p[8] == 10] == [packet("FF FF FD 00 03 06 00 03 0A 00 00")]
    assert [p for p in sent if p[8] == 11] == [packet(f"FF FF FD 00 {i:02X} 06 00 03 0B 00 04") for i in range(1, 7)]  # factory 3 -> 4


def test_simrl_calibrate_walks_a_user_through_lerobots_procedure_on_the_emulated_dynamixel_arm(tmp_path: Path, so101: Robot) -> None:
    plant = so101_plant(so101)
    ranges = so101.model.jnt_range[[so101.model.joint(j).id for j in JOINTS]]
    out = tmp_path / "my-koch.json"
    config = deploy_file(tmp_path, None)
    with PtySerialLink(DynamixelFirmware(plant, [(i, m) for _, i, m in KOCH], encoder_zero=ZEROS)) as link:
        command = simrl_command("calibrate", "--robot", "so101", "--config", str(config), "--port", link.port, "--out", str(out))
        returncode, out_text, err = walk_through_calibrate(command, plant, ranges)
    assert returncode == 0, err
    assert f"--calibration {out}" in out_text
    # the arm joints as in the hand-written file; the gripper as in test_a_lerobot_file_gives_...: homing 35, 1421..2673
    expected = json.loads(HAND_FILE)
    expected["gripper"].update(homing_offset=35, range_min=1421, range_max=2673)
    assert json.loads(out.read_text()) == expected


# ---------------------------------------------------------------- a joint powered on past its encoder's wrap


def test_enable_refuses_a_joint_powered_on_past_its_encoders_wrap_and_leaves_every_torque_off(
    so101: Robot, hand_file: Path, patient_sdk: None
) -> None:
    # shoulder_lift's encoder reads 1000 at joint zero (ZEROS); at -1.6 rad = -1043.04 ticks it would read -43.04, but at
    # power-on a Dynamixel counts from its reading within one turn: 4052.96, so 4053 + Homing Offset 1047 = 5100 where the
    # file meant 2047 - 1043 = 1004; that is 5100 - 3185 = 1915 ticks past the calibrated range 909..3185.
    calibration = load_calibration(hand_file, JOINTS, DYNAMIXEL_SERVOS)
    plant = so101_plant(so101)
    plant.place(1, -1.6)
    firmware = DynamixelFirmware(plant, [(i, m) for _, i, m in KOCH], encoder_zero=ZEROS)  # powered on there
    with PtySerialLink(firmware) as link:
        with DynamixelBus(link.port, [DynamixelMotor(*motor) for motor in KOCH], calibration, reply_timeout=PATIENT_S) as bus:
            with pytest.raises(BusError) as error:
                bus.enable()
            torque = [firmware.tables()[m][64] for m in range(6)]  # Torque Enable (64)
    assert str(error.value) == (
        f"Dynamixel motor 'shoulder_lift' (id 2) on '{link.port}': Present Position 5100 lies 1915 ticks outside its calibrated "
        "range 909..3185 (more than 1024): powered on past its encoder's wrap, it reads a whole turn off and would be driven a "
        "turn; with the power off, move the joint into its range by hand, then power on again"
    )
    assert torque == [0] * 6  # nothing drives the arm
    # Powered on at -1.5 rad (-977.85 ticks) instead, the encoder reads 22.15: 22 + 1047 = 1069, inside the range; it enables.
    plant.place(1, -1.5)
    firmware.reset()
    with PtySerialLink(firmware) as link:
        with DynamixelBus(link.port, [DynamixelMotor(*motor) for motor in KOCH], calibration, reply_timeout=PATIENT_S) as bus:
            assert bus.enable().position[1] == pytest.approx((1069 - 2048) * TICK)
