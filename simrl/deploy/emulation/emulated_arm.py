"""A whole emulated arm for ``simrl deploy --emulate`` and ``simrl emulate``: reality, physics clock, motor firmware.

``RealityPlant`` (the arm under a drawn reality) advanced in real time by a
``RealTimeStepper``, behind a ``DamiaoEmulator`` listening on a python-can
virtual channel of its own. A ``DamiaoBus`` on that channel (same process), or
a ``SocketcandServer`` bridging it to TCP (another process), then drives it
exactly as it would drive the real motors.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Iterator

import can
import numpy as np

from simrl.deploy.buses.damiao.settings import damiao_motors
from simrl.deploy.clock import realtime_scheduling
from simrl.deploy.config import DeployConfig
from simrl.deploy.emulation.damiao_firmware import DamiaoEmulator
from simrl.deploy.emulation.reality import RealityPlant, RealTimeStepper, load_reality
from simrl.deploy.emulation.socketcand import SocketcandServer
from simrl.errors import SimrlError
from simrl.robots import Robot

DEFAULT_REALITY = "openarm-test"


def motor_torque_limits(robot: Robot, joints: list[str]) -> list[float]:
    """Each joint's motor torque limit (N·m): the upper force range of its MJCF actuator."""
    actuated = list(robot.config.arm_joints) + list(robot.config.gripper_joints)
    actuators = np.concatenate([robot.arm_actuators, robot.gripper_actuators])
    return [float(robot.model.actuator_forcerange[actuators[actuated.index(joint)], 1]) for joint in joints]


class EmulatedArm:
    """The motors of ``config`` on a simulated arm under ``reality`` (drawn with ``seed``), served on ``channel``.

    The emulated motors use the config's ids, models and order, so the bus the
    bridge builds from the same config finds them. Their encoders read joint
    angles, so the config's calibration must be the identity (offsets 0, signs
    +1, as ``deploy/openarm.yaml`` ships); any other is refused rather than
    silently mis-mapped.
    """

    def __init__(self, robot: Robot, config: DeployConfig, reality: str | Path = DEFAULT_REALITY, seed: int = 0) -> None:
        calibrated = [m.joint for m in config.motors if m.offset != 0.0 or m.sign != 1]
        if calibrated:
            raise SimrlError(
                f"the emulated motors read joint angles directly, but the deploy config calibrates {', '.join(calibrated)}; "
                "allowed with --emulate: offset 0 and sign 1 for every motor"
            )
        joints = [m.joint for m in config.motors]
        self.reality = load_reality(reality, robot, seed)
        self.plant = RealityPlant(robot, self.reality, joints, motor_torque_limits(robot, joints))
        self.channel = f"simrl-emulator-{uuid.uuid4().hex[:12]}"
        self._motors = damiao_motors(config.motors)
        self._wire: can.BusABC | None = None
        self._stepper: RealTimeStepper | None = None
        self._emulator: DamiaoEmulator | None = None

    @property
    def bus_settings(self) -> dict[str, str]:
        """What ``make_bus`` needs, beyond the deploy file, to reach this arm instead of the file's wire."""
        return {"interface": "virtual", "channel": self.channel}

    def start(self) -> "EmulatedArm":
        """Start the physics clock and the firmware (the arm starts at home, motors off)."""
        self._wire = can.Bus(interface="virtual", channel=self.channel)
        self._stepper = RealTimeStepper(self.plant)
        self._stepper.start()
        self._emulator = DamiaoEmulator(self.plant, self._motors, self._wire).start()
        return self

    def stop(self) -> None:
        """Stop answering, stop the clock, release the channel; safe to call twice."""
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        if self._stepper is not None:
            self._stepper.stop()
            self._stepper = None
        if self._wire is not None:
            self._wire.shutdown()
            self._wire = None

    @contextlib.contextmanager
    def started(self, realtime_priority: int | None = None) -> Iterator["EmulatedArm"]:
        """Running inside the block, its threads at ``realtime_priority`` (``SCHED_FIFO``) when the OS allows.

        Real motors answer from their own hardware, whatever the loop's
        computer is doing; an emulator starved by a loaded machine would
        report replies late that a real arm would not, so it gets the loop's
        priority (threads inherit the scheduling of the thread that starts them).
        """
        try:
            with realtime_scheduling(realtime_priority):
                self.start()
            yield self
        finally:
            self.stop()  # also after a start that failed half way

    @contextlib.contextmanager
    def serving(self, host: str, port: int, realtime_priority: int | None = None) -> Iterator[SocketcandServer]:
        """Running and reachable from other processes through a socketcand server on ``host``:``port`` (0: any free port)."""
        with self.started(realtime_priority):
            with realtime_scheduling(realtime_priority):  # the server's threads carry the motors' frames: as urgent as the motors
                server = SocketcandServer(self.channel, host=host, port=port).start()
            with server:
                yield server
