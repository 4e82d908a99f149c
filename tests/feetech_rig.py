"""An emulated SO-101 on a pty for the Feetech tests: plant, firmware, a tap on the wire, the SDK client."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest
import scservo_sdk as scs
import scservo_sdk.port_handler

from simrl.deploy.emulation.feetech_firmware import FeetechFirmware
from simrl.deploy.emulation.serial_link import PtySerialLink, Reply
from simrl.deploy.emulation.reality import RealityPlant, load_reality
from simrl.robots import Robot

SERVO_IDS = (1, 2, 3, 4, 5, 6)  # ROBOTS.md: shoulder_pan 1 ... gripper 6
PATIENT_S = 0.5  # reply timeouts for tests: a passing test never waits this long, a loaded machine may need 50 ms


@pytest.fixture(autouse=True)
def patient_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK waits 2 x 16 ms + 2 ms for a reply (port_handler LATENCY_TIMER, a USB adapter's latency): on a
    shared test machine the emulator thread can be late by that much, so the tests give it ``PATIENT_S``."""
    monkeypatch.setattr(scservo_sdk.port_handler, "LATENCY_TIMER", PATIENT_S * 1000 / 2)


def motor_joints(robot: Robot) -> list[str]:
    return list(robot.config.arm_joints) + list(robot.config.gripper_joints)


def so101_plant(robot: Robot, reality: str = "none") -> RealityPlant:
    """The SO-101 with all six joints on servos, torque limits from the MJCF (3.35 N·m)."""
    joints = motor_joints(robot)
    actuators = np.concatenate([robot.arm_actuators, robot.gripper_actuators])
    limits = [float(robot.model.actuator_forcerange[a, 1]) for a in actuators]
    return RealityPlant(robot, load_reality(reality, robot, 0), joints, limits)


class Tap:
    """A ``SerialFirmware`` that passes everything to ``inner`` and keeps what crossed the wire, both ways."""

    def __init__(self, inner: FeetechFirmware) -> None:
        self.inner = inner
        self.received: list[bytes] = []
        self.sent: list[bytes] = []

    def receive(self, data: bytes) -> list[Reply]:
        self.received.append(bytes(data))
        replies = self.inner.receive(data)
        self.sent += [r.data for r in replies]
        return replies

    def baud(self) -> int:
        return self.inner.baud()

    def clear(self) -> None:
        self.received.clear()
        self.sent.clear()

    @property
    def request_bytes(self) -> bytes:
        return b"".join(self.received)


@contextmanager
def sdk_client(firmware: FeetechFirmware | Tap) -> Iterator[tuple[PtySerialLink, scs.PortHandler, object]]:
    """``firmware`` served on a pty, and scservo_sdk's port and packet handler opened on it at 1 Mbaud."""
    with PtySerialLink(firmware) as link:
        port = scs.PortHandler(link.port)
        assert port.openPort()
        try:
            yield link, port, scs.PacketHandler(0)
        finally:
            port.closePort()
