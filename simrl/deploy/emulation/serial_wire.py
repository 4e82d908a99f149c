"""Serial servos (Feetech, Dynamixel) on a paced pseudo-terminal, and what the emulated SO-101 was assembled with.

A pty is reachable from any process by its path, so the same ``SerialWire``
serves a bus in this process and ``simrl emulate`` alike: the deploy settings
that reach it are the port (and, for an arm that needs one, the calibration
file the wire wrote).

An emulated Feetech arm is not calibrated at the factory, like a real one:
each servo's encoder reads some tick at the model's joint zero (its magnet
sat wherever it did at assembly; ``FeetechFirmware(encoder_zero=...)``), its
Homing_Offset is 0, and only a calibration maps ticks onto joint angles. The
wire writes the LeRobot calibration file a user would record on this arm
(``assembly_calibration``), so a deploy runs through the same calibration path
as on hardware, and a wrong tick convention anywhere shows up as a wrong pose.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from simrl.deploy.buses.feetech.protocol import BAUD_RATES, RAD_PER_TICK
from simrl.deploy.config import DeployConfig
from simrl.deploy.emulation.dynamixel_firmware import DynamixelFirmware
from simrl.deploy.emulation.feetech_firmware import POWER_ON, FeetechFirmware
from simrl.deploy.emulation.plant import MotorPlant
from simrl.deploy.emulation.serial_link import PtySerialLink, SerialFirmware
from simrl.deploy.emulation.wire import Endpoint, no_endpoint
from simrl.deploy.servo_calibration import FULL_TURN_JOINTS, HALF_TURN, MAX_TICK, MotorCalibration, save_calibration
from simrl.errors import SimrlError
from simrl.robots import Robot

ASSEMBLY_STREAM = 0x5E7  # the encoder zeros are drawn from entropy [seed, ASSEMBLY_STREAM]: apart from the reality's draws
CALIBRATION_FILE = "calibration.json"


class SerialWire:
    """``firmware`` served on a new pty (``link``); ``calibration``, if any, written for the deploy to read while it runs."""

    def __init__(self, firmware: SerialFirmware, calibration: Mapping[str, MotorCalibration] | None = None) -> None:
        self.firmware = firmware
        self._calibration = calibration
        self.link: PtySerialLink | None = None
        self._folder: Path | None = None

    @property
    def calibration_path(self) -> Path | None:
        return None if self._folder is None or self._calibration is None else self._folder / CALIBRATION_FILE

    def start(self) -> None:
        if self._calibration is not None:
            self._folder = Path(tempfile.mkdtemp(prefix="simrl-emulated-arm-"))
            save_calibration(self._folder / CALIBRATION_FILE, self._calibration)
        self.link = PtySerialLink(self.firmware).start()

    def stop(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def overrides(self) -> dict[str, Any]:
        if self.link is None:
            raise SimrlError("the emulated serial bus is not started; start it before building a bus for it")
        settings: dict[str, Any] = {"bus.port": self.link.port}
        if self.calibration_path is not None:
            settings["bus.calibration"] = str(self.calibration_path)
        return settings

    @contextlib.contextmanager
    def serving(self, host: str | None, port: int | None) -> Iterator[Endpoint]:
        """The pty itself: ``simrl deploy --port PTY`` (and ``--calibration FILE``) from any process."""
        no_endpoint(host, port, "pseudo-terminal")
        overrides = self.overrides()
        yield Endpoint(where={key.removeprefix("bus."): value for key, value in overrides.items()}, overrides=overrides)


def assembly_zeros(seed: int, count: int) -> list[int]:
    """Each servo's encoder tick at the model's joint zero, as assembly left it: uniform over the ticks a
    Homing_Offset can centre (0..4094: |tick - 2047| <= 2047)."""
    return np.random.default_rng([seed, ASSEMBLY_STREAM]).integers(0, MAX_TICK, size=count).tolist()


def assembly_calibration(robot: Robot, joints: Sequence[str], ids: Sequence[int], zeros: Sequence[int]) -> dict[str, MotorCalibration]:
    """The LeRobot calibration a user would record on an arm whose servo ``i`` reads ``zeros[i]`` at joint zero.

    Posed at the model's zero (the middle of each arm joint's travel,
    ``servo_calibration``), every servo reads its zero tick, so LeRobot's
    half-turn homing writes ``zero - 2047`` and the pose then reads 2047. The
    sweep records each joint's travel, its MJCF range, as 2047 + angle / tick;
    ``wrist_roll`` gets 0..4095 as LeRobot gives it.
    """
    calibration = {}
    for joint, servo_id, zero in zip(joints, ids, zeros):
        if joint in FULL_TURN_JOINTS:
            low, high = 0, MAX_TICK
        else:
            ends = robot.model.jnt_range[robot.model.joint(joint).id]
            low, high = (HALF_TURN + int(round(float(angle) / RAD_PER_TICK)) for angle in ends)
        calibration[joint] = MotorCalibration(id=servo_id, drive_mode=0, homing_offset=zero - HALF_TURN, range_min=low, range_max=high)
    return calibration


def feetech_wire(plant: MotorPlant, config: DeployConfig, robot: Robot, seed: int) -> SerialWire:
    """STS3215 servos with the config's ids on ``plant``, assembled with encoder zeros drawn from ``seed``, and their calibration file."""
    shipped = BAUD_RATES[POWER_ON["Baud_Rate"]]
    if config.bus.baud != shipped:
        raise SimrlError(f"{config.file}: field 'bus.baud' = {config.bus.baud}: the emulated servos run at {shipped} baud as shipped; allowed with --emulate: {shipped}")
    joints, ids = [m.joint for m in config.motors], [m.id for m in config.motors]
    zeros = assembly_zeros(seed, len(ids))
    firmware = FeetechFirmware(plant, ids, encoder_zero=zeros)
    return SerialWire(firmware, assembly_calibration(robot, joints, ids, zeros))


def dynamixel_wire(plant: MotorPlant, config: DeployConfig, robot: Robot, seed: int) -> SerialWire:
    """Dynamixel servos with the config's ids and models on ``plant``. Their encoders read tick 2048 at joint zero,
    so the config's calibration must be the identity (offsets 0, signs +1)."""
    calibrated = [m.joint for m in config.motors if m.offset != 0.0 or m.sign != 1]
    if calibrated:
        raise SimrlError(
            f"the emulated Dynamixel servos read tick 2048 at joint zero, but {config.file} calibrates {', '.join(calibrated)}; "
            "allowed with --emulate: offset 0 and sign 1 for every motor"
        )
    return SerialWire(DynamixelFirmware(plant, [(m.id, m.model) for m in config.motors], baud=config.bus.baud))
