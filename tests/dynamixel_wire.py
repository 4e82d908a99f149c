"""What the Dynamixel tests share: an SO-101 plant behind six X-series servos, an independent CRC and framer, a recorder.

The reference framer here does not use our codec: stuffing comes from ROBOTIS'
own SDK (``Protocol2PacketHandler.addStuffing``) and the CRC is a bitwise
shift-register loop, where the codec uses a table. Both reproduce the
ROBOTS.md / e-manual test vectors (tests/test_dynamixel_protocol.py), so a
packet they build is a correct packet by two routes.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

import dynamixel_sdk as sdk
import pytest

from simrl.deploy.emulation.dynamixel_firmware import DynamixelFirmware
from simrl.deploy.emulation.serial_link import Reply
from simrl.deploy.emulation.plant import MotorSample
from simrl.deploy.emulation.reality import RealityPlant, load_reality
from simrl.robots import load_robot

# A Koch-like mix on the SO-101 model (the plant does not care about the vendor): all three modelled servos.
SERVOS = (
    ("shoulder_pan", 1, "xm430-w350"),
    ("shoulder_lift", 2, "xm430-w350"),
    ("elbow_flex", 3, "xm430-w350"),
    ("wrist_flex", 4, "xl430-w250"),
    ("wrist_roll", 5, "xl330-m288"),
    ("gripper", 6, "xl330-m288"),
)
# Stall torques (N·m) from the e-manual specification tables at 12 V (XM430, XL430) and 5 V (XL330), hand-copied: the
# plant's motor limits.
STALL_TORQUE = {"xm430-w350": 4.1, "xl430-w250": 1.5, "xl330-m288": 0.52}
BAUD = 1_000_000
# The motors of a deploy file for the SO-101 model on Koch servos, as LeRobot configures a Koch follower
# (koch_follower.py configure): extended position for the arm, current-based position for the gripper, P/I/D
# 1500/0/600 on elbow_flex. The tests prepend their own ``robot:`` and ``bus:`` lines.
KOCH_MOTORS = """motors:
  - {joint: shoulder_pan, id: 1, model: xl430-w250}
  - {joint: shoulder_lift, id: 2, model: xl430-w250}
  - {joint: elbow_flex, id: 3, model: xl330-m288, position_p_gain: 1500, position_i_gain: 0, position_d_gain: 600}
  - {joint: wrist_flex, id: 4, model: xl330-m288}
  - {joint: wrist_roll, id: 5, model: xl330-m288}
  - {joint: gripper, id: 6, model: xl330-m288, mode: current_position}
"""
HANDLER = sdk.PacketHandler(2.0)


def make_plant(reality: str = "none", seed: int = 0) -> RealityPlant:
    robot = load_robot("so101")
    return RealityPlant(robot, load_reality(reality, robot, seed), [j for j, _, _ in SERVOS], [STALL_TORQUE[m] for *_, m in SERVOS])


def make_firmware(plant) -> DynamixelFirmware:
    return DynamixelFirmware(plant, [(i, m) for _, i, m in SERVOS], baud=BAUD)


def bitwise_crc(data: bytes) -> int:
    """CRC-16 (poly 0x8005, init 0, MSB first) one bit at a time: a second implementation, independent of the codec's table."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def with_crc(without: bytes) -> bytes:
    """Append the little-endian CRC to hand-written packet bytes."""
    return without + bitwise_crc(without).to_bytes(2, "little")


def sdk_frame(packet_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A packet framed by the SDK's stuffing routine and the bitwise CRC (not by our codec)."""
    length = len(params) + 3
    packet = [0xFF, 0xFF, 0xFD, 0x00, packet_id, length & 0xFF, length >> 8, instruction, *params, 0, 0]
    packet = HANDLER.addStuffing(packet)
    return with_crc(bytes(packet[:-2]))


def well_formed(stream: bytes) -> bool:
    """Whether ``stream`` starts with a whole packet whose CRC matches (checked with the bitwise CRC)."""
    if len(stream) < 10 or stream[:4] != b"\xff\xff\xfd\x00":
        return False
    end = 7 + int.from_bytes(stream[5:7], "little")
    return 10 <= end <= len(stream) and bitwise_crc(stream[: end - 2]) == int.from_bytes(stream[end - 2 : end], "little")


class Recording:
    """The firmware as the serial link sees it, keeping every byte the client sent and every reply."""

    def __init__(self, firmware: DynamixelFirmware) -> None:
        self.firmware = firmware
        self.received = bytearray()
        self.replies: list[Reply] = []

    def receive(self, data: bytes) -> list[Reply]:
        self.received += data
        replies = self.firmware.receive(data)
        self.replies += replies
        return replies

    def baud(self) -> int:
        return self.firmware.baud()

    def clear(self) -> None:
        self.received.clear()
        self.replies.clear()


class CountingPlant:
    """A real plant that counts the calls which change it: a firmware acting on a packet makes some."""

    def __init__(self, plant: RealityPlant) -> None:
        self.plant = plant
        self.num_motors = plant.num_motors
        self.changes = 0

    def set_enabled(self, motor: int, enabled: bool) -> None:
        self.changes += 1
        self.plant.set_enabled(motor, enabled)

    def set_command(self, motor: int, position: float, velocity: float, kp: float, kd: float, torque: float) -> None:
        self.changes += 1
        self.plant.set_command(motor, position, velocity, kp, kd, torque)

    def set_torque_limit(self, motor: int, share: float) -> None:
        self.changes += 1
        self.plant.set_torque_limit(motor, share)

    def set_deadband(self, motor: int, radians: float) -> None:
        self.changes += 1
        self.plant.set_deadband(motor, radians)

    def sample(self, motor: int) -> MotorSample:
        return self.plant.sample(motor)

    def drops_reply(self, motor: int) -> bool:
        return self.plant.drops_reply(motor)


class Hang(Exception):
    """A call ran past its time limit."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Raise ``Hang`` in the main thread if the block runs longer than ``seconds`` (catches endless parser loops)."""

    def expire(*_: object) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def patient_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's single-servo reply timeout is 2 x its USB latency allowance + 2 ms (34 ms); on a shared test machine
    a stall can outlast that, so give it 200 ms. Only a test that expects silence ever waits it out."""
    monkeypatch.setattr(sdk.port_handler, "LATENCY_TIMER", 99)
