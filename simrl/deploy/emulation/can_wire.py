"""Damiao motors on a python-can virtual channel of their own; a socketcand server carries it to another process.

This machine has no vcan/AF_CAN: a ``DamiaoBus`` in the same process opens
the virtual channel (``interface: virtual``), one in another process reaches
it through ``SocketcandServer`` as it would a remote CAN adapter.

The motors speak the config's CAN mode (``bus.fd``): a deploy file describes
the arm, whose motors were set to that mode. socketcand carries classic frames
only, so motors set to CAN FD are not served through it (refused in one line).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Iterator

import can

from simrl.deploy.buses.damiao.settings import damiao_motors
from simrl.deploy.config import DeployConfig
from simrl.deploy.emulation.damiao_firmware import DamiaoEmulator
from simrl.deploy.emulation.plant import MotorPlant
from simrl.deploy.emulation.socketcand import SocketcandServer
from simrl.deploy.emulation.wire import Endpoint
from simrl.errors import SimrlError
from simrl.robots import Robot

SOCKETCAND_BUS = "can0"  # the bus name the server announces; python-can's socketcand client asks for it by this name


class DamiaoWire:
    """``DamiaoEmulator`` for the motors of a deploy config, on a virtual channel named ``channel``."""

    def __init__(self, plant: MotorPlant, config: DeployConfig) -> None:
        self._plant = plant
        self._config = config
        self._motors = damiao_motors(config.motors)
        self.channel = f"simrl-emulator-{uuid.uuid4().hex[:12]}"
        self._wire: can.BusABC | None = None
        self._emulator: DamiaoEmulator | None = None

    def start(self) -> None:
        fd = self._config.bus.fd
        self._wire = can.Bus(interface="virtual", channel=self.channel, protocol=can.CanProtocol.CAN_FD if fd else can.CanProtocol.CAN_20)
        self._emulator = DamiaoEmulator(self._plant, self._motors, self._wire, fd=fd).start()

    def stop(self) -> None:
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        if self._wire is not None:
            self._wire.shutdown()
            self._wire = None

    def overrides(self) -> dict[str, Any]:
        return {"bus.interface": "virtual", "bus.channel": self.channel}

    @contextlib.contextmanager
    def serving(self, host: str | None, port: int | None) -> Iterator[Endpoint]:
        """A socketcand server on ``host``:``port`` (default 127.0.0.1, any free port) relaying the channel; classic CAN only."""
        if self._config.bus.fd:
            raise SimrlError(
                f"{self._config.file}: field 'bus.fd' = True: simrl emulate serves a CAN arm through socketcand, which carries "
                "classic CAN frames only; allowed: false, the motors set to 1 Mbit/s classic CAN (flag --no-fd)"
            )
        host = host or "127.0.0.1"
        with SocketcandServer(self.channel, host=host, port=port or 0, bus_name=SOCKETCAND_BUS) as server:
            overrides = {"bus.interface": "socketcand", "bus.host": host, "bus.port": server.port, "bus.channel": SOCKETCAND_BUS, "bus.fd": False}
            yield Endpoint(where={"host": host, "port": server.port, "channel": SOCKETCAND_BUS}, overrides=overrides)


def damiao_wire(plant: MotorPlant, config: DeployConfig, robot: Robot, seed: int) -> DamiaoWire:
    """The emulated Damiao motors of ``config``. Their encoders read joint angles, so the config's calibration must be
    the identity (offsets 0, signs +1, as ``deploy/openarm.yaml`` ships); any other is refused rather than silently mis-mapped."""
    calibrated = [m.joint for m in config.motors if m.offset != 0.0 or m.sign != 1]
    if calibrated:
        raise SimrlError(
            f"the emulated motors read joint angles directly, but the deploy config calibrates {', '.join(calibrated)}; "
            "allowed with --emulate: offset 0 and sign 1 for every motor"
        )
    return DamiaoWire(plant, config)
