"""The Dynamixel emulator as ROBOTIS' own SDK sees it over a real pty, byte for byte, and under fuzz."""

from __future__ import annotations

import time
from typing import Iterator

import dynamixel_sdk as sdk
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simrl.deploy.buses.dynamixel.protocol import Instruction
from simrl.deploy.emulation.dynamixel_firmware import DynamixelFirmware
from simrl.deploy.emulation.serial_link import PtySerialLink
from simrl.deploy.emulation.reality import RealityPlant
from tests.dynamixel_wire import (
    BAUD,
    SERVOS,
    CountingPlant,
    Recording,
    make_firmware,
    make_plant,
    patient_sdk,  # noqa: F401  (a fixture)
    sdk_frame,
    well_formed,
    with_crc,
    within,
)
from tests.test_dynamixel_protocol import PING_1, READ_PRESENT_POSITION_1, STATUS_OK_1, WRITE_GOAL_POSITION_512, mutated

OK = sdk.COMM_SUCCESS
ACCESS_ERROR, RESULT_FAIL, ALERT = 0x07, 0x01, 0x80  # protocol2.md error numbers and the alert bit


@pytest.fixture
def plant() -> RealityPlant:
    return make_plant()


@pytest.fixture
def recording(plant: RealityPlant) -> Recording:
    return Recording(make_firmware(plant))


@pytest.fixture
def wire(recording: Recording, patient_sdk: None) -> Iterator[tuple[sdk.PortHandler, sdk.PacketHandler]]:
    """The SDK's port and packet handler on the emulator's pty."""
    with PtySerialLink(recording) as link:
        port = sdk.PortHandler(link.port)
        assert port.setBaudRate(BAUD)
        yield port, sdk.PacketHandler(2.0)
        port.closePort()


def test_sdk_sends_the_robots_md_vectors_and_the_replies_are_the_hand_computed_packets(wire, recording: Recording) -> None:
    port, ph = wire
    assert ph.ping(port, 1) == (1020, OK, 0)
    assert bytes(recording.received) == PING_1
    # model 1020 = 0x03FC, firmware 52 = 0x34; LEN = 3 params + error + instruction + CRC = 7
    assert [r.data for r in recording.replies] == [with_crc(bytes.fromhex("FF FF FD 00 01 07 00 55 00 FC 03 34"))]
    recording.clear()
    assert ph.read4ByteTxRx(port, 1, 132) == (2048, OK, 0)  # shoulder_pan at home is joint 0: tick 2048 = 0x800
    assert bytes(recording.received) == READ_PRESENT_POSITION_1
    assert [r.data for r in recording.replies] == [with_crc(bytes.fromhex("FF FF FD 00 01 08 00 55 00 00 08 00 00"))]
    recording.clear()
    assert ph.write4ByteTxRx(port, 1, 116, 512) == (OK, 0)
    assert bytes(recording.received) == WRITE_GOAL_POSITION_512
    assert [r.data for r in recording.replies] == [STATUS_OK_1]


def test_broadcast_ping_answers_in_id_order_each_after_its_return_delay(wire, recording: Recording) -> None:
    port, ph = wire
    found, result = ph.broadcastPing(port)
    assert result == OK and found == {1: [1020, 52], 2: [1020, 52], 3: [1020, 52], 4: [1060, 52], 5: [1200, 52], 6: [1200, 52]}
    assert [r.data[4] for r in recording.replies] == [1, 2, 3, 4, 5, 6]
    assert all(r.delay_s == pytest.approx(500e-6) for r in recording.replies)  # Return Delay Time 250 x 2 µs at power-on


def test_byte_stuffing_round_trips_through_the_sdk_and_the_emulator(wire, recording: Recording) -> None:
    port, ph = wire
    offset = -131_073  # Homing Offset (20) whose little-endian bytes are FF FF FD FF: a header pattern
    stuffed = sdk_frame(1, Instruction.WRITE, bytes.fromhex("14 00 FF FF FD FF"))  # ... FF FF FD FD FF, LEN 10
    assert bytes.fromhex("14 00 FF FF FD FD FF") in stuffed
    port.writePort(stuffed)  # a correctly stuffed write: the emulator must take the stuffing byte out
    port.setPacketTimeout(11)
    status, result = ph.rxPacket(port, False)
    assert result == OK and status[8] == 0  # its status packet: no error
    assert ph.read4ByteTxRx(port, 1, 20) == (offset & 0xFFFFFFFF, OK, 0)
    assert bytes.fromhex("55 00 FF FF FD FD FF") in recording.replies[-1].data  # and stuff its own reply
    assert ph.read4ByteTxRx(port, 1, 132)[0] == 2048  # position mode (factory) ignores an offset beyond +-1,024
    assert ph.write1ByteTxRx(port, 1, 11, 4) == (OK, 0)  # extended position mode takes any
    assert ph.read4ByteTxRx(port, 1, 132)[0] == (2048 + offset) & 0xFFFFFFFF  # Present Position = actual + Homing Offset
    # The SDK's own write: dynamixel_sdk 4.1 drops addStuffing's result in txPacket, so it sends the pattern
    # unstuffed (LEN 9); a servo takes it by its length and CRC, and so does the emulator.
    recording.clear()
    assert ph.write4ByteTxRx(port, 1, 20, (offset - 1) & 0xFFFFFFFF) == (OK, 0)  # FE FF FD FF: no pattern ...
    assert ph.write4ByteTxRx(port, 1, 20, offset & 0xFFFFFFFF) == (OK, 0)
    unstuffed = with_crc(bytes.fromhex("FF FF FD 00 01 09 00 03 14 00 FF FF FD FF"))
    assert bytes(recording.received).endswith((stuffed, unstuffed))
    assert ph.read4ByteTxRx(port, 1, 20) == (offset & 0xFFFFFFFF, OK, 0)


def test_eeprom_write_while_torque_is_on_gets_an_access_error_and_is_not_applied(wire, plant: RealityPlant) -> None:
    port, ph = wire
    assert ph.write1ByteTxRx(port, 3, 64, 1) == (OK, 0)
    assert ph.write1ByteTxRx(port, 3, 11, 1) == (OK, ACCESS_ERROR)  # Operating Mode is EEPROM
    assert ph.read1ByteTxRx(port, 3, 11) == (3, OK, 0)
    assert ph.write1ByteTxRx(port, 3, 64, 0) == (OK, 0)
    assert ph.write1ByteTxRx(port, 3, 11, 1) == (OK, 0)
    assert ph.read1ByteTxRx(port, 3, 11) == (1, OK, 0)


def test_bad_crc_and_torn_packets_are_counted_and_not_acted_on(wire, recording: Recording, plant: RealityPlant) -> None:
    port, ph = wire
    torque_on = with_crc(bytes.fromhex("FF FF FD 00 02 06 00 03 40 00 01"))  # write Torque Enable (64) = 1 to id 2
    bad_crc = torque_on[:-1] + bytes([torque_on[-1] ^ 0xFF])
    port.writePort(bad_crc)
    port.writePort(torque_on[:9])  # torn: the rest never comes ...
    assert ph.ping(port, 2) == (1020, OK, 0)  # ... and the next packet is answered all the same
    assert recording.firmware.rejected == 2
    assert ph.read1ByteTxRx(port, 2, 64) == (0, OK, 0)
    assert len(recording.replies) == 2  # the ping and the read: nothing answered the bad packets
    plant.advance(0.5)
    assert np.all(plant.applied_torque == 0.0)


def test_reg_write_waits_for_action(wire) -> None:
    port, ph = wire
    assert ph.regWriteTxRx(port, 4, 116, 4, [0x00, 0x09, 0x00, 0x00]) == (OK, 0)  # Goal Position 2304
    assert ph.read1ByteTxRx(port, 4, 69) == (1, OK, 0)  # Registered Instruction
    assert ph.read4ByteTxRx(port, 4, 116)[0] != 2304
    assert ph.action(port, 0xFE) == OK  # broadcast: every servo with a registered write acts, none answers
    assert ph.read4ByteTxRx(port, 4, 116) == (2304, OK, 0)
    assert ph.read1ByteTxRx(port, 4, 69) == (0, OK, 0)
    assert ph.action(port, 4) == OK  # the SDK does not wait for Action's status packet: read it here
    port.setPacketTimeout(11)
    status, result = ph.rxPacket(port, False)
    assert result == OK and status[8] == 0x02  # instruction error: Action without Reg Write


def test_sync_and_bulk_groups_of_the_sdk(wire) -> None:
    port, ph = wire
    goals = {1: 2000, 2: 2100, 3: 2200}
    write = sdk.GroupSyncWrite(port, ph, 116, 4)
    for servo_id, goal in goals.items():
        write.addParam(servo_id, list(goal.to_bytes(4, "little")))
    assert write.txPacket() == OK
    read = sdk.GroupSyncRead(port, ph, 116, 4)
    for servo_id in goals:
        read.addParam(servo_id)
    assert read.txRxPacket() == OK
    assert {i: read.getData(i, 116, 4) for i in goals} == goals
    bulk_write = sdk.GroupBulkWrite(port, ph)
    bulk_write.addParam(5, 65, 1, [1])  # LED on
    bulk_write.addParam(6, 112, 4, list((100).to_bytes(4, "little")))  # Profile Velocity
    assert bulk_write.txPacket() == OK
    bulk_read = sdk.GroupBulkRead(port, ph)
    bulk_read.addParam(4, 0, 2)  # Model Number
    bulk_read.addParam(5, 65, 1)
    bulk_read.addParam(6, 112, 4)
    assert bulk_read.txRxPacket() == OK
    assert (bulk_read.getData(4, 0, 2), bulk_read.getData(5, 65, 1), bulk_read.getData(6, 112, 4)) == (1060, 1, 100)


def test_baud_rate_register_moves_the_wire_once_every_servo_follows(wire, recording: Recording) -> None:
    port, ph = wire
    assert ph.write1ByteTxRx(port, 1, 8, 4) == (OK, 0)  # value 4 = 2 Mbps: answered at the old rate
    assert ph.ping(port, 1)[1] == sdk.COMM_RX_TIMEOUT  # it listens at 2M now, the wire is still at 1M
    assert ph.ping(port, 2)[:2] == (1020, OK)
    ph.write1ByteTxOnly(port, 0xFE, 8, 4)  # broadcast: every servo that hears it moves, and no one answers
    deadline = time.monotonic() + 2.0
    while recording.baud() != 2_000_000 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert recording.baud() == 2_000_000
    assert port.setBaudRate(2_000_000)
    assert [ph.ping(port, i)[1] for i in range(1, 7)] == [OK] * 6


def test_status_return_level_and_return_delay_time(plant: RealityPlant) -> None:
    firmware = make_firmware(plant)
    assert len(firmware.receive(sdk_frame(1, Instruction.WRITE, bytes([9, 0, 10])))) == 1  # Return Delay Time 10
    assert firmware.receive(PING_1)[0].delay_s == pytest.approx(20e-6)  # 10 x 2 µs (e-manual's example)
    assert firmware.receive(sdk_frame(1, Instruction.WRITE, bytes([68, 0, 1]))) == []  # level 1: reads and pings only
    assert firmware.receive(sdk_frame(1, Instruction.WRITE, bytes([65, 0, 1]))) == []
    assert len(firmware.receive(READ_PRESENT_POSITION_1)) == 1 and len(firmware.receive(PING_1)) == 1
    assert firmware.tables()[0][65] == 1  # the unanswered write was applied


def test_a_hardware_fault_shuts_the_servo_down_until_reboot(wire, recording: Recording, plant: RealityPlant) -> None:
    port, ph = wire
    assert ph.write1ByteTxRx(port, 2, 9, 0) == (OK, 0)  # EEPROM: kept across the reboot
    assert ph.write1ByteTxRx(port, 2, 64, 1) == (OK, 0)
    recording.firmware.fault(2, 0x20)  # overload
    assert ph.ping(port, 2) == (1020, OK, ALERT)
    assert ph.read1ByteTxRx(port, 2, 70) == (0x20, OK, ALERT)
    assert ph.read1ByteTxRx(port, 2, 64) == (0, OK, ALERT)  # torque went off
    assert ph.write1ByteTxRx(port, 2, 64, 1) == (OK, ALERT | RESULT_FAIL)
    assert ph.reboot(port, 2) == (OK, ALERT)  # answered before it restarts
    assert ph.read1ByteTxRx(port, 2, 70) == (0, OK, 0)
    assert ph.read1ByteTxRx(port, 2, 9) == (0, OK, 0)
    assert ph.write1ByteTxRx(port, 2, 64, 1) == (OK, 0)


@pytest.mark.parametrize(
    ("mode", "item", "value"),
    [(1, 104, 50), (0, 102, 100), (16, 100, 300)],  # velocity mode: Goal Velocity; current: Goal Current; PWM: Goal PWM
    ids=["velocity", "current", "pwm"],
)
def test_other_operating_modes_turn_the_joint_the_commanded_way(plant: RealityPlant, mode: int, item: int, value: int) -> None:
    firmware = make_firmware(plant)
    for params in (bytes([11, 0, mode]), bytes([item, 0]) + value.to_bytes(4 if item == 104 else 2, "little"), bytes([64, 0, 1])):
        (reply,) = firmware.receive(sdk_frame(1, Instruction.WRITE, params))
        assert reply.data[8] == 0  # no error
    for sign in (1, -1):
        if sign < 0:
            negative = (-value).to_bytes(4 if item == 104 else 2, "little", signed=True)
            firmware.receive(sdk_frame(1, Instruction.WRITE, bytes([item, 0]) + negative))
        plant.advance(0.4)
        assert np.sign(plant.qvel[0]) == sign  # shoulder_pan turns about the vertical: no gravity to fight


def write(firmware: DynamixelFirmware, servo_id: int, address: int, data: bytes) -> int:
    """A WRITE through the firmware; the status packet's error byte."""
    (reply,) = firmware.receive(sdk_frame(servo_id, Instruction.WRITE, bytes([address, 0]) + data))
    return reply.data[8]


def present_position(firmware: DynamixelFirmware, servo_id: int) -> int:
    (reply,) = firmware.receive(sdk_frame(servo_id, Instruction.READ, bytes([132, 0, 4, 0])))
    return int.from_bytes(reply.data[9:13], "little", signed=True)


def test_homing_offset_adds_to_the_encoder_and_position_mode_ignores_one_beyond_1024(plant: RealityPlant) -> None:
    firmware = DynamixelFirmware(plant, [(i, m) for _, i, m in SERVOS], baud=BAUD, encoder_zero=[3100, 1000, 2547, 600, 3900, 1500])
    assert present_position(firmware, 1) == 3100  # shoulder_pan at home is joint 0: its encoder's zero tick
    assert write(firmware, 1, 20, (-1053).to_bytes(4, "little", signed=True)) == 0  # LeRobot's 2047 - 3100
    assert present_position(firmware, 1) == 3100  # position mode (3, factory): |-1053| > 1024 is ignored (x/homing_offset.md)
    assert write(firmware, 1, 11, bytes([4])) == 0  # extended position
    assert present_position(firmware, 1) == 2047  # Present Position = Actual Position + Homing Offset
    assert write(firmware, 2, 20, (1000).to_bytes(4, "little", signed=True)) == 0
    assert present_position(firmware, 2) == 1000 - 391 + 1000  # shoulder_lift at home -0.6 rad = -391.1 ticks; within 1024: taken


def test_the_count_restarts_within_one_turn_at_power_on_and_on_switching_to_extended_position(plant: RealityPlant) -> None:
    firmware = DynamixelFirmware(plant, [(i, m) for _, i, m in SERVOS], baud=BAUD, encoder_zero=[4000, 2048, 2048, 2048, 2048, 2048])
    assert present_position(firmware, 1) == 4000
    plant.place(0, 0.5)  # 0.5 rad = 325.9 ticks on: past the encoder's 4095 -> 0 wrap
    assert present_position(firmware, 1) == 4326  # counted on from the power-on turn
    assert write(firmware, 1, 11, bytes([4])) == 0  # "reset to the absolute position value within a single turn" (x/goal_position.md)
    assert present_position(firmware, 1) == 4326 - 4096
    plant.place(0, 0.0)
    assert present_position(firmware, 1) == 4000 - 4096  # the same pose now reads a turn lower: why LeRobot homes in this mode
    (reply,) = firmware.receive(sdk_frame(1, Instruction.REBOOT))
    assert reply.data[8] == 0 and present_position(firmware, 1) == 4000  # a power cycle counts from the single turn again


def test_reverse_mode_counts_the_other_way(plant: RealityPlant) -> None:
    firmware = make_firmware(plant)
    assert present_position(firmware, 1) == 2048
    assert write(firmware, 1, 10, bytes([1])) == 0  # Drive Mode (10) bit 0: Reverse (x/drive_mode.md)
    assert present_position(firmware, 1) == 2048  # -2048 within one turn: 4096 - 2048
    plant.place(0, 0.1)  # 65.2 ticks counter-clockwise
    assert present_position(firmware, 1) == 2048 - 65


# ---------------------------------------------------------------- fuzz


def _valid_instruction() -> st.SearchStrategy[bytes]:
    """Instruction packets a client could send to this arm: any instruction, our ids or broadcast, item-shaped params."""
    address = st.sampled_from([7, 8, 9, 11, 20, 36, 64, 65, 68, 84, 100, 102, 116, 126, 132, 147, 200])
    params = st.one_of(
        st.builds(lambda a, n: a.to_bytes(2, "little") + n.to_bytes(2, "little"), address, st.integers(0, 12)),
        st.builds(lambda a, d: a.to_bytes(2, "little") + d, address, st.binary(min_size=1, max_size=8)),
        st.binary(max_size=20),
    )
    return st.builds(sdk_frame, st.sampled_from([1, 2, 3, 4, 5, 6, 9, 0xFE]), st.sampled_from(list(Instruction)), params)


PING_3 = sdk_frame(3, Instruction.PING)


@pytest.fixture(scope="module")
def counted() -> tuple[DynamixelFirmware, CountingPlant]:
    """One plant for the whole fuzz run (reset per example)."""
    counting = CountingPlant(make_plant())
    return DynamixelFirmware(counting, [(servo_id, model) for _, servo_id, model in SERVOS], baud=BAUD), counting


@settings(max_examples=2000, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(mutated(_valid_instruction()), min_size=1, max_size=4))
def test_fuzz_firmware_never_acts_on_a_bad_packet_and_counts_it(counted, mutants: list[bytes]) -> None:
    """About 5,400 mutated packets (2,000 lists of 1-4), each after a reset; with the ~7,000 random blobs below, over
    10,000 into the emulator. A bad one leaves no trace: no reply, no table change, no plant call; the ping after it
    is answered (no stall), and a dropped packet that still had its header is counted."""
    firmware, plant = counted
    for mutant in mutants:
        firmware.reset()
        before, plant.changes = firmware.tables(), 0
        stream = mutant + PING_3
        with within(2.0):
            replies = firmware.receive(stream)
        if any(well_formed(stream[k:]) for k in range(len(mutant))):
            continue  # the mutant holds a valid packet (or the ping's bytes complete one): acting on it is the servo's job
        assert firmware.handled == 1  # only the ping was taken
        if mutant[:4] == b"\xff\xff\xfd\x00":  # a packet by its header: counted when dropped (else it is line noise)
            assert firmware.rejected >= 1
        assert [r.data for r in replies] == [with_crc(bytes.fromhex("FF FF FD 00 03 07 00 55 00 FC 03 34"))]
        assert plant.changes == 0 and _stored(firmware.tables()) == _stored(before)


@settings(max_examples=2000, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=5))
def test_fuzz_firmware_ignores_random_bytes_and_stays_responsive(counted, blobs: list[bytes]) -> None:
    """About 7,000 random blobs (2,000 lists of 1-5), each after a reset, then a ping that must still be answered."""
    firmware, plant = counted
    for noise in blobs:
        firmware.reset()
        plant.changes = 0
        with within(2.0):
            replies = firmware.receive(noise) + firmware.receive(PING_3)
        if b"\xff\xff\xfd\x00" in noise:
            continue  # holds a header: a packet may start here, and then it is judged like any other
        assert firmware.handled == 1 and [r.data[4] for r in replies] == [3] and plant.changes == 0


def _stored(tables: dict[int, bytes]) -> dict[int, bytes]:
    """The tables without the present-state items (120..147), which follow the plant, not the packets."""
    return {motor: table[:120] for motor, table in tables.items()}
