"""The emulated STS3215 servos as scservo_sdk sees them on a pty, and their firmware under fuzz.

The client side is always the vendor SDK (or, for packets the SDK would never
send, hand-written bytes); the emulator's side is read through a tap on the
wire. Expected bytes are the hand-computed packets of test_feetech_protocol.py.
"""

from __future__ import annotations

import copy
import time
from datetime import timedelta
from typing import Callable

import mujoco
import numpy as np
import pytest
import scservo_sdk as scs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simrl.deploy.buses.feetech.protocol import RAD_PER_TICK, REGISTERS, PacketStream, checksum
from simrl.deploy.emulation.feetech_firmware import FRAME_GAP_S, FeetechFirmware
from simrl.deploy.emulation.serial_link import wire_time
from simrl.deploy.emulation.reality import RealityPlant
from simrl.robots import Robot, load_robot
from tests.feetech_rig import SERVO_IDS, Tap, motor_joints, patient_sdk, sdk_client, so101_plant  # noqa: F401 (fixture)
from tests.test_feetech_protocol import (
    PING_1,
    READ_1_POSITION,
    STATUS_1_2048,
    STATUS_1_PING,
    SYNC_READ_STATE_1_2,
    SYNC_WRITE_GOALS,
    WRITE_1_GOAL_2048,
    instruction_packets,
    mutants,
    valid_packets_within,
)

ADDR = {name: reg.address for name, reg in REGISTERS.items()}


@pytest.fixture(scope="module")
def so101() -> Robot:
    return load_robot("so101")


@pytest.fixture
def plant(so101: Robot) -> RealityPlant:
    return so101_plant(so101)


def settle(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


# ---------------------------------------------------------------- bytes on the wire


def test_sdk_packets_and_status_replies_match_hand_computed_bytes(plant: RealityPlant) -> None:
    tap = Tap(FeetechFirmware(plant, SERVO_IDS))
    with sdk_client(tap) as (_, port, ph):
        assert ph.ping(port, 1) == (777, scs.COMM_SUCCESS, 0)
        # the SDK's ping is a PING, then a READ of Model_Number (address 3, 2 bytes):
        # sum 01+04+02+03+02 = 0x0C, ~0x0C = 0xF3; reply 777 = 09 03: sum 01+04+00+09+03 = 0x11, ~ = 0xEE
        assert tap.request_bytes == PING_1 + bytes.fromhex("FF FF 01 04 02 03 02 F3")
        assert tap.sent == [STATUS_1_PING, bytes.fromhex("FF FF 01 04 00 09 03 EE")]

        tap.clear()
        assert ph.read2ByteTxRx(port, 1, ADDR["Present_Position"]) == (2048, scs.COMM_SUCCESS, 0)  # shoulder_pan at home: 0 rad
        assert tap.request_bytes == READ_1_POSITION
        assert tap.sent == [STATUS_1_2048]

        tap.clear()
        assert ph.write2ByteTxRx(port, 1, ADDR["Goal_Position"], 2048) == (scs.COMM_SUCCESS, 0)
        assert tap.request_bytes == WRITE_1_GOAL_2048
        assert tap.sent == [STATUS_1_PING]  # a write's status has no data: the same 6 bytes as the ping's

        tap.clear()
        group = scs.GroupSyncWrite(port, ph, ADDR["Goal_Position"], 2)
        group.addParam(1, [0x00, 0x08])
        group.addParam(2, [0x00, 0x04])
        assert group.txPacket() == scs.COMM_SUCCESS
        reader = scs.GroupSyncRead(port, ph, ADDR["Present_Position"], 6)
        reader.addParam(1)
        reader.addParam(2)
        assert reader.txRxPacket() == scs.COMM_SUCCESS
        assert tap.request_bytes == SYNC_WRITE_GOALS + SYNC_READ_STATE_1_2
        # id 1: 2048 = 00 08, velocity 0, load 0: sum 01+08+00+00+08 = 0x11, ~ = 0xEE
        # id 2 (shoulder_lift at home, -0.6 rad): 2048 - 0.6 / (2 pi / 4096) = 1656.9 -> 1657 = 0x0679;
        #      sum 02+08+00+79+06 = 0x89, ~0x89 = 0x76
        assert tap.sent == [
            bytes.fromhex("FF FF 01 08 00 00 08 00 00 00 00 EE"),
            bytes.fromhex("FF FF 02 08 00 79 06 00 00 00 00 76"),
        ]
        assert reader.getData(2, ADDR["Present_Position"], 2) == 1657


def test_wrong_checksum_is_counted_and_not_acted_on(plant: RealityPlant) -> None:
    firmware = FeetechFirmware(plant, SERVO_IDS)
    tap = Tap(firmware)
    with sdk_client(tap) as (_, port, ph):
        before, _, _ = ph.read2ByteTxRx(port, 1, ADDR["Goal_Position"])
        tap.clear()
        # Goal_Position = 1024 (00 04) for id 1: sum 01+05+03+2A+00+04 = 0x37, good checksum 0xC8; send 0xC9
        port.ser.write(bytes.fromhex("FF FF 01 05 03 2A 00 04 C9"))
        assert settle(lambda: firmware.rejected == 1)
        assert tap.sent == []  # no status reply either
        assert ph.read2ByteTxRx(port, 1, ADDR["Goal_Position"]) == (before, scs.COMM_SUCCESS, 0)
    assert before != 1024


def test_torn_packet_is_counted_and_the_next_packet_acted_on(plant: RealityPlant) -> None:
    firmware = FeetechFirmware(plant, SERVO_IDS)
    with sdk_client(firmware) as (_, port, ph):
        port.ser.write(bytes.fromhex("FF FF 01 05 03 2A"))  # a Goal_Position write cut after its address
        assert ph.write2ByteTxRx(port, 1, ADDR["Goal_Position"], 3000) == (scs.COMM_SUCCESS, 0)
        assert ph.read2ByteTxRx(port, 1, ADDR["Goal_Position"])[0] == 3000
        assert firmware.rejected == 1

        port.ser.write(bytes.fromhex("FF FF 02 F0 03"))  # LEN 0xF0: would swallow the next 240 bytes
        time.sleep(2 * FRAME_GAP_S)  # an idle line: the servo's receiver gives the packet up
        assert ph.ping(port, 2) == (777, scs.COMM_SUCCESS, 0)
        assert firmware.rejected == 2


# ---------------------------------------------------------------- control table


def test_locked_eeprom_write_is_acknowledged_but_not_applied(plant: RealityPlant) -> None:
    with sdk_client(FeetechFirmware(plant, SERVO_IDS)) as (_, port, ph):
        assert ph.read1ByteTxRx(port, 3, ADDR["Lock"])[0] == 1  # locked at power-on
        assert ph.write1ByteTxRx(port, 3, ADDR["P_Coefficient"], 16) == (scs.COMM_SUCCESS, 0)
        assert ph.write1ByteTxRx(port, 3, ADDR["ID"], 9) == (scs.COMM_SUCCESS, 0)
        assert ph.read1ByteTxRx(port, 3, ADDR["P_Coefficient"])[0] == 32
        assert ph.ping(port, 3)[0] == 777  # still id 3

        assert ph.write1ByteTxRx(port, 3, ADDR["Lock"], 0) == (scs.COMM_SUCCESS, 0)
        assert ph.write1ByteTxRx(port, 3, ADDR["P_Coefficient"], 16) == (scs.COMM_SUCCESS, 0)
        assert ph.read1ByteTxRx(port, 3, ADDR["P_Coefficient"])[0] == 16
        assert ph.write1ByteTxRx(port, 3, ADDR["Present_Position"], 7) == (scs.COMM_SUCCESS, 0)  # read-only: ignored
        assert ph.read2ByteTxRx(port, 3, ADDR["Present_Position"])[0] != 7


def test_reg_write_waits_for_action(plant: RealityPlant) -> None:
    with sdk_client(FeetechFirmware(plant, SERVO_IDS)) as (_, port, ph):
        assert ph.regWriteTxRx(port, 4, ADDR["Goal_Position"], 2, [0xD0, 0x07]) == (scs.COMM_SUCCESS, 0)  # 2000
        assert ph.read2ByteTxRx(port, 4, ADDR["Goal_Position"])[0] != 2000
        assert ph.action(port, scs.BROADCAST_ID) == scs.COMM_SUCCESS  # broadcast: no reply
        assert ph.read2ByteTxRx(port, 4, ADDR["Goal_Position"])[0] == 2000


def _round_trip(port: scs.PortHandler, ph: object, tries: int = 15) -> float:
    """The fastest of ``tries`` reads of one 2-byte register (8 bytes out, 8 back)."""
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        assert ph.read2ByteTxRx(port, 1, ADDR["Present_Position"])[1] == scs.COMM_SUCCESS
        times.append(time.perf_counter() - start)
    return min(times)


def test_return_delay_and_baud_rate_pace_the_replies(plant: RealityPlant) -> None:
    firmware = FeetechFirmware(plant, SERVO_IDS)
    with sdk_client(firmware) as (_, port, ph):
        wire = wire_time(16, 1_000_000)  # 160 µs: 8 bytes each way at 10 bits a byte
        slow = _round_trip(port, ph)  # power-on Return_Delay_Time 250 = 500 µs
        assert slow >= wire + 500e-6
        ph.write1ByteTxRx(port, 1, ADDR["Lock"], 0)
        assert ph.write1ByteTxRx(port, 1, ADDR["Return_Delay_Time"], 0) == (scs.COMM_SUCCESS, 0)
        fast = _round_trip(port, ph)
        assert fast >= wire
        assert fast < slow  # the 500 µs are gone (no tighter bound: Python's own latency varies with the machine's load)

        # every servo to Baud_Rate 3 (128 000 baud, Feetech INST.h), by broadcast: the line follows them
        ph.write1ByteTxOnly(port, scs.BROADCAST_ID, ADDR["Lock"], 0)
        ph.write1ByteTxOnly(port, scs.BROADCAST_ID, ADDR["Baud_Rate"], 3)
        assert settle(lambda: firmware.baud() == 128_000)
        assert port.setBaudRate(128_000)
        assert _round_trip(port, ph) >= wire_time(16, 128_000)  # 1.25 ms


def test_a_servo_alone_on_another_rate_hears_nothing(plant: RealityPlant) -> None:
    firmware = FeetechFirmware(plant, SERVO_IDS)
    with sdk_client(firmware) as (_, port, ph):
        ph.write1ByteTxRx(port, 2, ADDR["Lock"], 0)
        assert ph.write1ByteTxRx(port, 2, ADDR["Baud_Rate"], 1) == (scs.COMM_SUCCESS, 0)  # its reply is still at 1 Mbaud
        assert firmware.baud() == 1_000_000
        assert ph.ping(port, 2)[1] == scs.COMM_RX_TIMEOUT
        assert ph.ping(port, 3)[0] == 777


# ---------------------------------------------------------------- the servo's own loop


def _unlock_and_set(port: scs.PortHandler, ph: object, **values: int) -> None:
    """Broadcast Lock 0, then each 1-byte register ``name=value`` to every servo."""
    ph.write1ByteTxOnly(port, scs.BROADCAST_ID, ADDR["Lock"], 0)
    for name, value in values.items():
        ph.write1ByteTxOnly(port, scs.BROADCAST_ID, ADDR[name], value)


def _present_ticks(port: scs.PortHandler, ph: object) -> dict[int, int]:
    reader = scs.GroupSyncRead(port, ph, ADDR["Present_Position"], 2)
    for servo_id in SERVO_IDS:
        reader.addParam(servo_id)
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    return {servo_id: reader.getData(servo_id, ADDR["Present_Position"], 2) for servo_id in SERVO_IDS}


def test_servo_loop_with_lerobot_gains_is_the_training_servo(plant: RealityPlant, so101: Robot) -> None:
    """P 16 / D 32 and a goal 200 ticks away move the plant exactly as MuJoCo's own MJCF position servo does."""
    with sdk_client(FeetechFirmware(plant, SERVO_IDS)) as (_, port, ph):
        _unlock_and_set(port, ph, P_Coefficient=16, D_Coefficient=32, CW_Dead_Zone=0, CCW_Dead_Zone=0)
        goals = _present_ticks(port, ph)
        goals[1] += 200
        writer = scs.GroupSyncWrite(port, ph, ADDR["Goal_Position"], 2)
        for servo_id, ticks in goals.items():
            writer.addParam(servo_id, [ticks & 0xFF, ticks >> 8])
        assert writer.txPacket() == scs.COMM_SUCCESS
        ph.write1ByteTxOnly(port, scs.BROADCAST_ID, ADDR["Torque_Enable"], 1)
        assert settle(lambda: ph.read1ByteTxRx(port, 6, ADDR["Torque_Enable"])[0] == 1)
        plant.advance(0.5)

    # the same arm under MuJoCo's MJCF servos (kp 998, kv 2.73, +-3.35 N·m), ctrl = the goals as angles
    model = copy.deepcopy(so101.model)
    data = mujoco.MjData(model)
    data.qpos[:] = so101.home_qpos
    actuators = np.concatenate([so101.arm_actuators, so101.gripper_actuators])
    data.ctrl[actuators] = [(goals[servo_id] - 2048) * RAD_PER_TICK for servo_id in SERVO_IDS]
    for _ in range(round(0.5 / model.opt.timestep)):
        mujoco.mj_step(model, data)
    joints = [so101.model.joint(j).qposadr[0] for j in motor_joints(so101)]
    assert data.qpos[joints[0]] == pytest.approx(200 * RAD_PER_TICK, abs=0.01)  # it moved where the goal says
    np.testing.assert_allclose(plant.qpos[joints], data.qpos[joints], atol=1e-6)


def test_homing_offset_shifts_the_servo_frame(plant: RealityPlant) -> None:
    """Present_Position = actual - Homing_Offset, and the goal is in that frame (LeRobot's convention)."""
    with sdk_client(FeetechFirmware(plant, SERVO_IDS)) as (_, port, ph):
        _unlock_and_set(port, ph)
        assert ph.read2ByteTxRx(port, 1, ADDR["Present_Position"])[0] == 2048  # shoulder_pan at 0 rad
        assert ph.write2ByteTxRx(port, 1, ADDR["Homing_Offset"], 100) == (scs.COMM_SUCCESS, 0)
        assert ph.read2ByteTxRx(port, 1, ADDR["Present_Position"])[0] == 1948  # 2048 - 100
        assert ph.write2ByteTxRx(port, 1, ADDR["Goal_Position"], 2048) == (scs.COMM_SUCCESS, 0)
        assert ph.write1ByteTxRx(port, 1, ADDR["Torque_Enable"], 1) == (scs.COMM_SUCCESS, 0)
        plant.advance(0.5)
        shoulder_pan = plant.qpos[0]
        assert ph.read2ByteTxRx(port, 1, ADDR["Present_Position"])[0] == pytest.approx(2048, abs=2)
    assert shoulder_pan == pytest.approx(100 * RAD_PER_TICK, abs=2 * RAD_PER_TICK)  # actual 2148: 100 ticks past zero


def test_torque_limit_zero_releases_the_joint(plant: RealityPlant) -> None:
    with sdk_client(FeetechFirmware(plant, SERVO_IDS)) as (_, port, ph):
        ph.write1ByteTxOnly(port, scs.BROADCAST_ID, ADDR["Torque_Enable"], 1)  # hold the power-on goal: the present pose
        assert settle(lambda: ph.read1ByteTxRx(port, 2, ADDR["Torque_Enable"])[0] == 1)
        plant.advance(0.2)
        held = plant.qpos[1]
        assert abs(plant.applied_torque[1]) > 0.1  # shoulder_lift holds the arm against gravity
        assert ph.write2ByteTxRx(port, 2, ADDR["Torque_Limit"], 0) == (scs.COMM_SUCCESS, 0)
        plant.advance(0.3)
        assert plant.applied_torque[1] == 0.0
        assert abs(plant.qpos[1] - held) > 0.05  # it sags
        assert ph.read2ByteTxRx(port, 2, ADDR["Present_Load"])[0] == 0


def test_injected_error_is_reported_and_an_unloading_one_drops_torque(plant: RealityPlant) -> None:
    firmware = FeetechFirmware(plant, SERVO_IDS)
    with sdk_client(firmware) as (_, port, ph):
        ph.write1ByteTxOnly(port, scs.BROADCAST_ID, ADDR["Torque_Enable"], 1)
        assert settle(lambda: ph.read1ByteTxRx(port, 3, ADDR["Torque_Enable"])[0] == 1)
        firmware.inject_error(3, 0x01)  # input voltage: reported, torque kept (not in Unloading_Condition 0x2C)
        assert ph.read1ByteTxRx(port, 3, ADDR["Torque_Enable"]) == (1, scs.COMM_SUCCESS, 0x01)
        firmware.inject_error(3, 0x20)  # overload: the servo lets go
        assert ph.read1ByteTxRx(port, 3, ADDR["Torque_Enable"]) == (0, scs.COMM_SUCCESS, 0x20)
        assert ph.write1ByteTxRx(port, 3, ADDR["Torque_Enable"], 1) == (scs.COMM_SUCCESS, 0x20)
        assert ph.read1ByteTxRx(port, 3, ADDR["Torque_Enable"])[0] == 0  # and refuses torque while it lasts
        plant.advance(0.05)
        assert plant.applied_torque[2] == 0.0


# ---------------------------------------------------------------- fuzz: firmware.receive


class ManualClock:
    """A clock the test moves, so idle gaps are exact and the fuzz is deterministic."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fuzz_rig(so101: Robot) -> tuple[FeetechFirmware, ManualClock, RealityPlant]:
    """One plant for all examples (building it is the slow part); the firmware is reset per example."""
    clock = ManualClock()
    plant = so101_plant(so101)
    return FeetechFirmware(plant, SERVO_IDS, clock=clock), clock, plant


FUZZ = settings(max_examples=3000, deadline=timedelta(milliseconds=500), database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _feed(firmware: FeetechFirmware, clock: ManualClock, data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` in pieces, then an idle line; the reply bytes."""
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    replies = []
    for a, b in zip(points, points[1:]):
        replies += firmware.receive(data[a:b])
    clock.now += 1.0
    replies += firmware.receive(b"")
    return [r.data for r in replies]


def _tables(firmware: FeetechFirmware) -> list[bytes]:
    return [firmware.control_table(i) for i in range(len(SERVO_IDS))]


@FUZZ
@given(mutants(), st.lists(st.integers(0, 60), max_size=4))
def test_fuzz_firmware_never_acts_on_a_mutant_without_a_valid_packet(fuzz_rig: tuple, mutant: bytes, cuts: list[int]) -> None:
    firmware, clock, _ = fuzz_rig
    firmware.reset()
    power_on = _tables(firmware)
    replies = _feed(firmware, clock, mutant, cuts)
    if valid_packets_within(mutant):
        return  # about 1 mutant in 256 passes the checksum: it may change an id, a rate or the lock, which is fine
    assert replies == []
    assert _tables(firmware) == power_on
    assert firmware.rejected + firmware.noise_bytes > 0


@settings(FUZZ, max_examples=2500)
@given(
    st.lists(st.one_of(instruction_packets(), mutants(), st.binary(min_size=1, max_size=30)), min_size=1, max_size=6),
    st.lists(st.integers(0, 200), max_size=6),
)
def test_fuzz_firmware_survives_any_stream_and_replies_well_formed(fuzz_rig: tuple, items: list[bytes], cuts: list[int]) -> None:
    firmware, clock, plant = fuzz_rig
    firmware.reset()
    for reply in _feed(firmware, clock, b"".join(items), cuts):
        stream = PacketStream(gap_s=1.0)
        (status,) = stream.feed(reply, 0.0)
        assert checksum(reply[2:-1]) == reply[-1] and status.code <= 0x7F  # the SDK drops error bytes above 0x7F
    plant.advance(plant.model.opt.timestep)  # let queued set points act, so none pile up across examples
