"""The Feetech part of ``deploy/<arm>.yaml``: the serial port, LeRobot's calibration file and the servo gains in ``bus:``; ids per servo.

Calibration, ids and the refusal of ``offset`` / ``sign`` are every serial
servo family's (``buses/servo_settings.py``); here are the STS3215's own
facts: its homing convention and register (``FEETECH_SERVOS``), its rates, and
the position loop LeRobot configures. ``enable`` writes the file's offsets and
ranges to the servos (only what differs), as LeRobot does when it connects
with a calibration file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

import pydantic

from simrl.deploy.buses.feetech.protocol import BAUD_RATES, HOMING_OFFSET_LIMIT, MAX_ID, STS3215_MODEL, ticks_to_radians
from simrl.deploy.buses.servo_settings import ServoBusSettings, ServoMotorSettings
from simrl.deploy.buses.settings import BusKind
from simrl.deploy.servo_calibration import ServoFamily, load_calibration

if TYPE_CHECKING:
    from simrl.deploy.buses.feetech.bus import FeetechBus

MODELS = {"sts3215": STS3215_MODEL}  # model name -> the Model_Number a ping returns (LeRobot tables.py MODEL_NUMBER_TABLE)
# LeRobot feetech.py: Present_Position = Actual_Position - Homing_Offset, sign-magnitude bit 11; apply_drive_mode = True.
FEETECH_SERVOS = ServoFamily(
    name="Feetech", homing_sign=-1, homing_limit=HOMING_OFFSET_LIMIT, drive_mode_in_servo=False, ticks_to_radians=ticks_to_radians
)


class FeetechBusSettings(ServoBusSettings):
    """``bus: {kind: feetech, ...}``: the serial port, the arm's calibration file, and the position loop LeRobot configures."""

    servos = FEETECH_SERVOS

    kind: Literal["feetech"]
    port: str = pydantic.Field("/dev/ttyACM0", description="serial device of the bus adapter (the SO-101's Waveshare board enumerates as ttyACM)")
    baud: int = pydantic.Field(1_000_000, description="the servos' Baud_Rate; 1 Mbaud as shipped")
    p_coefficient: int = pydantic.Field(16, ge=0, le=255, description="P_Coefficient; LeRobot's SO-101 value (the MJCF servo's kp)")
    i_coefficient: int = pydantic.Field(0, ge=0, le=255, description="I_Coefficient; LeRobot's SO-101 value")
    d_coefficient: int = pydantic.Field(32, ge=0, le=255, description="D_Coefficient; LeRobot's SO-101 value (the MJCF servo's kv)")
    acceleration: int = pydantic.Field(254, ge=0, le=255, description="Acceleration and Maximum_Acceleration (1-byte registers); LeRobot's 254")

    @pydantic.field_validator("baud")
    @classmethod
    def _known_rate(cls, baud: int) -> int:
        if baud not in BAUD_RATES.values():
            raise ValueError(f"not a Feetech rate; allowed: {', '.join(str(r) for r in BAUD_RATES.values())}")
        return baud


class FeetechMotorSettings(ServoMotorSettings):
    """One Feetech servo: its id and model, and an optional torque cap."""

    known_models = MODELS

    kind: Literal["feetech"] = pydantic.Field(exclude=True)
    id: int = pydantic.Field(ge=1, le=MAX_ID, description="servo id (LeRobot SO-101: 1..6 from the base)")
    model: str = "sts3215"
    torque_limit: int | None = pydantic.Field(None, ge=0, le=1000, description="Torque_Limit per mille of the rated torque; none: all of it")


def build_bus(bus: FeetechBusSettings, motors: Sequence[FeetechMotorSettings], reply_timeout: float, **settings: Any) -> "FeetechBus":
    """The ``FeetechBus`` of a deploy file (``settings`` replace its own, e.g. an emulator's ``port``).

    The calibration file was checked with the config; it is read again here,
    so the bus writes what the joint calibration was computed from.
    scservo_sdk is imported here, when a Feetech bus is built.
    """
    from simrl.deploy.buses.feetech.bus import FeetechBus

    joints = [m.joint for m in motors]
    calibration = None if bus.calibration is None else load_calibration(bus.calibration, joints, FEETECH_SERVOS)
    options: dict[str, Any] = {
        "port": bus.port,
        "baud": bus.baud,
        "reply_timeout": reply_timeout,
        "setup_timeout": bus.setup_timeout_s,
        "retries": bus.retries,
        "p_coefficient": bus.p_coefficient,
        "i_coefficient": bus.i_coefficient,
        "d_coefficient": bus.d_coefficient,
        "acceleration": bus.acceleration,
        "torque_limits": {m.joint: m.torque_limit for m in motors if m.torque_limit is not None},
    }
    return FeetechBus(joints, [m.id for m in motors], calibration, **{**options, **settings})


FEETECH = BusKind(bus=FeetechBusSettings, motor=FeetechMotorSettings, build=build_bus)
