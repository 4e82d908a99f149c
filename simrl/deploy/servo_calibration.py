"""LeRobot-compatible calibration of Feetech servo arms (the SO-101): the file, the tick -> joint map, the procedure.

Most SO-101 owners have already calibrated their arm with LeRobot, which wrote
one JSON per arm and stored each joint's zero in the servos themselves (the
Homing_Offset EEPROM register). Reading that file as it is, and calibrating
the same way when there is none, means a LeRobot user never calibrates twice
and a simrl calibration is usable by LeRobot.

Facts, verified in huggingface/lerobot (commit 7427f318, 2026-08) and
TheRobotStudio/SO-ARM100 (commit fda892cb):

* The file (``src/lerobot/robots/robot.py`` ``_save_calibration``): a JSON object
  keyed by motor name, each value the fields of ``MotorCalibration``
  (``src/lerobot/motors/motors_bus.py``) in the order id, drive_mode,
  homing_offset, range_min, range_max, all integers; written by
  ``draccus.dump(..., indent=4)``, which is ``json.dump(d, f, indent=4)``: four
  spaces, no trailing newline.
* The servo (``src/lerobot/motors/feetech/feetech.py`` ``_get_half_turn_homings``):
  Present_Position = Actual_Position - Homing_Offset. Calibrating writes
  Homing_Offset = position - int((4096 - 1) / 2), i.e. position - 2047, so the
  middle pose then reads 2047. The STS3215 has 4096 ticks per turn
  (``feetech/tables.py`` ``MODEL_RESOLUTION``) and stores Homing_Offset in
  sign-magnitude with the sign in bit 11 (``STS_SMS_SERIES_ENCODINGS_TABLE``,
  ``encoding_utils.encode_sign_magnitude``), so its magnitude is at most 2047.
* The procedure (``src/lerobot/robots/so_follower/so_follower.py`` ``calibrate``,
  ``motors_bus.py`` ``set_half_turn_homings`` / ``reset_calibration`` /
  ``record_ranges_of_motion``, ``feetech.py`` ``write_calibration``): torque off;
  the user poses the arm at the middle of its range; Homing_Offset reset to 0
  and Min/Max_Position_Limit to 0 / 4095; present positions read; half-turn
  offsets written; every joint but ``wrist_roll`` is swept by hand while the
  minimum and maximum Present_Position are recorded (a joint whose minimum
  equals its maximum is an error); ``wrist_roll`` gets 0..4095 (it turns all
  the way round); drive_mode is 0 for every motor; the offsets and the ranges
  (as Min/Max_Position_Limit) are written to the servos and the file is saved.
* Angles (``motors_bus.py`` ``_normalize``): the SO follower uses
  ``MotorNormMode.DEGREES`` for the five arm joints (``use_degrees`` defaults to
  True in ``config_so_follower.py``) and ``RANGE_0_100`` for the gripper.
  Degrees = (ticks - (range_min + range_max) / 2) * 360 / 4095: the joint zero
  is the middle of the recorded range. RANGE_0_100 = 100 * (ticks - range_min) /
  (range_max - range_min), or 100 minus that with drive_mode 1; RANGE_M100_100
  also negates with drive_mode 1; DEGREES ignores drive_mode, which every SO
  follower file has at 0 anyway.
* The model: TheRobotStudio's ``Simulation/SO101/README.md`` says of
  ``so101_new_calib.xml`` (whose kinematics robots/so101/robot.xml is written
  from) that "each joint's virtual zero is set to the middle of its joint
  range", i.e. aligned with this calibration, and that LeRobot's gripper is a
  0 (closed) .. 100 (open) value not reflected in the model. LeRobot's own
  kinematics examples (``examples/phone_to_so100/*.py``) feed the degrees mode
  straight into ``so101_new_calib.urdf`` through ``np.deg2rad``: same zero,
  same sign.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pydantic

from simrl.config import StrictModel
from simrl.deploy.buses.feetech.protocol import HOMING_OFFSET_LIMIT, MAX_ID, RAD_PER_TICK, TICKS_PER_TURN, ticks_to_radians
from simrl.errors import SimrlError, did_you_mean
from simrl.files import atomic_write_text
from simrl.robots import Robot

MAX_TICK = TICKS_PER_TURN - 1  # 4095, the largest Present_Position
HALF_TURN = MAX_TICK // 2  # 2047: LeRobot's int(max_res / 2) with max_res = 4095, what the middle pose reads
FULL_TURN_JOINTS: tuple[str, ...] = ("wrist_roll",)  # lerobot so_follower.py calibrate(): full_turn_motor


class MotorCalibration(StrictModel):
    """One motor's entry in a LeRobot calibration file, in raw ticks (Present_Position after Homing_Offset)."""

    model_config = pydantic.ConfigDict(strict=True)  # ints only: a "12" string or a 12.0 float is a broken file

    id: int = pydantic.Field(ge=0, le=MAX_ID, description="servo id on the bus")
    drive_mode: int = pydantic.Field(description="0, or 1 to reverse the joint's direction")
    homing_offset: int = pydantic.Field(
        ge=-HOMING_OFFSET_LIMIT, le=HOMING_OFFSET_LIMIT, description="Homing_Offset register: ticks subtracted from the shaft position"
    )
    range_min: int = pydantic.Field(ge=0, le=MAX_TICK, description="smallest Present_Position of the joint's travel")
    range_max: int = pydantic.Field(ge=0, le=MAX_TICK, description="largest Present_Position of the joint's travel")

    @pydantic.field_validator("drive_mode")
    @classmethod
    def _zero_or_one(cls, value: int) -> int:
        # an int field, not Literal[0, 1]: the literal would take JSON true (== 1) and save it back as true
        if value not in (0, 1):
            raise ValueError("must be 0 or 1 (1 reverses the joint)")
        return value

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "MotorCalibration":
        if self.range_min >= self.range_max:
            raise ValueError(f"range_min = {self.range_min} must be below range_max = {self.range_max}")
        return self

    @property
    def middle(self) -> float:
        """The middle of the range in ticks: LeRobot's joint zero (a half tick when min + max is odd)."""
        return (self.range_min + self.range_max) / 2


FIELDS = tuple(MotorCalibration.model_fields)  # LeRobot's order: id, drive_mode, homing_offset, range_min, range_max


def _entry_error(path: Path, motor: str, exc: pydantic.ValidationError) -> str:
    """One line for a motor's first validation error; an unknown key first, since it also makes its intended field 'missing'."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = f"{path}: motor '{motor}'"
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        return f"{where}: unknown field '{key}'{did_you_mean(key, FIELDS, lead='; ')} (allowed: {', '.join(FIELDS)})"
    if err["type"] == "missing":
        return f"{where}: missing field '{err['loc'][-1]}' (a LeRobot calibration entry has {', '.join(FIELDS)})"
    if err["type"] == "model_type":
        return f"{where}: must be an object with {', '.join(FIELDS)}, got {err['input']!r}"
    message = err["msg"].removeprefix("Value error, ")
    if not err["loc"]:  # the range check, which names both fields itself
        return f"{where}: {message}"
    return f"{where}: field '{err['loc'][-1]}' = {err['input']!r}: {message}"


def _no_duplicate_keys(path: Path) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A json object hook that refuses a repeated key (json.load would silently keep the last one)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise SimrlError(f"{path}: key '{key}' appears twice")
            seen[key] = value
        return seen

    return hook


def load_calibration(path: Path, joints: Sequence[str]) -> dict[str, MotorCalibration]:
    """Read a LeRobot calibration file for a robot whose motors drive ``joints``; returned in ``joints`` order.

    Every motor needs an entry and every entry must name one of ``joints``
    (LeRobot names the motors after the joints they drive). Ids must differ.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SimrlError(f"{path}: calibration file not found") from None
    except OSError as exc:
        raise SimrlError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as exc:
        raise SimrlError(f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise SimrlError(f"{path}: must be a JSON object keyed by motor name ({', '.join(joints)}), got {type(data).__name__}")
    for name in data:
        if name not in joints:
            raise SimrlError(
                f"{path}: motor '{name}' is not a joint of this robot{did_you_mean(name, joints, lead='; ')} (motors: {', '.join(joints)})"
            )
    for name in joints:
        if name not in data:
            raise SimrlError(f"{path}: no calibration for motor '{name}' (the file has: {', '.join(data) or 'nothing'})")
    calibration: dict[str, MotorCalibration] = {}
    for name in joints:
        try:
            calibration[name] = MotorCalibration.model_validate(data[name])
        except pydantic.ValidationError as exc:
            raise SimrlError(_entry_error(path, name, exc)) from None
    owners: dict[int, str] = {}
    for name, entry in calibration.items():
        if entry.id in owners:
            raise SimrlError(f"{path}: motor '{name}' has id {entry.id}, already used by motor '{owners[entry.id]}' (ids must differ)")
        owners[entry.id] = name
    return calibration


def calibration_json(calibration: Mapping[str, MotorCalibration]) -> str:
    """The file's text exactly as LeRobot writes it (``json.dump(..., indent=4)``, no trailing newline)."""
    return json.dumps({name: entry.model_dump() for name, entry in calibration.items()}, indent=4)


def save_calibration(path: Path, calibration: Mapping[str, MotorCalibration]) -> None:
    """Write ``calibration`` in LeRobot's format, atomically: an interrupted save leaves the previous file whole."""
    atomic_write_text(path, calibration_json(calibration))


def joint_mapping(
    calibration: Mapping[str, MotorCalibration], robot: Robot, joints: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(gain, offset)`` per motor of ``joints`` (default: the robot's motor order, arm joints then gripper joints), for
    ``joint = gain * (motor - offset)`` with ``motor`` the angle the bus reports: ``(ticks - 2048) * 2 pi / 4096``
    (``ticks_to_radians``; both serial buses put 0 rad at half a turn).

    Arm joints: LeRobot's zero (the middle of the recorded range) is the model's
    zero (so101_new_calib, see the module docstring), so ``offset`` is the middle
    as a motor angle and ``gain`` is +1, or -1 with drive_mode 1 (as LeRobot's range
    modes reverse). A gripper joint: LeRobot's 0..100 % of the recorded range
    goes linearly onto the model joint's range, range_min onto its low end
    (closed), or onto its high end with drive_mode 1; ``gain`` is then the model
    span over the tick span in radians.

    One tick is 2 pi / 4096 rad here, the encoder's true resolution, so joint
    angles are real shaft angles, as the MuJoCo model's are. LeRobot's degrees
    mode divides by 4095 instead (its ``max_res = resolution - 1``), which reads
    every angle 4096 / 4095 = 1.000244 times larger: 0.5 mrad (0.03 deg) at the
    ends of a typical 2,800-tick arm joint range, 0.77 mrad (0.044 deg, half a
    tick) at wrist_roll's +-2047.5 ticks; less than one encoder tick everywhere.
    """
    if joints is None:
        joints = list(robot.config.arm_joints) + list(robot.config.gripper_joints)
    gain = np.empty(len(joints))
    offset = np.empty(len(joints))
    for i, joint in enumerate(joints):
        if joint not in calibration:
            raise SimrlError(f"calibration has no motor '{joint}' (robot '{robot.name}' needs {', '.join(joints)})")
        entry = calibration[joint]
        direction = -1.0 if entry.drive_mode else 1.0
        if joint in robot.config.gripper_joints:
            low, high = (float(v) for v in robot.model.jnt_range[robot.model.joint(joint).id])
            gain[i] = direction * (high - low) / ((entry.range_max - entry.range_min) * RAD_PER_TICK)
            at_min = high if entry.drive_mode else low  # the joint angle at range_min
            offset[i] = ticks_to_radians(entry.range_min) - at_min / gain[i]
        else:
            gain[i] = direction
            offset[i] = ticks_to_radians(entry.middle)
    return gain, offset


@runtime_checkable
class CalibrationPort(Protocol):
    """What the calibration procedure needs from a servo bus, in raw ticks, keyed by joint name (the motor's name).

    ``FeetechBus`` is one. Homing_Offset (address 31) and Min/Max_Position_Limit
    (9 / 11) live in the servo's EEPROM: each write unlocks it (Lock, 55 = 0)
    and locks it again.
    """

    def disable_torque(self) -> None:
        """Torque off on every motor, so the user can move the arm by hand."""

    def raw_positions(self) -> dict[str, int]:
        """Present_Position of every motor in ticks, 0..4095 (already less the servo's Homing_Offset)."""

    def write_homing_offsets(self, offsets: Mapping[str, int]) -> None:
        """Write Homing_Offset (ticks, -2047..2047, sign-magnitude bit 11 on the wire) of the motors named."""

    def write_position_limits(self, limits: Mapping[str, tuple[int, int]]) -> None:
        """Write Min_Position_Limit and Max_Position_Limit (ticks, 0..4095) of the motors named."""


@dataclass(frozen=True)
class RangeSnapshot:
    """One poll while ranges are recorded, for a live display: ticks per joint, in motor order.

    Full-turn joints show their fixed 0..4095 as min / max.
    """

    positions: dict[str, int]
    mins: dict[str, int]
    maxes: dict[str, int]


def _read(port: CalibrationPort, joints: Sequence[str]) -> dict[str, int]:
    """Present positions of ``joints``, checked: a bus that leaves one out or reads outside 0..4095 is a bug, not a pose."""
    positions = port.raw_positions()
    for joint in joints:
        if joint not in positions:
            raise SimrlError(f"the bus returned no position for motor '{joint}'")
        if not 0 <= positions[joint] <= MAX_TICK:
            raise SimrlError(f"motor '{joint}' reads {positions[joint]} ticks, outside 0..{MAX_TICK}")
    return {joint: int(positions[joint]) for joint in joints}


def half_turn_homings(positions: Mapping[str, int]) -> dict[str, int]:
    """Homing_Offset per motor that makes its present position read 2047 (half a turn), as LeRobot computes it.

    Centring the pose the user calls "middle" on half a turn keeps the
    travel away from the 4095 -> 0 wrap, so the range recorded next is one
    interval. A shaft at 4095 would need +2048, which the register cannot hold.
    """
    offsets = {}
    for joint, position in positions.items():
        offset = position - HALF_TURN
        if abs(offset) > HOMING_OFFSET_LIMIT:
            raise SimrlError(
                f"motor '{joint}' reads {position} ticks at the middle pose: its homing offset {offset} is beyond the servo's "
                f"+-{HOMING_OFFSET_LIMIT}; move the joint slightly and calibrate again"
            )
        offsets[joint] = offset
    return offsets


def apply_calibration(port: CalibrationPort, calibration: Mapping[str, MotorCalibration]) -> None:
    """Store ``calibration`` in the servos (Homing_Offset, then the range as Min/Max_Position_Limit), as LeRobot's
    ``write_calibration`` does, so a file's ticks and the servos' agree and the servos refuse goals outside the range."""
    port.write_homing_offsets({joint: entry.homing_offset for joint, entry in calibration.items()})
    port.write_position_limits({joint: (entry.range_min, entry.range_max) for joint, entry in calibration.items()})


def calibrate(
    port: CalibrationPort,
    motors: Mapping[str, int],
    wait_for_middle_pose: Callable[[], None],
    watch_ranges: Callable[[RangeSnapshot], bool],
    full_turn: Collection[str] = FULL_TURN_JOINTS,
) -> dict[str, MotorCalibration]:
    """Calibrate an arm as LeRobot's ``calibrate()`` does, and store the result in its servos.

    ``motors`` maps each joint to its servo id, in motor order.
    ``wait_for_middle_pose`` returns once the user has posed the arm at the
    middle of its range. ``watch_ranges`` gets every poll while the user sweeps
    each joint (except ``full_turn`` ones) through its travel and returns True
    to stop; it also paces the polling (a live display's refresh does). The
    caller does the talking to the user, so this stays free of terminal I/O.
    Returns the calibration in ``motors`` order; the caller saves it.
    """
    joints = list(motors)
    port.disable_torque()
    wait_for_middle_pose()
    # LeRobot's reset_calibration: Homing_Offset 0 and the full tick range, so the next read is the raw shaft position
    port.write_homing_offsets({joint: 0 for joint in joints})
    port.write_position_limits({joint: (0, MAX_TICK) for joint in joints})
    homings = half_turn_homings(_read(port, joints))
    port.write_homing_offsets(homings)

    swept = [joint for joint in joints if joint not in full_turn]
    start = _read(port, swept)
    mins = {joint: start.get(joint, 0) for joint in joints}  # full-turn joints keep 0..4095
    maxes = {joint: start.get(joint, MAX_TICK) for joint in joints}
    while True:
        positions = _read(port, joints)
        for joint in swept:
            mins[joint] = min(mins[joint], positions[joint])
            maxes[joint] = max(maxes[joint], positions[joint])
        if watch_ranges(RangeSnapshot(positions=positions, mins=dict(mins), maxes=dict(maxes))):
            break
    still = [joint for joint in swept if mins[joint] == maxes[joint]]
    if still:
        raise SimrlError(
            f"motor(s) {', '.join(still)} did not move while ranges were recorded (min = max); "
            "move every joint through its whole range, then stop"
        )

    calibration = {
        joint: MotorCalibration(id=servo_id, drive_mode=0, homing_offset=homings[joint], range_min=mins[joint], range_max=maxes[joint])
        for joint, servo_id in motors.items()
    }
    apply_calibration(port, calibration)
    return calibration
