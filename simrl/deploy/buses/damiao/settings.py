"""The Damiao part of ``deploy/<arm>.yaml``: a python-can channel in ``bus:``, CAN ids, model and MIT gains per motor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

import pydantic

from simrl.deploy.buses.damiao.protocol import DAMIAO_LIMITS, FD_DATA_BITRATES, MAX_STD_ID, DamiaoMotor
from simrl.deploy.buses.settings import BusKind, BusSettings, Impedance, MotorSettings

if TYPE_CHECKING:
    from simrl.deploy.buses.damiao.bus import DamiaoBus


# Interfaces that carry classic CAN frames only, whatever python-can is told: socketcand's protocol has no FD
# frames (linux-can/socketcand doc/protocol.md: `< send can_id can_dlc [data]* >`, at most 8 bytes; src/state_raw.c
# reads a struct can_frame from a raw socket without CAN_RAW_FD_FRAMES), and python-can's client drops the FD
# flags (can/interfaces/socketcand/socketcand.py, convert_can_message_to_ascii_message: "we cannot add CANFD_BRS
# (bitrate_switch) and CANFD_ESI" flags; convert_ascii_message_to_can_message builds every frame with is_fd False).
CLASSIC_ONLY_INTERFACES = ("socketcand",)


class DamiaoBusSettings(BusSettings):
    """``bus: {kind: damiao, ...}``: python-can settings of the CAN channel the motors are on.

    ``fd`` defaults to CAN FD at 1 Mbit/s nominal and 5 Mbit/s data because the
    arm's maker sets the OpenArm up that way (deploy/README.md, CAN FD); the
    motors' own baud register must say the same (``protocol.FD_DATA_BITRATES``).
    """

    kind: Literal["damiao"]
    interface: str = pydantic.Field("socketcan", description="python-can interface: socketcan, socketcand, virtual, ...")
    channel: str = "can0"
    bitrate: int | None = pydantic.Field(1_000_000, gt=0, description="nominal (arbitration) bit/s; SocketCAN takes it from `ip link`")
    fd: bool = pydantic.Field(True, validate_default=True, description="CAN FD frames (the maker's setup); false: classic CAN 2.0")
    data_bitrate: int = pydantic.Field(5_000_000, description="CAN FD data phase bit/s, used with fd: true; one of the motors' FD rates")
    host: str | None = pydantic.Field(None, description="socketcand server host")
    port: int | None = pydantic.Field(None, ge=1, le=65535, description="socketcand server port")

    @pydantic.field_validator("fd")
    @classmethod
    def _interface_carries_fd(cls, fd: bool, info: pydantic.ValidationInfo) -> bool:
        interface = info.data.get("interface")
        if fd and interface in CLASSIC_ONLY_INTERFACES:
            raise ValueError(
                f"interface {interface!r} carries classic CAN frames only (no FD flags, at most 8 data bytes); "
                "allowed with it: false (flag --no-fd), with the motors set to 1 Mbit/s classic CAN"
            )
        return fd

    @pydantic.field_validator("data_bitrate")
    @classmethod
    def _a_motor_fd_rate(cls, rate: int) -> int:
        if rate not in FD_DATA_BITRATES:
            raise ValueError(f"not a CAN FD data rate of Damiao motors; allowed: {', '.join(str(r) for r in FD_DATA_BITRATES)}")
        return rate

    def can_settings(self) -> dict[str, Any]:
        """Keyword arguments for ``DamiaoBus`` beyond the motors and timeouts (the data rate only on CAN FD)."""
        settings: dict[str, Any] = {"interface": self.interface, "channel": self.channel, "bitrate": self.bitrate, "fd": self.fd}
        if self.fd:
            settings["data_bitrate"] = self.data_bitrate
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
