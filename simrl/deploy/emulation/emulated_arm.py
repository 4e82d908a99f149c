"""A whole emulated arm for ``simrl deploy --emulate`` and ``simrl emulate``: reality, physics clock, motor firmware on its wire.

``RealityPlant`` (the arm under a drawn reality) advanced in real time by a
``RealTimeStepper``, behind the emulated motors of the deploy config's motor
family (``wire.EMULATED_WIRES[bus.kind]``: Damiao motors on a virtual CAN
channel, Feetech or Dynamixel servos on a paced pty). A bus built from the
config with the wire's ``overrides`` (same process), or a ``simrl deploy``
given the ``Endpoint``'s flags (another process), then drives it exactly as it
would drive the real motors.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from simrl.deploy.clock import realtime_scheduling
from simrl.deploy.config import DeployConfig
from simrl.deploy.emulation.reality import RealityPlant, RealTimeStepper, available_realities, load_reality
from simrl.deploy.emulation.wire import EMULATED_WIRES, EmulatedWire, Endpoint
from simrl.robots import Robot

FALLBACK_REALITY = "none"  # the training model itself, for a robot that ships no deploy/realities/<robot>-test.yaml


def default_reality(robot: str) -> str:
    """The shipped test reality of ``robot`` (``deploy/realities/<robot>-test.yaml``), else the training model."""
    name = f"{robot}-test"
    return name if name in available_realities() else FALLBACK_REALITY


def motor_torque_limits(robot: Robot, joints: list[str]) -> list[float]:
    """Each joint's motor torque limit (N·m): the upper force range of its MJCF actuator."""
    actuated = list(robot.config.arm_joints) + list(robot.config.gripper_joints)
    actuators = np.concatenate([robot.arm_actuators, robot.gripper_actuators])
    return [float(robot.model.actuator_forcerange[actuators[actuated.index(joint)], 1]) for joint in joints]


class EmulatedArm:
    """The motors of ``config`` on a simulated arm under ``reality`` (drawn with ``seed``; default: the robot's test reality).

    The emulated motors use the config's ids, models and order, so the bus the
    bridge builds from the same config (with ``overrides()``) finds them.
    ``seed`` also draws what the motor family leaves to chance (a servo
    arm's encoder zeros).
    """

    def __init__(self, robot: Robot, config: DeployConfig, reality: str | Path | None = None, seed: int = 0) -> None:
        joints = [m.joint for m in config.motors]
        kind = EMULATED_WIRES[config.bus.kind]
        self.reality = load_reality(reality or default_reality(robot.name), robot, seed)
        rated = motor_torque_limits(robot, joints) if kind.rated is None else kind.rated(config, robot)
        self.plant = RealityPlant(robot, self.reality, joints, rated)
        self.wire: EmulatedWire = kind.build(self.plant, config, robot, seed)
        self._stepper: RealTimeStepper | None = None

    def overrides(self) -> dict[str, Any]:
        """Deploy config keys (dotted) that point a bus built in this process at this arm instead of the file's wire."""
        return self.wire.overrides()

    def describe_reality(self) -> dict[str, Any]:
        """The reality the arm has (``Reality.describe()``): the truth the deploy log records."""
        return self.reality.describe()

    def start(self) -> "EmulatedArm":
        """Start the physics clock and the firmware (the arm starts at home, motors off)."""
        self._stepper = RealTimeStepper(self.plant)
        self._stepper.start()
        self.wire.start()
        return self

    def stop(self) -> None:
        """Stop answering, stop the clock, release the wire; safe to call twice."""
        self.wire.stop()
        if self._stepper is not None:
            self._stepper.stop()
            self._stepper = None

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
    def serving(self, host: str | None, port: int | None, realtime_priority: int | None = None) -> Iterator[Endpoint]:
        """Running and reachable from other processes (a network transport listens on ``host``:``port``, 0: any free port)."""
        with self.started(realtime_priority), contextlib.ExitStack() as stack:
            with realtime_scheduling(realtime_priority):  # a server's threads carry the motors' frames: as urgent as the motors
                endpoint = stack.enter_context(self.wire.serving(host, port))
            yield endpoint
