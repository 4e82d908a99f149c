"""What each motor family's part of ``deploy/<arm>.yaml`` gives the runtime: the ``bus:`` block and the motor entries.

Both are vendor specific (a CAN channel and ids for Damiao, a serial port and
servo ids for a Feetech or Dynamixel bus), so each family subclasses the two
models below in its own package (``buses/<vendor>/settings.py``) and declares a
``BusKind``; the registry (``simrl.deploy.buses.BUS_KINDS``) turns them into one
tagged union keyed on ``kind``, so the file is validated against its own
family's fields. The runtime (bridge, calibration, safety) reads only what is
declared here: the common motor fields, ``impedance()`` (the gains to command,
and the control law that says whether the motor runs them or its own loop),
and the bus block's two hooks, ``check_against_robot`` and
``joint_calibration`` (where a family's joint zero and direction come from: the
file's ``offset``/``sign`` unless the family says otherwise, as the serial servo
families do with LeRobot's calibration file).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Protocol, Sequence

import numpy as np
import pydantic

from simrl.config import StrictModel
from simrl.errors import did_you_mean

if TYPE_CHECKING:
    from simrl.deploy.buses.base import MotorBus
    from simrl.robots import Robot


class BusSettings(StrictModel):
    """The ``bus:`` block: which motor family (``kind``, narrowed to one ``Literal`` by each subclass) and how long to wait for it."""

    kind: str
    reply_timeout_s: float = pydantic.Field(0.008, gt=0, le=0.1, description="each exchange of a tick waits at most this for every reply")
    setup_timeout_s: float = pydantic.Field(0.05, gt=0, le=2.0, description="each try of enable / disable / configuration")
    retries: int = pydantic.Field(3, ge=0, le=20, description="further tries of a setup request")

    def check_against_robot(self, file: Path, motors: Sequence["MotorSettings"], robot: "Robot") -> None:
        """The family's own checks of deploy file ``file`` that need the robot or other files; none by default."""

    def joint_calibration(self, file: Path, motors: Sequence["MotorSettings"], robot: "Robot") -> tuple[np.ndarray, np.ndarray]:
        """``(gain, offset)`` per motor for ``joint = gain * (motor - offset)``: each entry's ``sign`` and ``offset`` by default.

        A family whose arms carry their calibration elsewhere overrides this;
        errors name ``file`` and the field.
        """
        return np.array([m.sign for m in motors], dtype=np.float64), np.array([m.offset for m in motors], dtype=np.float64)


# Which control law moves a motor, as the deploy log records it (``meta.control_law``) and the gap checker replays it:
# "impedance": the motor runs the commanded kp and kd (an MIT motor: Damiao); "servo": the motor closes its own position
# loop with gains in its control table and takes only the goal position (Feetech, Dynamixel), its effort the torque cap.
IMPEDANCE, SERVO = "impedance", "servo"
ControlLaw = Literal["impedance", "servo"]


@dataclass(frozen=True)
class Impedance:
    """The gains the bridge puts in every ``MotorCommand`` for one motor (joint space), the largest kd it takes,
    and whether the motor acts on them at all (``law``)."""

    kp: float  # N·m/rad
    kd: float  # N·m·s/rad
    kd_max: float  # the excitation's kd levels stay below this
    law: ControlLaw = IMPEDANCE

    @classmethod
    def own_loop(cls) -> "Impedance":
        """A position servo's: no gains commanded (0, 0), since its own loop runs with the gains in its control table."""
        return cls(kp=0.0, kd=0.0, kd_max=0.0, law=SERVO)


class MotorSettings(StrictModel):
    """One ``motors:`` entry: the joint it drives and its calibration (every family), plus the family's own fields.

    ``kind`` is the bus's: the deploy config copies ``bus.kind`` into each entry
    to pick the family's model, so a file never repeats it (and a dump leaves it out).
    """

    kind: str = pydantic.Field(exclude=True)
    joint: str
    offset: float = pydantic.Field(0.0, ge=-math.pi, le=math.pi, description="motor angle (rad) at the joint's zero")
    sign: Literal[1, -1] = 1

    # Fields that name one motor on the wire besides ``joint`` (Damiao: can_id): the config refuses repeats.
    unique_fields: ClassVar[tuple[str, ...]] = ()
    # The family's models by name, for a ``model`` field of its own: a name outside them is refused with the list.
    known_models: ClassVar[Mapping[str, Any]] = {}

    @pydantic.field_validator("model", check_fields=False)
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model not in cls.known_models:
            raise ValueError(f"unknown model{did_you_mean(model, cls.known_models)}; allowed: {', '.join(cls.known_models)}")
        return model

    @abc.abstractmethod  # pydantic's model metaclass is an ABCMeta: a family that forgets it cannot be instantiated
    def impedance(self) -> Impedance:
        """The gains commanded to this motor. A position servo closes its own loop and ignores them: ``Impedance.own_loop()``."""


class BusBuilder(Protocol):
    """Builds a family's bus, unopened, from its ``bus`` block and its motor entries (bus order)."""

    def __call__(self, bus: Any, motors: Sequence[Any], reply_timeout: float, **settings: Any) -> "MotorBus":
        """``reply_timeout``: the run's per-exchange timeout (s); ``settings`` replace the file's (tests, the emulator's channel)."""


@dataclass(frozen=True)
class BusKind:
    """One motor family as the registry knows it: its two settings models and how to build its bus from them."""

    bus: type[BusSettings]
    motor: type[MotorSettings]
    build: BusBuilder
