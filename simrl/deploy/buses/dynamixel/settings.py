"""The Dynamixel part of ``deploy/<arm>.yaml``: the serial port, rate and LeRobot's calibration file in ``bus:``; id, model,
operating mode, gains and Goal Current per servo.

Calibration, ids and the refusal of ``offset`` / ``sign`` are every serial
servo family's (``buses/servo_settings.py``); here are the X series' own
facts (``DYNAMIXEL_SERVOS``): Present Position = Actual Position + Homing
Offset, a 4-byte Homing Offset, and a Drive Mode register that reverses the
servo itself, so LeRobot's Dynamixel driver never reverses in software
(``motors/dynamixel/dynamixel.py``: ``_get_half_turn_homings``,
``apply_drive_mode = False``). Operating modes and gains are per motor, as
LeRobot's ``configure()`` sets them (extended position for the arm,
current-based position for the gripper, P/I/D on one joint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

import pydantic

from simrl.deploy.buses.dynamixel.protocol import HOMING_OFFSET_LIMIT, MAX_GAIN, MAX_ID, MODELS, POSITION_MODE_HOMING_LIMIT, ticks_to_radians
from simrl.deploy.buses.servo_settings import ServoBusSettings, ServoMotorSettings
from simrl.deploy.buses.settings import BusKind
from simrl.deploy.servo_calibration import MotorCalibration, ServoFamily, load_calibration
from simrl.errors import SimrlError

if TYPE_CHECKING:
    from simrl.deploy.buses.dynamixel.bus import DynamixelBus

DYNAMIXEL_SERVOS = ServoFamily(
    name="Dynamixel", homing_sign=1, homing_limit=HOMING_OFFSET_LIMIT, drive_mode_in_servo=True, ticks_to_radians=ticks_to_radians
)


class DynamixelBusSettings(ServoBusSettings):
    """``bus: {kind: dynamixel, ...}``: the serial port, its rate, and the arm's calibration file."""

    servos = DYNAMIXEL_SERVOS

    kind: Literal["dynamixel"]
    port: str = pydantic.Field("/dev/ttyUSB0", description="serial device (a ROBOTIS U2D2 is an FTDI adapter: ttyUSB)")
    baud: int = pydantic.Field(1_000_000, gt=0, description="the servos' Baud Rate; LeRobot's setup_motors sets 1 Mbaud")

    def check_calibration(self, where: str, motors: Sequence[Any], entries: dict[str, MotorCalibration]) -> None:
        """A motor in position mode ignores a Homing Offset beyond +-1,024 (x/homing_offset.md): refuse that pairing."""
        for i, motor in enumerate(motors):
            offset = entries[motor.joint].homing_offset
            if motor.mode == "position" and abs(offset) > POSITION_MODE_HOMING_LIMIT:
                raise SimrlError(
                    f"{where}: motor '{motor.joint}' has homing_offset {offset}, which a servo in motors.{i}.mode = 'position' ignores "
                    f"(beyond +-{POSITION_MODE_HOMING_LIMIT}); allowed: mode extended_position or current_position, as LeRobot runs it"
                )


class DynamixelMotorSettings(ServoMotorSettings):
    """One Dynamixel X-series servo: id, model, operating mode and, optionally, the Position P/I/D gains to write."""

    known_models = MODELS

    kind: Literal["dynamixel"] = pydantic.Field(exclude=True)
    id: int = pydantic.Field(ge=0, le=MAX_ID, description="servo id (LeRobot: Koch 1..6, OMX 11..16 from the base)")
    model: str
    mode: Literal["position", "extended_position", "current_position"] = pydantic.Field(
        "extended_position", description="Operating Mode: 3, 4 (LeRobot's for arm joints) or 5 (LeRobot's for the gripper)"
    )
    position_p_gain: int | None = pydantic.Field(None, ge=0, le=MAX_GAIN, description="Position P Gain (84); none: the servo's")
    position_i_gain: int | None = pydantic.Field(None, ge=0, le=MAX_GAIN, description="Position I Gain (82); none: the servo's")
    position_d_gain: int | None = pydantic.Field(None, ge=0, le=MAX_GAIN, description="Position D Gain (80); none: the servo's")
    goal_current: int | None = pydantic.Field(
        None,
        description="Goal Current (102) of a current_position motor, in the model's current units (XL330: 1 mA): the most its "
        "loop may draw, so the force it presses with; none: its Current Limit (38), as LeRobot leaves it. ROBOTIS runs the "
        "OMX gripper at 600",
    )

    @pydantic.model_validator(mode="after")
    def _mode_and_gains(self) -> "DynamixelMotorSettings":
        if self.mode == "current_position" and MODELS[self.model].current_unit is None:
            raise ValueError(f"mode = 'current_position': the {self.model} senses no current; allowed: position, extended_position")
        if self.goal_current is not None:
            check_goal_current(self.model, self.mode, self.goal_current)
        given = [g is not None for g in (self.position_p_gain, self.position_i_gain, self.position_d_gain)]
        if any(given) and not all(given):
            raise ValueError("position_p_gain, position_i_gain, position_d_gain: allowed: all three (as LeRobot writes them) or none")
        return self

    @property
    def gains(self) -> tuple[int, int, int] | None:
        """(P, I, D) to write, or None."""
        if self.position_p_gain is None or self.position_i_gain is None or self.position_d_gain is None:
            return None
        return self.position_p_gain, self.position_i_gain, self.position_d_gain


def check_goal_current(model: str, mode: str, goal_current: int) -> None:
    """A Goal Current the servo can hold: only in current-based position mode, above 0 (else the loop has no torque) and
    within the range of the model's Current Limit (38) (the e-manual: Goal Current is limited by it). ``ValueError``."""
    if mode != "current_position":
        raise ValueError(f"goal_current = {goal_current} with mode = '{mode}', which ignores it; allowed: mode current_position")
    high = MODELS[model].register("current_limit").high
    if not 0 < goal_current <= (high or 0):
        raise ValueError(f"goal_current = {goal_current}: the {model}'s Current Limit reaches {high}; allowed: 1..{high}")


def build_bus(bus: DynamixelBusSettings, motors: Sequence[DynamixelMotorSettings], reply_timeout: float, **settings: Any) -> "DynamixelBus":
    """The ``DynamixelBus`` of a deploy file (``settings`` replace its own, e.g. an emulator's ``port``); dynamixel_sdk is imported here.

    The calibration file was checked with the config; it is read again here,
    so the bus writes what the joint calibration was computed from.
    """
    from simrl.deploy.buses.dynamixel.bus import DynamixelBus, DynamixelMotor

    joints = [m.joint for m in motors]
    calibration = None if bus.calibration is None else load_calibration(bus.calibration, joints, DYNAMIXEL_SERVOS)
    options: dict[str, Any] = {"port": bus.port, "baud": bus.baud, "reply_timeout": reply_timeout, "retries": bus.retries}
    options.update(settings)
    port = options.pop("port")
    servos = [DynamixelMotor(m.joint, m.id, m.model, m.mode, m.gains, m.goal_current) for m in motors]
    return DynamixelBus(port, servos, calibration, **options)


DYNAMIXEL = BusKind(bus=DynamixelBusSettings, motor=DynamixelMotorSettings, build=build_bus)
