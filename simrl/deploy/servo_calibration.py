"""LeRobot-compatible calibration of serial servo arms (Feetech: the SO-101; Dynamixel: Koch, OMX): the file, the tick ->
joint map, the procedure. One code path for both families; what differs between them is a ``ServoFamily``, which
each vendor's ``buses/<vendor>/settings.py`` declares from its own register facts.

Most owners of these arms have already calibrated them with LeRobot, which
wrote one JSON per arm and stored each joint's zero in the servos themselves
(the Homing_Offset EEPROM register). Reading that file as it is, and
calibrating the same way when there is none, means a LeRobot user never
calibrates twice and a simrl calibration is usable by LeRobot.

Facts, verified in huggingface/lerobot (commit 7427f318, 2026-08) and
TheRobotStudio/SO-ARM100 (commit fda892cb):

* The file (``src/lerobot/robots/robot.py`` ``_save_calibration``): a JSON object
  keyed by motor name, each value the fields of ``MotorCalibration``
  (``src/lerobot/motors/motors_bus.py``) in the order id, drive_mode,
  homing_offset, range_min, range_max, all integers; written by
  ``draccus.dump(..., indent=4)``, which is ``json.dump(d, f, indent=4)``: four
  spaces, no trailing newline. The same format for every robot and vendor.
* Homing, the one sign that differs (``_get_half_turn_homings`` of
  ``motors/feetech/feetech.py`` and ``motors/dynamixel/dynamixel.py``): a
  Feetech servo reads Present_Position = Actual_Position - Homing_Offset, so
  LeRobot writes Homing_Offset = position - 2047; a Dynamixel reads Actual +
  Homing_Offset (also the ROBOTIS e-manual, ``_includes/en/dxl/x/homing_offset.md``),
  so LeRobot writes 2047 - position. Either way the middle pose then reads
  int((4096 - 1) / 2) = 2047. Both families count 4096 ticks a turn
  (``MODEL_RESOLUTION`` in ``feetech/tables.py`` and ``dynamixel/tables.py``).
  The registers differ (``ServoFamily.homing_limit``): the STS3215's is
  sign-magnitude with the sign in bit 11 (at most 2047), the X series' 4 bytes
  two's complement (+-1,044,479).
* drive_mode (``apply_drive_mode`` in both driver classes): the Feetech driver
  reverses a drive_mode 1 motor in software (``motors_bus.py`` ``_normalize``:
  the RANGE modes negate, DEGREES ignores it); the Dynamixel driver does not
  (``apply_drive_mode = False``): the servo's own Drive_Mode register (10, bit 0
  Reverse, e-manual ``drive_mode.md``) reverses Present/Goal Position, and
  ``read_calibration`` reads drive_mode from that register, so ``is_calibrated``
  holds only while servo and file agree. LeRobot's Koch leader writes
  Drive_Mode 1 to elbow_flex before homing (``teleoperators/koch_leader``
  ``calibrate``), so its ranges are in the reversed frame; every follower
  writes drive_mode 0 (``koch_follower.py``, ``omx_follower.py``,
  ``so_follower.py`` ``calibrate``).
* The procedure (``so_follower.py``, ``koch_follower.py`` ``calibrate``;
  ``motors_bus.py`` ``set_half_turn_homings`` / ``reset_calibration`` /
  ``record_ranges_of_motion``): torque off (a Koch also switches every motor
  to extended position mode first, see ``buses/dynamixel``); the user poses the
  arm at the middle of its range; Homing_Offset reset to 0 and
  Min/Max_Position_Limit to 0 / 4095; present positions read; half-turn
  offsets written; every joint but the arm's full-turn ones is swept by hand
  while the minimum and maximum Present_Position are recorded (a joint whose
  minimum equals its maximum is an error); full-turn joints get 0..4095
  (SO-101: wrist_roll; Koch: shoulder_pan and wrist_roll); the offsets and the
  ranges (as Min/Max_Position_Limit) are written to the servos
  (``write_calibration``: both drivers write Homing_Offset, Min_ and
  Max_Position_Limit, never Drive_Mode) and the file is saved. An OMX ships
  calibrated: LeRobot writes it homing 0 and 0..4095 for every motor
  (``omx_follower.py`` ``calibrate``).
* Angles (``motors_bus.py`` ``_normalize``): the SO follower uses
  ``MotorNormMode.DEGREES`` for the five arm joints, the Koch and OMX followers
  ``RANGE_M100_100`` (``use_degrees`` False in their configs); the gripper is
  ``RANGE_0_100`` on all three. Degrees = (ticks - (range_min + range_max) / 2)
  * 360 / 4095 and M100_100 = 200 (ticks - range_min) / (range_max -
  range_min) - 100 both put the joint zero at the middle of the recorded
  range. RANGE_0_100 = 100 * (ticks - range_min) / (range_max - range_min).
* The model: TheRobotStudio's ``Simulation/SO101/README.md`` says of
  ``so101_new_calib.xml`` (whose kinematics robots/so101/robot.xml is written
  from) that "each joint's virtual zero is set to the middle of its joint
  range", i.e. aligned with this calibration, and that LeRobot's gripper is a
  0 (closed) .. 100 (open) value not reflected in the model. LeRobot's own
  kinematics examples (``examples/phone_to_so100/*.py``) feed the degrees mode
  straight into ``so101_new_calib.urdf`` through ``np.deg2rad``: same zero,
  same sign. A Dynamixel arm's model is aligned the same way (its robot.xml says how).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pydantic

from simrl.config import StrictModel
from simrl.errors import SimrlError, did_you_mean
from simrl.files import atomic_write_text
from simrl.robots import Robot

TICKS_PER_TURN = 4096  # the file's unit: LeRobot's MODEL_RESOLUTION of the sts3215 and of every Dynamixel X model
MAX_TICK = TICKS_PER_TURN - 1  # 4095, the largest range_max (LeRobot's max_res)
HALF_TURN = MAX_TICK // 2  # 2047: LeRobot's int(max_res / 2), what the middle pose reads after homing
MAX_FILE_ID = 0xFF  # an id is one byte on both buses; the deploy file's own id check says which one the motor has


@dataclass(frozen=True)
class ServoFamily:
    """What LeRobot's calibration file means on one serial servo family (the module docstring has the sources).

    Each vendor's settings declare one from their own register facts, so the
    file, the procedure and the tick -> joint map stay one code path.
    """

    name: str  # "Feetech", "Dynamixel": how messages name the family
    homing_sign: Literal[1, -1]  # Present_Position = actual position + homing_sign * Homing_Offset
    homing_limit: int  # the largest |Homing_Offset| the register holds
    drive_mode_in_servo: bool  # True: the servo's Drive_Mode register reverses the motor (LeRobot's apply_drive_mode False)
    ticks_to_radians: Callable[[float], float]  # the bus's motor space: a Present_Position as the angle the bus reports

    def homing_offset(self, actual: int, present: int) -> int:
        """The Homing_Offset that makes a servo whose actual position is ``actual`` read ``present``."""
        return self.homing_sign * (present - actual)


class MotorCalibration(StrictModel):
    """One motor's entry in a LeRobot calibration file, in raw ticks (Present_Position after Homing_Offset).

    ``load_calibration`` also checks ``homing_offset`` against the family's
    register (validation context ``servos``); entries built in code are checked
    by the bus that writes them.
    """

    model_config = pydantic.ConfigDict(strict=True)  # ints only: a "12" string or a 12.0 float is a broken file

    id: int = pydantic.Field(ge=0, le=MAX_FILE_ID, description="servo id on the bus")
    drive_mode: int = pydantic.Field(description="0, or 1 to reverse the joint's direction")
    homing_offset: int = pydantic.Field(description="Homing_Offset register: ticks between the shaft's position and Present_Position")
    range_min: int = pydantic.Field(ge=0, le=MAX_TICK, description="smallest Present_Position of the joint's travel")
    range_max: int = pydantic.Field(ge=0, le=MAX_TICK, description="largest Present_Position of the joint's travel")

    @pydantic.field_validator("drive_mode")
    @classmethod
    def _zero_or_one(cls, value: int) -> int:
        # an int field, not Literal[0, 1]: the literal would take JSON true (== 1) and save it back as true
        if value not in (0, 1):
            raise ValueError("must be 0 or 1 (1 reverses the joint)")
        return value

    @pydantic.field_validator("homing_offset")
    @classmethod
    def _fits_the_register(cls, value: int, info: pydantic.ValidationInfo) -> int:
        servos: ServoFamily | None = (info.context or {}).get("servos")
        if servos is not None and abs(value) > servos.homing_limit:
            raise ValueError(f"allowed: -{servos.homing_limit}..{servos.homing_limit} (a {servos.name} servo's Homing_Offset)")
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


def load_calibration(path: Path, joints: Sequence[str], servos: ServoFamily) -> dict[str, MotorCalibration]:
    """Read a LeRobot calibration file for an arm of ``servos`` whose motors drive ``joints``; returned in ``joints`` order.

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
            calibration[name] = MotorCalibration.model_validate(data[name], context={"servos": servos})
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
    calibration: Mapping[str, MotorCalibration], robot: Robot, servos: ServoFamily, joints: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(gain, offset)`` per motor of ``joints`` (default: the robot's motor order, arm joints then gripper joints), for
    ``joint = gain * (motor - offset)`` with ``motor`` the angle the bus reports (``servos.ticks_to_radians``: both
    serial buses put 0 rad at tick 2048, 4096 ticks a turn).

    Arm joints: LeRobot's zero (the middle of the recorded range) is the model's
    zero (so101_new_calib, see the module docstring), so ``offset`` is the middle
    as a motor angle and ``gain`` is +1, or -1 with drive_mode 1 where the host
    reverses (Feetech, as LeRobot's range modes do). Where the servo reverses
    itself (Dynamixel's Drive_Mode, which the bus writes from the file) its
    ticks already run the joint's way: ``gain`` stays +1, as LeRobot's
    Dynamixel driver ignores drive_mode. A gripper joint: LeRobot's 0..100 % of
    the recorded range goes linearly onto the model joint's range, range_min
    onto its low end (closed), or onto its high end when the host reverses;
    ``gain`` is then the model span over the tick span in radians. A gripper
    whose range is the whole turn (0..4095) was never swept (LeRobot gives that
    to every motor of an arm its maker calibrated, the OMX): the range says
    nothing of the jaw's travel, so its ticks map one to one, as an arm joint's.

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
        reversed_here = bool(entry.drive_mode) and not servos.drive_mode_in_servo
        direction = -1.0 if reversed_here else 1.0
        swept = (entry.range_min, entry.range_max) != (0, MAX_TICK)
        if joint in robot.config.gripper_joints and swept:
            low, high = (float(v) for v in robot.model.jnt_range[robot.model.joint(joint).id])
            span = servos.ticks_to_radians(entry.range_max) - servos.ticks_to_radians(entry.range_min)
            gain[i] = direction * (high - low) / span
            at_min = high if reversed_here else low  # the joint angle at range_min
            offset[i] = servos.ticks_to_radians(entry.range_min) - at_min / gain[i]
        else:
            gain[i] = direction
            offset[i] = servos.ticks_to_radians(entry.middle)
    return gain, offset


@runtime_checkable
class CalibrationPort(Protocol):
    """What the calibration procedure needs from a servo bus, in raw ticks, keyed by joint name (the motor's name).

    ``FeetechBus`` and ``DynamixelBus`` are ones. Homing_Offset and the
    Min/Max_Position_Limit live in the servos' EEPROM; each bus writes them its
    family's way (a Feetech unlocks it with Lock; a Dynamixel takes EEPROM
    writes only with its torque off).
    """

    def prepare_for_calibration(self) -> None:
        """Torque off on every motor, so the user can move the arm by hand, and whatever else the family's own
        calibration does before homing (a Dynamixel: Drive_Mode normal, extended position mode)."""

    def raw_positions(self) -> dict[str, int]:
        """Present_Position of every motor in ticks (with the servo's Homing_Offset applied)."""

    def write_homing_offsets(self, offsets: Mapping[str, int]) -> None:
        """Write Homing_Offset (ticks) of the motors named."""

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


def _read(port: CalibrationPort, joints: Sequence[str], ranged: Collection[str]) -> dict[str, int]:
    """Present positions of ``joints``, checked: one left out is a bus bug; one of ``ranged`` outside 0..4095 cannot be
    a file's range (a Dynamixel in extended position mode counts on past a turn; before homing any reading is fine)."""
    positions = port.raw_positions()
    for joint in joints:
        if joint not in positions:
            raise SimrlError(f"the bus returned no position for motor '{joint}'")
        if joint in ranged and not 0 <= positions[joint] <= MAX_TICK:
            raise SimrlError(f"motor '{joint}' reads {positions[joint]} ticks, outside 0..{MAX_TICK} (a range LeRobot's file can hold)")
    return {joint: int(positions[joint]) for joint in joints}


def half_turn_homings(positions: Mapping[str, int], servos: ServoFamily) -> dict[str, int]:
    """Homing_Offset per motor that makes its present position read 2047 (half a turn), as LeRobot computes it.

    Centring the pose the user calls "middle" on half a turn keeps the
    travel away from the 4095 -> 0 wrap, so the range recorded next is one
    interval. On a Feetech a shaft at 4095 would need 2048, which its
    register cannot hold.
    """
    offsets = {}
    for joint, position in positions.items():
        offset = servos.homing_offset(position, HALF_TURN)
        if abs(offset) > servos.homing_limit:
            raise SimrlError(
                f"motor '{joint}' reads {position} ticks at the middle pose: its homing offset {offset} is beyond the "
                f"{servos.name} servo's +-{servos.homing_limit}; move the joint slightly and calibrate again"
            )
        offsets[joint] = offset
    return offsets


def apply_calibration(port: CalibrationPort, calibration: Mapping[str, MotorCalibration]) -> None:
    """Store ``calibration`` in the servos (Homing_Offset, then the range as Min/Max_Position_Limit), as LeRobot's
    ``write_calibration`` does, so a file's ticks and the servos' agree and the servos refuse goals outside the range."""
    port.write_homing_offsets({joint: entry.homing_offset for joint, entry in calibration.items()})
    port.write_position_limits({joint: (entry.range_min, entry.range_max) for joint, entry in calibration.items()})


def factory_calibrate(port: CalibrationPort, motors: Mapping[str, int]) -> dict[str, MotorCalibration]:
    """LeRobot's calibration of an arm its maker calibrated (``omx_follower.py`` ``calibrate``): no pose, no sweep;
    every motor gets homing 0, drive_mode 0 and 0..4095, stored in the servos and returned in ``motors`` order."""
    port.prepare_for_calibration()
    calibration = {
        joint: MotorCalibration(id=servo_id, drive_mode=0, homing_offset=0, range_min=0, range_max=MAX_TICK) for joint, servo_id in motors.items()
    }
    apply_calibration(port, calibration)
    return calibration


def calibrate(
    port: CalibrationPort,
    motors: Mapping[str, int],
    servos: ServoFamily,
    wait_for_middle_pose: Callable[[], None],
    watch_ranges: Callable[[RangeSnapshot], bool],
    full_turn: Collection[str] = (),
) -> dict[str, MotorCalibration]:
    """Calibrate an arm of ``servos`` as LeRobot's ``calibrate()`` does, and store the result in its servos.

    ``motors`` maps each joint to its servo id, in motor order.
    ``wait_for_middle_pose`` returns once the user has posed the arm at the
    middle of its range. ``watch_ranges`` gets every poll while the user sweeps
    each joint (except ``full_turn`` ones, which get 0..4095) through its travel
    and returns True to stop; it also paces the polling (a live display's
    refresh does). The caller does the talking to the user, so this stays free
    of terminal I/O. Returns the calibration in ``motors`` order (drive_mode 0,
    as every LeRobot follower's); the caller saves it.
    """
    joints = list(motors)
    port.prepare_for_calibration()
    wait_for_middle_pose()
    # LeRobot's reset_calibration: Homing_Offset 0 and the full tick range, so the next read is the raw shaft position
    port.write_homing_offsets({joint: 0 for joint in joints})
    port.write_position_limits({joint: (0, MAX_TICK) for joint in joints})
    homings = half_turn_homings(_read(port, joints, ()), servos)
    port.write_homing_offsets(homings)

    swept = [joint for joint in joints if joint not in full_turn]
    start = _read(port, swept, swept)
    mins = {joint: start.get(joint, 0) for joint in joints}  # full-turn joints keep 0..4095
    maxes = {joint: start.get(joint, MAX_TICK) for joint in joints}
    while True:
        positions = _read(port, joints, swept)
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
