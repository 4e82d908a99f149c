"""Serial servos (Feetech, Dynamixel) on a paced pseudo-terminal, and what the emulated arm was assembled with.

A pty is reachable from any process by its path, so the same ``SerialWire``
serves a bus in this process and ``simrl emulate`` alike: the deploy settings
that reach it are the port and the calibration file the wire wrote.

An emulated servo arm is not calibrated at the factory, like a real SO-101 or
Koch: each servo's encoder reads some tick at the model's joint zero (its
magnet sat wherever it did at assembly; the firmwares' ``encoder_zero``), its
Homing_Offset is 0, and only a calibration maps ticks onto joint angles. The
wire writes the LeRobot calibration file a user would record on this arm
(``assembly_calibration``), so a deploy runs through the same calibration path
as on hardware, and a wrong tick convention anywhere shows up as a wrong pose.
An arm its maker calibrates (``bus.factory_calibrated``: the OMX, assembled by
ROBOTIS with every joint's zero at tick 2048) comes so, with LeRobot's factory
file.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from simrl.deploy.buses.dynamixel.settings import DYNAMIXEL_SERVOS
from simrl.deploy.buses.feetech.protocol import BAUD_RATES
from simrl.deploy.buses.feetech.settings import FEETECH_SERVOS
from simrl.deploy.config import DeployConfig
from simrl.deploy.emulation.dynamixel_firmware import DynamixelFirmware
from simrl.deploy.emulation.feetech_firmware import POWER_ON, FeetechFirmware
from simrl.deploy.emulation.plant import MotorPlant
from simrl.deploy.emulation.serial_link import PtySerialLink, SerialFirmware
from simrl.deploy.emulation.wire import Endpoint, no_endpoint
from simrl.deploy.servo_calibration import HALF_TURN, MAX_TICK, TICKS_PER_TURN, MotorCalibration, ServoFamily, save_calibration
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


def assembly_zeros(seed: int, windows: Sequence[tuple[int, int]], config: DeployConfig) -> list[int]:
    """Each servo's encoder tick at the model's joint zero, as assembly left it: uniform over ``windows[i]`` (inclusive),
    or half a turn (2048) on every servo of a factory-calibrated arm, whose maker assembles it there."""
    if config.bus.factory_calibrated:
        return [TICKS_PER_TURN // 2] * len(windows)
    rng = np.random.default_rng([seed, ASSEMBLY_STREAM])
    return [int(rng.integers(low, high, endpoint=True)) for low, high in windows]


def assembly_calibration(
    robot: Robot, config: DeployConfig, zeros: Sequence[int], servos: ServoFamily
) -> dict[str, MotorCalibration]:
    """The LeRobot calibration a user would record on an arm of ``servos`` whose servo ``i`` reads ``zeros[i]`` at joint zero.

    Posed at the model's zero (the middle of each arm joint's travel,
    ``servo_calibration``), every servo reads its zero tick, so LeRobot's
    half-turn homing makes the pose read 2047. The sweep records each joint's
    travel, its MJCF range, as 2047 + angle / tick; the config's full-turn
    motors get 0..4095 as LeRobot gives them. A factory-calibrated arm gets
    LeRobot's factory file: homing 0 and 0..4095 everywhere.
    """
    if config.bus.factory_calibrated:
        return {m.joint: MotorCalibration(id=m.id, drive_mode=0, homing_offset=0, range_min=0, range_max=MAX_TICK) for m in config.motors}
    calibration = {}
    for motor, zero in zip(config.motors, zeros):
        if motor.joint in config.bus.full_turn_motors:
            low, high = 0, MAX_TICK
        else:
            ends = robot.model.jnt_range[robot.model.joint(motor.joint).id]
            low, high = (HALF_TURN + int(round(float(angle) * TICKS_PER_TURN / (2 * math.pi))) for angle in ends)
        homing = servos.homing_offset(zero, HALF_TURN)
        calibration[motor.joint] = MotorCalibration(id=motor.id, drive_mode=0, homing_offset=homing, range_min=low, range_max=high)
    return calibration


def feetech_wire(plant: MotorPlant, config: DeployConfig, robot: Robot, seed: int) -> SerialWire:
    """STS3215 servos with the config's ids on ``plant``, assembled with encoder zeros drawn from ``seed``, and their calibration file.

    Any zero 0..4094 can be homed (|zero - 2047| <= 2047, the register's reach); the servo's frame wraps at
    the homed half turn, so the arm's pose at power-on does not matter.
    """
    shipped = BAUD_RATES[POWER_ON["Baud_Rate"]]
    if config.bus.baud != shipped:
        raise SimrlError(f"{config.file}: field 'bus.baud' = {config.bus.baud}: the emulated servos run at {shipped} baud as shipped; allowed with --emulate: {shipped}")
    zeros = assembly_zeros(seed, [(0, MAX_TICK - 1)] * len(config.motors), config)
    firmware = FeetechFirmware(plant, [m.id for m in config.motors], encoder_zero=zeros)
    return SerialWire(firmware, assembly_calibration(robot, config, zeros, FEETECH_SERVOS))


def dynamixel_wire(plant: MotorPlant, config: DeployConfig, robot: Robot, seed: int) -> SerialWire:
    """Dynamixel servos with the config's ids and models on ``plant``, assembled with encoder zeros drawn from ``seed``, and
    their calibration file.

    A Dynamixel counts from its single-turn reading at power-on (the
    firmware's docstring), so an arm powered on where a joint's encoder had
    wrapped past 4095 would read a whole turn off its calibration. Each zero is
    drawn where the home pose, at which the emulated arm powers on, reads
    within 0..4095: an arm its owner could calibrate and run.
    """
    windows = []
    for motor in config.motors:
        home = int(round(robot.config.home[motor.joint] * TICKS_PER_TURN / (2 * math.pi)))
        windows.append((max(0, -home), min(MAX_TICK, MAX_TICK - home)))
    zeros = assembly_zeros(seed, windows, config)
    firmware = DynamixelFirmware(plant, [(m.id, m.model) for m in config.motors], baud=config.bus.baud, encoder_zero=zeros)
    return SerialWire(firmware, assembly_calibration(robot, config, zeros, DYNAMIXEL_SERVOS))
