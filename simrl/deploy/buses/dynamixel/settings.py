"""The Dynamixel part of ``deploy/<arm>.yaml``: the serial port, rate and operating mode in ``bus:``; id and model per servo.

Joint calibration stays the file's ``offset`` / ``sign`` (motor angle 0 at
tick 2048, the horn's centre mark), as for any family that does not carry its
own: a Dynamixel arm's calibration file is the next issue's, with its arm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

import pydantic

from simrl.deploy.buses.dynamixel.protocol import MAX_ID, MODELS
from simrl.deploy.buses.settings import BusKind, BusSettings, Impedance, MotorSettings

if TYPE_CHECKING:
    from simrl.deploy.buses.dynamixel.bus import DynamixelBus


class DynamixelBusSettings(BusSettings):
    """``bus: {kind: dynamixel, ...}``: the serial port, its rate, and the servos' operating mode."""

    kind: Literal["dynamixel"]
    port: str = pydantic.Field("/dev/ttyUSB0", description="serial device (a ROBOTIS U2D2 is an FTDI adapter: ttyUSB)")
    baud: int = pydantic.Field(1_000_000, gt=0, description="the servos' Baud Rate; every model listed runs at 1 Mbaud")
    mode: Literal["position", "current_position"] = pydantic.Field(
        "position", description="position (3), or current-based position (5) where the model senses current"
    )


class DynamixelMotorSettings(MotorSettings):
    """One Dynamixel X-series servo: its id and model."""

    kind: Literal["dynamixel"] = pydantic.Field(exclude=True)
    id: int = pydantic.Field(ge=0, le=MAX_ID)
    model: str

    unique_fields = ("id",)
    known_models = MODELS

    def impedance(self) -> Impedance:
        """None: the servo closes its own loop with the gains in its control table."""
        return Impedance.own_loop()


def build_bus(bus: DynamixelBusSettings, motors: Sequence[DynamixelMotorSettings], reply_timeout: float, **settings: Any) -> "DynamixelBus":
    """The ``DynamixelBus`` of a deploy file (``settings`` replace its own, e.g. an emulator's ``port``); dynamixel_sdk is imported here."""
    from simrl.deploy.buses.dynamixel.bus import DynamixelBus, DynamixelMotor

    options: dict[str, Any] = {"port": bus.port, "baud": bus.baud, "mode": bus.mode, "reply_timeout": reply_timeout, "retries": bus.retries}
    options.update(settings)
    port = options.pop("port")
    return DynamixelBus(port, [DynamixelMotor(m.joint, m.id, m.model) for m in motors], **options)


DYNAMIXEL = BusKind(bus=DynamixelBusSettings, motor=DynamixelMotorSettings, build=build_bus)
