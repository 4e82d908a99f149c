"""LeRobot-compatible servo calibration: the file, the tick -> joint map and the procedure's pure logic.

Expected numbers are worked out by hand in the comments (ticks, radians,
degrees), never with the code under test. The procedure runs against an
in-memory servo that only does what the servo does with its registers
(STS3215: Present_Position = shaft position - Homing_Offset; Dynamixel X:
shaft + Homing Offset); the end-to-end checks over the buses and the emulated
arms belong to the bus integration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from simrl.deploy.buses.dynamixel.settings import DYNAMIXEL_SERVOS
from simrl.deploy.buses.feetech.settings import FEETECH_SERVOS
from simrl.deploy.servo_calibration import (
    CalibrationPort,
    MotorCalibration,
    RangeSnapshot,
    ServoFamily,
    calibrate,
    half_turn_homings,
    joint_mapping,
    load_calibration,
    save_calibration,
)
from simrl.errors import SimrlError
from simrl.robots import Robot, load_robot

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
IDS = {joint: i + 1 for i, joint in enumerate(JOINTS)}  # SO-101 servo ids 1..6 (ROBOTS.md)

# A follower calibration as LeRobot saves it (draccus json, indent 4, no final newline), typed by hand;
# the values are those of a real SO-101 calibrated at its middle pose (each range straddles 2047).
LEROBOT_FILE = """{
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": -1470,
        "range_min": 758,
        "range_max": 3292
    },
    "shoulder_lift": {
        "id": 2,
        "drive_mode": 0,
        "homing_offset": 157,
        "range_min": 612,
        "range_max": 3378
    },
    "elbow_flex": {
        "id": 3,
        "drive_mode": 0,
        "homing_offset": -1276,
        "range_min": 903,
        "range_max": 3122
    },
    "wrist_flex": {
        "id": 4,
        "drive_mode": 0,
        "homing_offset": -1052,
        "range_min": 857,
        "range_max": 3215
    },
    "wrist_roll": {
        "id": 5,
        "drive_mode": 0,
        "homing_offset": 1935,
        "range_min": 0,
        "range_max": 4095
    },
    "gripper": {
        "id": 6,
        "drive_mode": 0,
        "homing_offset": 1410,
        "range_min": 2012,
        "range_max": 3434
    }
}"""


@pytest.fixture(scope="module")
def so101() -> Robot:
    return load_robot("so101")


def entries(text: str = LEROBOT_FILE) -> dict:
    return json.loads(text)


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "follower.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=4))
    return path


# ---------------------------------------------------------------- the file


def test_lerobot_file_loads_and_saves_back_byte_for_byte(tmp_path: Path) -> None:
    calibration = load_calibration(write(tmp_path, LEROBOT_FILE), JOINTS, FEETECH_SERVOS)
    assert list(calibration) == list(JOINTS)
    assert calibration["gripper"] == MotorCalibration(id=6, drive_mode=0, homing_offset=1410, range_min=2012, range_max=3434)
    assert calibration["wrist_roll"].middle == 2047.5
    out = tmp_path / "saved" / "follower.json"
    save_calibration(out, calibration)
    assert out.read_bytes() == LEROBOT_FILE.encode()
    assert [p.name for p in out.parent.iterdir()] == ["follower.json"]  # no temporary file left behind


def test_motors_in_another_order_load_in_the_robots_order(tmp_path: Path) -> None:
    data = entries()
    shuffled = {name: data[name] for name in reversed(JOINTS)}
    calibration = load_calibration(write(tmp_path, shuffled), JOINTS, FEETECH_SERVOS)
    assert list(calibration) == list(JOINTS)
    out = tmp_path / "saved.json"
    save_calibration(out, calibration)
    assert json.loads(out.read_text()) == data


def error_for(tmp_path: Path, data: dict | str, servos: ServoFamily = FEETECH_SERVOS) -> str:
    with pytest.raises(SimrlError) as info:
        load_calibration(write(tmp_path, data), JOINTS, servos)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "follower.json") in message
    return message


def test_a_misspelt_motor_is_named_with_a_suggestion(tmp_path: Path) -> None:
    data = entries()
    data["sholder_pan"] = data.pop("shoulder_pan")
    message = error_for(tmp_path, data)
    assert "motor 'sholder_pan' is not a joint of this robot" in message and "did you mean 'shoulder_pan'?" in message


def test_a_missing_motor_is_named(tmp_path: Path) -> None:
    data = entries()
    del data["gripper"]
    assert "no calibration for motor 'gripper'" in error_for(tmp_path, data)


def test_a_missing_field_names_motor_and_field(tmp_path: Path) -> None:
    data = entries()
    del data["elbow_flex"]["range_max"]
    assert "motor 'elbow_flex': missing field 'range_max'" in error_for(tmp_path, data)


def test_a_misspelt_field_is_reported_as_unknown_with_a_suggestion(tmp_path: Path) -> None:
    data = entries()
    data["wrist_flex"]["rang_min"] = data["wrist_flex"].pop("range_min")
    message = error_for(tmp_path, data)
    assert "motor 'wrist_flex': unknown field 'rang_min'; did you mean 'range_min'?" in message
    assert "allowed: id, drive_mode, homing_offset, range_min, range_max" in message


def test_range_min_must_be_below_range_max(tmp_path: Path) -> None:
    data = entries()
    data["shoulder_lift"]["range_min"] = 3378  # equal to its range_max
    assert "motor 'shoulder_lift': range_min = 3378 must be below range_max = 3378" in error_for(tmp_path, data)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("drive_mode", 2, "field 'drive_mode' = 2: must be 0 or 1"),
        ("drive_mode", True, "field 'drive_mode' = True: Input should be a valid integer"),
        ("range_max", 4096, "field 'range_max' = 4096: Input should be less than or equal to 4095"),
        ("homing_offset", -2048, "field 'homing_offset' = -2048: allowed: -2047..2047 (a Feetech servo's Homing_Offset)"),
        ("range_min", 12.0, "field 'range_min' = 12.0: Input should be a valid integer"),
        ("id", "3", "field 'id' = '3': Input should be a valid integer"),
    ],
)
def test_out_of_range_or_mistyped_values_are_named(tmp_path: Path, field: str, value: object, expected: str) -> None:
    data = entries()
    data["gripper"][field] = value
    assert f"motor 'gripper': {expected}" in error_for(tmp_path, data)


def test_the_homing_offset_is_checked_against_the_servo_familys_register(tmp_path: Path) -> None:
    data = entries()
    data["gripper"]["homing_offset"] = -2048  # what a Dynamixel at tick 4095 needs: 2047 - 4095; a Feetech cannot hold it
    assert load_calibration(write(tmp_path, data), JOINTS, DYNAMIXEL_SERVOS)["gripper"].homing_offset == -2048
    data["gripper"]["homing_offset"] = 1_044_480  # one past the X series' Homing Offset (20) range, 255 turns
    assert "field 'homing_offset' = 1044480: allowed: -1044479..1044479 (a Dynamixel servo's" in error_for(tmp_path, data, DYNAMIXEL_SERVOS)


def test_two_motors_with_one_id_are_refused(tmp_path: Path) -> None:
    data = entries()
    data["gripper"]["id"] = 5
    assert "motor 'gripper' has id 5, already used by motor 'wrist_roll'" in error_for(tmp_path, data)


def test_a_repeated_key_is_refused(tmp_path: Path) -> None:
    text = LEROBOT_FILE.replace('"range_min": 2012,', '"range_min": 2012,\n        "range_min": 2000,')
    assert "key 'range_min' appears twice" in error_for(tmp_path, text)


def test_broken_json_and_a_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    assert "line 1 column 2: invalid JSON" in error_for(tmp_path, "{oops}")
    with pytest.raises(SimrlError, match="calibration file not found"):
        load_calibration(tmp_path / "absent.json", JOINTS, FEETECH_SERVOS)


# ---------------------------------------------------------------- ticks -> model joint angles


def joint_angles(gain: np.ndarray, offset: np.ndarray, ticks: list[float]) -> np.ndarray:
    """What the bridge does with a reading: the bus reports ticks as radians from half a turn (2048), 4096 a turn."""
    motor = (np.asarray(ticks, np.float64) - 2048) * 2 * np.pi / 4096
    return gain * (motor - offset)


def calibration_with(**overrides: dict) -> dict[str, MotorCalibration]:
    base = {name: MotorCalibration(**value) for name, value in entries().items()}
    return {name: base[name].model_copy(update=overrides.get(name, {})) for name in JOINTS}


def test_an_arm_joint_is_zero_at_the_middle_of_its_range_and_follows_drive_mode(so101: Robot) -> None:
    calibration = calibration_with(shoulder_pan={"range_min": 1000, "range_max": 3000})
    gain, offset = joint_mapping(calibration, so101, FEETECH_SERVOS)
    # middle 2000 ticks is 48 ticks short of half a turn: -48 / 4096 of a turn = -0.0736311 rad
    assert offset[0] == pytest.approx(-0.0736311, abs=1e-7)
    assert gain[0] == 1.0
    # 2512 ticks is 512 past the middle: an eighth of a turn, pi / 4 = 0.7853982 rad
    ticks = [2512, 2000, 2000, 2000, 2000, 2500]
    assert joint_angles(gain, offset, ticks)[0] == pytest.approx(0.7853982, abs=1e-7)
    reversed_pan = calibration_with(shoulder_pan={"range_min": 1000, "range_max": 3000, "drive_mode": 1})
    assert joint_angles(*joint_mapping(reversed_pan, so101, FEETECH_SERVOS), ticks)[0] == pytest.approx(-0.7853982, abs=1e-7)
    # a Dynamixel reverses itself (its Drive Mode register, which the bus writes from the file): its ticks already run
    # the joint's way, and LeRobot's Dynamixel driver ignores drive_mode (apply_drive_mode = False)
    assert joint_angles(*joint_mapping(reversed_pan, so101, DYNAMIXEL_SERVOS), ticks)[0] == pytest.approx(0.7853982, abs=1e-7)


def test_every_arm_joint_maps_its_middle_to_the_model_zero(so101: Robot) -> None:
    gain, offset = joint_mapping(calibration_with(), so101, FEETECH_SERVOS)
    # middles of the file's ranges: (758+3292)/2 = 2025, (612+3378)/2 = 1995, (903+3122)/2 = 2012.5,
    # (857+3215)/2 = 2036, (0+4095)/2 = 2047.5
    middles = [2025, 1995, 2012.5, 2036, 2047.5]
    np.testing.assert_allclose(joint_angles(gain, offset, middles + [3434])[:5], 0.0, atol=1e-12)
    # wrist_roll 1023.5 ticks past its middle (3071): a quarter turn less half a tick, 1.5700293 rad
    assert joint_angles(gain, offset, [2025, 1995, 2012.5, 2036, 3071, 3434])[4] == pytest.approx(1.5700293, abs=1e-7)


def test_the_gripper_range_spans_the_model_gripper_range(so101: Robot) -> None:
    # robots/so101/robot.xml: gripper range="-0.17453 1.74533" (closed .. open); midpoint 0.78540
    calibration = calibration_with(gripper={"range_min": 1000, "range_max": 3000})
    gain, offset = joint_mapping(calibration, so101, FEETECH_SERVOS)
    arm = [2025, 1995, 2012.5, 2036, 2047.5]
    grip = [joint_angles(gain, offset, arm + [t])[5] for t in (1000, 2000, 3000)]
    np.testing.assert_allclose(grip, [-0.17453, 0.78540, 1.74533], atol=1e-5)
    reversed_grip = calibration_with(gripper={"range_min": 1000, "range_max": 3000, "drive_mode": 1})
    gain, offset = joint_mapping(reversed_grip, so101, FEETECH_SERVOS)
    grip = [joint_angles(gain, offset, arm + [t])[5] for t in (1000, 2000, 3000)]
    np.testing.assert_allclose(grip, [1.74533, 0.78540, -0.17453], atol=1e-5)
    gain, offset = joint_mapping(reversed_grip, so101, DYNAMIXEL_SERVOS)  # the servo reversed itself: range_min is closed
    grip = [joint_angles(gain, offset, arm + [t])[5] for t in (1000, 2000, 3000)]
    np.testing.assert_allclose(grip, [-0.17453, 0.78540, 1.74533], atol=1e-5)


def test_a_gripper_never_swept_maps_one_to_one_as_an_arm_joint(so101: Robot) -> None:
    # 0..4095 is what LeRobot gives a motor it does not sweep (an OMX's factory file): no jaw travel to stretch over
    gain, offset = joint_mapping(calibration_with(gripper={"range_min": 0, "range_max": 4095}), so101, FEETECH_SERVOS)
    arm = [2025, 1995, 2012.5, 2036, 2047.5]
    # 512 ticks past the middle 2047.5: an eighth of a turn, pi / 4 = 0.7853982 rad
    assert joint_angles(gain, offset, arm + [2559.5])[5] == pytest.approx(0.7853982, abs=1e-7) and gain[5] == 1.0


def test_the_4096_tick_turn_differs_from_lerobots_degrees_by_4096_over_4095(so101: Robot) -> None:
    calibration = calibration_with(shoulder_pan={"range_min": 1000, "range_max": 3000})
    gain, offset = joint_mapping(calibration, so101, FEETECH_SERVOS)
    ours_deg = np.degrees(joint_angles(gain, offset, [3000, 1995, 2012.5, 2036, 2047.5, 3434])[0])
    # 1000 ticks past the middle: ours 1000 * 360 / 4096 = 87.890625 deg; LeRobot's 1000 * 360 / 4095 = 87.912088 deg
    assert ours_deg == pytest.approx(87.890625, abs=1e-9)
    assert 87.912088 - ours_deg == pytest.approx(0.021463, abs=1e-6)


# ---------------------------------------------------------------- the procedure


class FakeServos:
    """The registers calibration touches, per motor: a shaft position the test moves, Homing_Offset and the limits.

    Only the servo's own rule is modelled: Present_Position = shaft - Homing_Offset (an STS3215), or with
    ``adds_homing`` shaft + Homing Offset (a Dynamixel X, e-manual x/homing_offset.md).
    """

    def __init__(self, shaft: Mapping[str, int], adds_homing: bool = False) -> None:
        self.shaft = dict(shaft)
        self.adds_homing = adds_homing
        self.homing = {joint: 777 for joint in shaft}  # left over from an earlier calibration
        self.limits = {joint: (500, 3500) for joint in shaft}
        self.events: list[str] = []

    def prepare_for_calibration(self) -> None:
        self.events.append("torque off")

    def raw_positions(self) -> dict[str, int]:
        self.events.append("read")
        sign = 1 if self.adds_homing else -1
        return {joint: self.shaft[joint] + sign * self.homing[joint] for joint in self.shaft}

    def write_homing_offsets(self, offsets: Mapping[str, int]) -> None:
        self.events.append(f"homing {dict(offsets)}")
        self.homing.update(offsets)

    def write_position_limits(self, limits: Mapping[str, tuple[int, int]]) -> None:
        self.events.append(f"limits {dict(limits)}")
        self.limits.update(limits)


def _port(servos: FakeServos) -> CalibrationPort:
    return servos  # the fake satisfies the Protocol (a type checker verifies this line)


REST = dict(shoulder_pan=2100, shoulder_lift=900, elbow_flex=3000, wrist_flex=2800, wrist_roll=1000, gripper=2050)
MIDDLE = dict(shoulder_pan=3100, shoulder_lift=1500, elbow_flex=2047, wrist_flex=900, wrist_roll=4000, gripper=2600)
# half-turn offsets, shaft - 2047: 1053, -547, 0, -1147, 1953, 553
HOMINGS = dict(shoulder_pan=1053, shoulder_lift=-547, elbow_flex=0, wrist_flex=-1147, wrist_roll=1953, gripper=553)
SWEEP = [  # shaft positions the user moves through after the middle pose
    dict(MIDDLE, shoulder_pan=2000, wrist_roll=3000),
    dict(MIDDLE, shoulder_pan=4000, shoulder_lift=400, wrist_roll=3800),
    dict(MIDDLE, shoulder_lift=2900, elbow_flex=1000, wrist_flex=100),
    dict(MIDDLE, elbow_flex=3500, wrist_flex=2400, gripper=2500),
    dict(MIDDLE, gripper=3900),
]
# present = shaft - homing:  shoulder_pan 2000-1053 = 947 .. 4000-1053 = 2947;
# shoulder_lift 400+547 = 947 .. 2900+547 = 3447; elbow_flex 1000 .. 3500;
# wrist_flex 100+1147 = 1247 .. 2400+1147 = 3547; gripper 2500-553 = 1947 .. 3900-553 = 3347; wrist_roll 0 .. 4095
EXPECTED = dict(
    shoulder_pan=(947, 2947),
    shoulder_lift=(947, 3447),
    elbow_flex=(1000, 3500),
    wrist_flex=(1247, 3547),
    wrist_roll=(0, 4095),
    gripper=(1947, 3347),
)


def run_procedure(
    servos: FakeServos, middle: Mapping[str, int], sweep: list[dict[str, int]], family: ServoFamily = FEETECH_SERVOS
) -> tuple[dict, list[RangeSnapshot]]:
    """Calibrate with a 'user' who poses ``middle`` when asked, then moves through ``sweep`` one pose per poll."""
    poses = iter(sweep)
    seen: list[RangeSnapshot] = []

    def pose_middle() -> None:
        servos.events.append("middle pose")
        servos.shaft = dict(middle)

    def watch(snapshot: RangeSnapshot) -> bool:
        seen.append(snapshot)
        pose = next(poses, None)
        if pose is not None:
            servos.shaft = dict(pose)
        return pose is None

    return calibrate(_port(servos), IDS, family, pose_middle, watch, full_turn=("wrist_roll",)), seen


def test_the_procedure_centres_each_joint_on_half_a_turn_and_records_its_range() -> None:
    servos = FakeServos(REST)
    calibration, seen = run_procedure(servos, MIDDLE, SWEEP)
    assert servos.events[:2] == ["torque off", "middle pose"]
    # LeRobot's reset before the raw read: offsets 0, limits 0..4095
    assert servos.events[2] == f"homing { {j: 0 for j in JOINTS} }"
    assert servos.events[3] == f"limits { {j: (0, 4095) for j in JOINTS} }"
    assert servos.events[4] == "read"
    assert servos.events[5] == f"homing {HOMINGS}"
    assert {j: c.homing_offset for j, c in calibration.items()} == HOMINGS
    assert {j: (c.range_min, c.range_max) for j, c in calibration.items()} == EXPECTED
    assert {j: c.id for j, c in calibration.items()} == IDS and list(calibration) == list(JOINTS)
    assert all(c.drive_mode == 0 for c in calibration.values())
    # the servos now hold the calibration, as after LeRobot's write_calibration
    assert servos.homing == HOMINGS and servos.limits == EXPECTED
    # live values: the first poll sees every joint at half a turn; wrist_roll's range is fixed at 0..4095
    assert seen[0].positions == {j: 2047 for j in JOINTS}
    assert seen[0].mins["wrist_roll"] == 0 and seen[0].maxes["wrist_roll"] == 4095
    assert seen[0].mins["shoulder_pan"] == seen[0].maxes["shoulder_pan"] == 2047
    assert seen[2].positions["shoulder_pan"] == 2947 and seen[2].mins["shoulder_pan"] == 947
    assert len(seen) == len(SWEEP) + 1


def test_on_a_dynamixel_the_offsets_take_the_other_sign_and_the_ranges_are_the_same() -> None:
    servos = FakeServos(REST, adds_homing=True)
    calibration, seen = run_procedure(servos, MIDDLE, SWEEP, DYNAMIXEL_SERVOS)
    # 2047 - shaft: the negatives of the STS3215's offsets above; present = shaft + homing then reads as there
    assert {j: c.homing_offset for j, c in calibration.items()} == {j: -h for j, h in HOMINGS.items()}
    assert {j: (c.range_min, c.range_max) for j, c in calibration.items()} == EXPECTED
    assert seen[0].positions == {j: 2047 for j in JOINTS}


def test_calibrated_file_round_trips(tmp_path: Path) -> None:
    calibration, _ = run_procedure(FakeServos(REST), MIDDLE, SWEEP)
    save_calibration(tmp_path / "follower.json", calibration)
    assert load_calibration(tmp_path / "follower.json", JOINTS, FEETECH_SERVOS) == calibration


def test_a_middle_pose_at_the_last_tick_needs_an_offset_the_register_cannot_hold() -> None:
    # 4095 - 2047 = 2048 > 2047 (sign-magnitude, sign bit 11); 0 - 2047 = -2047 still fits
    with pytest.raises(SimrlError, match="motor 'elbow_flex' reads 4095 ticks at the middle pose: its homing offset 2048 is beyond the Feetech"):
        run_procedure(FakeServos(REST), dict(MIDDLE, elbow_flex=4095, wrist_flex=0), SWEEP)
    # a Dynamixel's 4-byte register holds 2047 - 4095 = -2048
    assert half_turn_homings({"elbow_flex": 4095}, DYNAMIXEL_SERVOS) == {"elbow_flex": -2048}


def test_a_joint_that_never_moves_is_named() -> None:
    sweep = [dict(pose, gripper=MIDDLE["gripper"]) for pose in SWEEP]
    with pytest.raises(SimrlError, match=r"motor\(s\) gripper did not move"):
        run_procedure(FakeServos(REST), MIDDLE, sweep)


def test_wrist_roll_alone_may_stay_still() -> None:
    sweep = [dict(pose, wrist_roll=MIDDLE["wrist_roll"]) for pose in SWEEP]
    calibration, _ = run_procedure(FakeServos(REST), MIDDLE, sweep)
    assert (calibration["wrist_roll"].range_min, calibration["wrist_roll"].range_max) == (0, 4095)
