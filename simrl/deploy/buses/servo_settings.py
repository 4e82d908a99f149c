"""What every serial servo family's part of ``deploy/<arm>.yaml`` shares: the port, LeRobot's calibration file, the servo ids.

A Feetech or Dynamixel arm's joint angles come from its calibration, not from
``offset`` / ``sign`` in the file: the servos count ticks from wherever their
magnets sat at assembly, so every arm needs its own calibration, and LeRobot
users have one already (``simrl.deploy.servo_calibration``). So
``bus.calibration`` names that JSON and a deploy without one is refused; the
servos' own stored Homing_Offset is not trusted instead, since it says nothing
about the range (the gripper's scale) or the direction, and a servo swapped in
from a spare bag would drive the arm wrongly without a word. The bus writes the
file's calibration to the servos on ``enable`` (only what differs), as LeRobot
does when it connects with a calibration file.

A family subclasses both models with its own ``kind``, port default, rate and
id range, and names its ``ServoFamily`` (``servos``): the homing sign, the
Homing_Offset register and who reverses a drive_mode 1 motor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np
import pydantic

from simrl.deploy.buses.settings import BusSettings, Impedance, MotorSettings
from simrl.errors import SimrlError, did_you_mean

if TYPE_CHECKING:
    from simrl.deploy.servo_calibration import MotorCalibration, ServoFamily
    from simrl.robots import Robot

LEROBOT_CALIBRATION = "~/.cache/huggingface/lerobot/calibration/robots/<robot>/<id>.json"  # LeRobot robot.py calibration_fpath


class ServoBusSettings(BusSettings):
    """The ``bus:`` block of a serial servo arm: its port and rate (the family's), its calibration file, its full-turn joints."""

    servos: ClassVar["ServoFamily"]

    port: str
    baud: int
    calibration: Path | None = pydantic.Field(None, description="LeRobot calibration JSON of this arm (required to deploy)")
    full_turn_motors: tuple[str, ...] = pydantic.Field(
        (), description="motors LeRobot's calibrate() gives 0..4095 instead of sweeping them (they turn all the way round)"
    )
    factory_calibrated: bool = pydantic.Field(
        False,
        description="the maker assembles every joint's zero at tick 2048, and LeRobot calibrates by writing homing 0 and "
        "0..4095 to every motor, with no pose and no sweep (a ROBOTIS OMX: omx_follower.py calibrate)",
    )

    @pydantic.model_validator(mode="after")
    def _one_way_to_calibrate(self) -> "ServoBusSettings":
        if self.factory_calibrated and self.full_turn_motors:
            raise ValueError(
                f"factory_calibrated = true and full_turn_motors = {list(self.full_turn_motors)}: a factory-calibrated arm "
                "gives every motor 0..4095; allowed: one of them"
            )
        return self

    @pydantic.field_validator("calibration")
    @classmethod
    def _expand_home(cls, path: Path | None) -> Path | None:
        return None if path is None else path.expanduser()

    def check_against_robot(self, file: Path, motors: Sequence[Any], robot: "Robot") -> None:
        """Full-turn motors must be motors; a calibration file named here must be readable, cover exactly these motors,
        give each its id and suit the servos (``check_calibration``)."""
        joints = [m.joint for m in motors]
        for i, name in enumerate(self.full_turn_motors):
            if name not in joints:
                raise SimrlError(
                    f"{file}: field 'bus.full_turn_motors.{i}' = '{name}' is not a motor{did_you_mean(name, joints, '; ')}; allowed: {', '.join(joints)}"
                )
        if self.calibration is not None:
            self.calibration_entries(file, motors, robot.name)

    def calibration_entries(self, file: Path, motors: Sequence[Any], robot: str) -> dict[str, "MotorCalibration"]:
        """The file's entry per motor joint, checked against the motors' ids; one-line errors naming ``file`` and the field."""
        from simrl.deploy.servo_calibration import load_calibration

        if self.calibration is None:
            raise SimrlError(
                f"{file}: field 'bus.calibration' is not set; a {self.servos.name} arm needs its calibration: pass LeRobot's file with "
                f"--calibration FILE ({LEROBOT_CALIBRATION}) or write one with `simrl calibrate --robot {robot}`"
            )
        where = f"{file}: field 'bus.calibration' = '{self.calibration}'"
        try:
            entries = load_calibration(self.calibration, [m.joint for m in motors], self.servos)
        except SimrlError as exc:
            raise SimrlError(f"{where}: {str(exc).removeprefix(f'{self.calibration}: ')}") from None
        for i, motor in enumerate(motors):
            if entries[motor.joint].id != motor.id:
                raise SimrlError(
                    f"{where}: motor '{motor.joint}' has id {entries[motor.joint].id} there but motors.{i}.id = {motor.id}; "
                    "allowed: the same id (is it another arm's file?)"
                )
        self.check_calibration(where, motors, entries)
        return entries

    def check_calibration(self, where: str, motors: Sequence[Any], entries: dict[str, "MotorCalibration"]) -> None:
        """The family's own checks of a calibration against the motors' settings (``where`` names file and field); none by default."""

    def joint_calibration(self, file: Path, motors: Sequence[Any], robot: "Robot") -> tuple[np.ndarray, np.ndarray]:
        """Gain and offset per motor from the calibration file (``joint_mapping``): LeRobot's zero and direction, the gripper's range."""
        from simrl.deploy.servo_calibration import joint_mapping

        return joint_mapping(self.calibration_entries(file, motors, robot.name), robot, self.servos, [m.joint for m in motors])


class ServoMotorSettings(MotorSettings):
    """One serial servo: its id (each family bounds it) and model. Its calibration is in the file ``bus.calibration`` names."""

    id: int
    model: str

    unique_fields = ("id",)

    @pydantic.model_validator(mode="after")
    def _calibrated_by_the_file(self) -> "ServoMotorSettings":
        if self.offset != 0.0 or self.sign != 1:
            raise ValueError(
                f"offset = {self.offset:g}, sign = {self.sign}: a servo arm's joint zero and direction come from its calibration "
                "file (bus.calibration); allowed: leave them out"
            )
        return self

    def impedance(self) -> Impedance:
        """None: the servo closes its own loop with the gains in its control table."""
        return Impedance.own_loop()
