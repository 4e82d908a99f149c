"""One motor family's emulated motors on their wire, and the registry that picks them by ``bus.kind``.

An ``EmulatedArm`` is the same for every family (a ``RealityPlant`` kept level
with the wall clock); what differs is the firmware that answers the bus and
the transport it answers on: Damiao motors on a virtual CAN channel (a
socketcand server for another process), Feetech or Dynamixel servos on a
paced pseudo-terminal. Each family has one ``WireBuilder`` in
``EMULATED_WIRES``; the runtime asks the wire for the deploy settings that
reach it and never names a vendor. Adding a family's emulation is one module
and one entry here.

An entry also says where ``simrl deploy --emulate`` runs the arm: serial servos
in a process of their own (``simrl emulate``, reached through its pty), as
real servos answer from their own hardware: in the loop's process, their
pacing threads competed with the loop for the interpreter and the two cores
(measured on the shared 2-core machine, 5 goals at 50 Hz, 3 runs each: in the
loop's process 0, 1 and 1 overruns with 0-6 late replies, in another process
none). Damiao motors stay on an in-process virtual CAN channel: reaching them
from another process adds a TCP relay, and in-process they kept the loop's
jitter p99 at 8 µs (experiments/results/deploy_openarm.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ContextManager, Mapping, Protocol

from simrl.errors import SimrlError

if TYPE_CHECKING:
    from simrl.deploy.config import DeployConfig
    from simrl.deploy.emulation.reality import RealityPlant
    from simrl.robots import Robot


@dataclass(frozen=True)
class Endpoint:
    """Where another process reaches an emulated arm: what to print, and the deploy settings that point a bus at it."""

    where: dict[str, Any]  # e.g. {"port": "/dev/pts/5"} or {"host": ..., "port": ...}; printed as JSON by ``simrl emulate --json``
    overrides: dict[str, Any]  # dotted deploy config keys, each a `simrl deploy` flag of the same name: {"bus.port": "/dev/pts/5", ...}

    @property
    def deploy_flags(self) -> list[str]:
        """The ``simrl deploy`` flags for ``overrides``: ``["--port", "/dev/pts/5", "--calibration", FILE]``; a switch is ``--fd`` / ``--no-fd``."""
        flags: list[str] = []
        for key, value in self.overrides.items():
            name = key.removeprefix("bus.")
            flags += [f"--{name}" if value else f"--no-{name}"] if isinstance(value, bool) else [f"--{name}", str(value)]
        return flags


class EmulatedWire(Protocol):
    """A family's firmware serving a plant on its transport."""

    def start(self) -> None:
        """Start answering (the plant's clock is the caller's)."""

    def stop(self) -> None:
        """Stop answering and release the transport and anything written for it; safe to call twice."""

    def overrides(self) -> dict[str, Any]:
        """Deploy config keys (dotted, as flags give them) that point a bus built in this process at these motors."""

    def serving(self, host: str | None, port: int | None) -> ContextManager[Endpoint]:
        """Reachable from another process while the block runs (``host``/``port``: a network transport's address, else None)."""


class WireBuilder(Protocol):
    def __call__(self, plant: "RealityPlant", config: "DeployConfig", robot: "Robot", seed: int) -> EmulatedWire:
        """The motors of ``config`` (ids, models, order) on ``plant``; ``seed`` draws what the family leaves to chance
        (a servo arm's encoder zeros). Refuses, in one line, a config the emulated motors cannot honour."""


class RatedTorques(Protocol):
    def __call__(self, config: "DeployConfig", robot: "Robot") -> list[float]:
        """The rated torque (N·m) of each motor of ``config``, in its order: what the firmware's torque caps are shares of."""


@dataclass(frozen=True)
class EmulationKind:
    """One motor family's emulation: how to build its wire, whether ``--emulate`` serves it from a process of its own,
    and, where its firmware caps torque as a share of its own motor's (a servo's stall torque, not the MJCF actuator's
    range, which may hold a current limit the firmware sets), the motors' rated torques; None: the MJCF force ranges."""

    build: WireBuilder
    own_process: bool
    rated: RatedTorques | None = None


def _damiao(plant: "RealityPlant", config: "DeployConfig", robot: "Robot", seed: int) -> EmulatedWire:
    from simrl.deploy.emulation.can_wire import damiao_wire

    return damiao_wire(plant, config, robot, seed)


def _feetech(plant: "RealityPlant", config: "DeployConfig", robot: "Robot", seed: int) -> EmulatedWire:
    from simrl.deploy.emulation.serial_wire import feetech_wire

    return feetech_wire(plant, config, robot, seed)


def _dynamixel(plant: "RealityPlant", config: "DeployConfig", robot: "Robot", seed: int) -> EmulatedWire:
    from simrl.deploy.emulation.serial_wire import dynamixel_wire

    return dynamixel_wire(plant, config, robot, seed)


def _dynamixel_rated(config: "DeployConfig", robot: "Robot") -> list[float]:
    from simrl.deploy.emulation.dynamixel_firmware import rated_torques

    return rated_torques([m.model for m in config.motors])


# The firmware modules are imported when a family's arm is built (python-can only for Damiao).
EMULATED_WIRES: Mapping[str, EmulationKind] = MappingProxyType(
    {
        "damiao": EmulationKind(_damiao, own_process=False),
        "feetech": EmulationKind(_feetech, own_process=True),
        "dynamixel": EmulationKind(_dynamixel, own_process=True, rated=_dynamixel_rated),
    }
)


def no_endpoint(host: str | None, port: int | None, transport: str) -> None:
    """A transport other processes reach without a server refuses a server address instead of ignoring it."""
    given = [f"{name} = {value!r}" for name, value in (("host", host), ("port", port)) if value is not None]
    if given:
        raise SimrlError(f"{', '.join(given)}: the emulated bus is a {transport}, reachable from any process as it is; allowed: no host or port")
