"""The Damiao part of ``deploy/<arm>.yaml``: a python-can channel in ``bus:``, CAN ids, model and MIT gains per motor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

import pydantic

from simrl.deploy.buses.damiao.protocol import DAMIAO_LIMITS, MAX_STD_ID, DamiaoMotor
from simrl.deploy.buses.settings import BusKind, BusSettings, Impedance, MotorSettings

if TYPE_CHECKING:
    from simrl.deploy.buses.damiao.bus import DamiaoBus


class DamiaoBusSettings(BusSettings):
    """``bus: {kind: damiao, ...}``: python-can settings of the CAN channel the motors are on."""

    kind: Literal["damiao"]
    interface: str = pydantic.Field("socketcan", description="python-can interface: socketcan, socketcand, virtual, ...")
    channel: str = "can0"
    bitrate: int | None = pydantic.Field(1_000_000, gt=0)
    host: str | None = pydantic.Field(None, description="socketcand server host")
    port: int | None = pydantic.Field(None, ge=1, le=65535, description="socketcand server port")

    def can_settings(self) -> dict[str, Any]:
        """Keyword arguments for ``DamiaoBus`` beyond the motors and timeouts."""
        settings: dict[str, Any] = {"interface": self.interface, "channel": self.channel, "bitrate": self.bitrate}
        if self.host is not None:
            settings["host"] = self.host
        if self.port is not None:
            settings["port"] = self.port
        return settings


class DamiaoMotorSettings(MotorSettings):
    """One Damiao motor: the id it listens on, the id it answers on, its model, and its MIT gains."""

    kind: Literal["damiao"] = pydantic.Field(exclude=True)
    can_id: int = pydantic.Field(ge=1, le=MAX_STD_ID)
    master_id: int = pydantic.Field(ge=0, le=MAX_STD_ID)
    model: str
    kp: float = pydantic.Field(ge=0, le=500, description="N·m/rad (Damiao MIT range 0..500)")
    kd: float = pydantic.Field(ge=0, le=5, description="N·m·s/rad (Damiao MIT range 0..5)")

    unique_fields = ("can_id",)
    known_models = DAMIAO_LIMITS

    def impedance(self) -> Impedance:
        """The MIT gains of the file; kd up to the model's MIT kd range."""
        return Impedance(kp=self.kp, kd=self.kd, kd_max=DAMIAO_LIMITS[self.model].kd_max)


def damiao_motors(motors: Sequence[DamiaoMotorSettings]) -> list[DamiaoMotor]:
    """The motor entries as the Damiao bus and emulator name them: by the joint each drives."""
    return [DamiaoMotor(m.joint, m.can_id, m.master_id, m.model) for m in motors]


def build_bus(bus: DamiaoBusSettings, motors: Sequence[DamiaoMotorSettings], reply_timeout: float, **settings: Any) -> "DamiaoBus":
    """The ``DamiaoBus`` of a deploy file (``settings`` replace its python-can ones, e.g. an emulator's channel).

    python-can is imported here, when a Damiao bus is built, not when a deploy
    file of any family is read.
    """
    from simrl.deploy.buses.damiao.bus import DamiaoBus

    return DamiaoBus(
        damiao_motors(motors),
        **{**bus.can_settings(), **settings},
        reply_timeout=reply_timeout,
        setup_timeout=bus.setup_timeout_s,
        retries=bus.retries,
    )


DAMIAO = BusKind(bus=DamiaoBusSettings, motor=DamiaoMotorSettings, build=build_bus)
