"""Motor buses, one package per motor family (``damiao/``, ``feetech/``, ``dynamixel/``: protocol codecs, bus, settings), and the registry that picks one.

``BUS_KINDS`` maps each ``bus.kind`` of ``deploy/<arm>.yaml`` to its family's
``BusKind`` (settings models and builder): the deploy config validates the file
against them, and ``make_bus`` builds the family's ``MotorBus``. Adding a motor
family is one package and one entry here.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from simrl.deploy.buses.damiao.settings import DAMIAO
from simrl.deploy.buses.dynamixel.settings import DYNAMIXEL
from simrl.deploy.buses.feetech.settings import FEETECH
from simrl.deploy.buses.settings import BusKind

if TYPE_CHECKING:
    from simrl.deploy.buses.base import MotorBus
    from simrl.deploy.config import DeployConfig

BUS_KINDS: Mapping[str, BusKind] = MappingProxyType({"damiao": DAMIAO, "feetech": FEETECH, "dynamixel": DYNAMIXEL})


def make_bus(config: DeployConfig, **settings: Any) -> MotorBus:
    """The unopened bus of ``config``'s family (``settings`` replace the file's, e.g. an emulator's channel)."""
    return BUS_KINDS[config.bus.kind].build(config.bus, config.motors, config.reply_timeout, **settings)
