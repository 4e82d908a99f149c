"""The Feetech part of ``deploy/<arm>.yaml``: the serial port, LeRobot's calibration file and the servo gains in ``bus:``; ids per servo.

A Feetech arm's joint angles come from its calibration, not from ``offset`` /
``sign`` in the file: the servos count ticks from wherever their magnets sat
at assembly, so every SO-101 needs its own calibration, and LeRobot users have
one already (``simrl.deploy.servo_calibration``). So ``bus.calibration`` names
that JSON and a deploy without one is refused; the servos' own stored
Homing_Offset is not trusted instead, since it says nothing about the range
(the gripper's scale) or the direction, and a servo swapped in from a spare
bag would drive the arm wrongly without a word. ``enable`` writes the file's
offsets and ranges to the servos (only what differs), as LeRobot does when it
connects with a calibration file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
import pydantic

from simrl.deploy.buses.feetech.protocol import BAUD_RATES, MAX_ID, STS3215_MODEL
from simrl.deploy.buses.settings import BusKind, BusSettings, Impedance, MotorSettings
from simrl.errors import SimrlError

if TYPE_CHECKING:
    from simrl.deploy.buses.feetech.bus import FeetechBus
    from simrl.deploy.servo_calibration import MotorCalibration
    from simrl.robots import Robot

MODELS = {"sts3215": STS3215_MODEL}  # model name -> the Model_Number a ping returns (LeRobot tables.py MODEL_NUMBER_TABLE)
LEROBOT_CALIBRATION = "~/.cache/huggingface/lerobot/calibration/robots/so_follower/<id>.json"  # where LeRobot saves it (ROBOTS.md)


class FeetechBusSettings(BusSettings):
    """``bus: {kind: feetech, ...}``: the serial port, the arm's calibration file, and the position loop LeRobot configures."""

    kind: Literal["feetech"]
    port: str = pydantic.Field("/dev/ttyACM0", description="serial device of the bus adapter (the SO-101's Waveshare board enumerates as ttyACM)")
    baud: int = pydantic.Field(1_000_000, description="the servos' Baud_Rate; 1 Mbaud as shipped")
    calibration: Path | None = pydantic.Field(None, description="LeRobot calibration JSON of this arm (required to deploy)")
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

    @pydantic.field_validator("calibration")
    @classmethod
    def _expand_home(cls, path: Path | None) -> Path | None:
        return None if path is None else path.expanduser()

    def check_against_robot(self, file: Path, motors: Sequence[Any], robot: "Robot") -> None:
        """A calibration file named here must be readable, cover exactly these motors, and give each its id."""
        if self.calibration is not None:
            self.calibration_entries(file, motors, robot.name)

    def calibration_entries(self, file: Path, motors: Sequence["FeetechMotorSettings"], robot: str) -> dict[str, "MotorCalibration"]:
        """The file's entry per motor joint, checked against the motors' ids; one-line errors naming ``file`` and the field."""
        from simrl.deploy.servo_calibration import load_calibration

        if self.calibration is None:
            raise SimrlError(
                f"{file}: field 'bus.calibration' is not set; a Feetech arm needs its calibration: pass LeRobot's file with "
                f"--calibration FILE ({LEROBOT_CALIBRATION}) or write one with `simrl calibrate --robot {robot}`"
            )
        where = f"{file}: field 'bus.calibration' = '{self.calibration}'"
        try:
            entries = load_calibration(self.calibration, [m.joint for m in motors])
        except SimrlError as exc:
            raise SimrlError(f"{where}: {str(exc).removeprefix(f'{self.calibration}: ')}") from None
        for i, motor in enumerate(motors):
            if entries[motor.joint].id != motor.id:
                raise SimrlError(
                    f"{where}: motor '{motor.joint}' has id {entries[motor.joint].id} there but motors.{i}.id = {motor.id}; "
                    "allowed: the same id (is it another arm's file?)"
                )
        return entries

    def joint_calibration(self, file: Path, motors: Sequence[Any], robot: "Robot") -> tuple[np.ndarray, np.ndarray]:
        """Gain and offset per motor from the calibration file (``joint_mapping``): LeRobot's zero and direction, the gripper's range."""
        from simrl.deploy.servo_calibration import joint_mapping

        return joint_mapping(self.calibration_entries(file, motors, robot.name), robot, [m.joint for m in motors])


class FeetechMotorSettings(MotorSettings):
    """One Feetech servo: its id and model, and an optional torque cap. Its calibration is in the file ``bus.calibration`` names."""

    kind: Literal["feetech"] = pydantic.Field(exclude=True)
    id: int = pydantic.Field(ge=1, le=MAX_ID, description="servo id (LeRobot SO-101: 1..6 from the base)")
    model: str = "sts3215"
    torque_limit: int | None = pydantic.Field(None, ge=0, le=1000, description="Torque_Limit per mille of the rated torque; none: all of it")

    unique_fields = ("id",)
    known_models = MODELS

    @pydantic.model_validator(mode="after")
    def _calibrated_by_the_file(self) -> "FeetechMotorSettings":
        if self.offset != 0.0 or self.sign != 1:
            raise ValueError(
                f"offset = {self.offset:g}, sign = {self.sign}: a Feetech arm's joint zero and direction come from its calibration "
                "file (bus.calibration); allowed: leave them out"
            )
        return self

    def impedance(self) -> Impedance:
        """None: the servo closes its own loop with P/D from ``bus:``."""
        return Impedance.own_loop()


def build_bus(bus: FeetechBusSettings, motors: Sequence[FeetechMotorSettings], reply_timeout: float, **settings: Any) -> "FeetechBus":
    """The ``FeetechBus`` of a deploy file (``settings`` replace its own, e.g. an emulator's ``port``).

    The calibration file was checked with the config; it is read again here,
    so the bus writes what the joint calibration was computed from.
    scservo_sdk is imported here, when a Feetech bus is built.
    """
    from simrl.deploy.buses.feetech.bus import FeetechBus
    from simrl.deploy.servo_calibration import load_calibration

    joints = [m.joint for m in motors]
    calibration = None if bus.calibration is None else load_calibration(bus.calibration, joints)
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
