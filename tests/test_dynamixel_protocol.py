"""The Protocol 2.0 codec against published bytes, and its stream parser against splits, tears, bad CRCs and fuzz."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simrl.deploy.buses.dynamixel import protocol as dxl
from tests.dynamixel_wire import bitwise_crc, sdk_frame, well_formed, within

# ROBOTS.md "Dynamixel Protocol 2.0" test vectors (from the e-manual's protocol2.md examples).
PING_1 = bytes.fromhex("FF FF FD 00 01 03 00 01 19 4E")
READ_PRESENT_POSITION_1 = bytes.fromhex("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")
WRITE_GOAL_POSITION_512 = bytes.fromhex("FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89")
# protocol2.md status examples: ping reply of an XM430-W210 (model 1030, firmware 38), read reply with 166,
# and the plain "no error" status; Sync Write and Bulk Read instruction examples.
PING_REPLY_1030 = bytes.fromhex("FF FF FD 00 01 07 00 55 00 06 04 26 65 5D")
READ_REPLY_166 = bytes.fromhex("FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0")
STATUS_OK_1 = bytes.fromhex("FF FF FD 00 01 04 00 55 00 A1 0C")
SYNC_WRITE_150_170 = bytes.fromhex("FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87")
BULK_READ_EXAMPLE = bytes.fromhex("FF FF FD 00 FE 0D 00 92 01 90 00 02 00 02 92 00 01 00 1A 05")
VECTORS = (PING_1, READ_PRESENT_POSITION_1, WRITE_GOAL_POSITION_512, PING_REPLY_1030, READ_REPLY_166, STATUS_OK_1,
           SYNC_WRITE_150_170, BULK_READ_EXAMPLE)


@pytest.mark.parametrize("packet", VECTORS, ids=lambda p: p.hex()[8:16])
def test_both_crc_implementations_reproduce_the_published_packets(packet: bytes) -> None:
    assert dxl.crc16(packet[:-2]) == int.from_bytes(packet[-2:], "little")
    assert bitwise_crc(packet[:-2]) == int.from_bytes(packet[-2:], "little")


def test_crc_check_value_is_the_catalogued_crc16_umts() -> None:
    # CRC-16/UMTS (alias BUYPASS: poly 0x8005, init 0, no reflection) has check value 0xFEE8 over "123456789"
    # (Greg Cook's CRC catalogue); the table-driven codec must agree with the catalogue, not only with itself.
    assert dxl.crc16(b"123456789") == 0xFEE8


def test_framing_reproduces_the_published_instruction_and_status_packets() -> None:
    assert dxl.frame(1, dxl.Instruction.PING) == PING_1
    assert dxl.frame(1, dxl.Instruction.READ, bytes.fromhex("84 00 04 00")) == READ_PRESENT_POSITION_1
    assert dxl.frame(1, dxl.Instruction.WRITE, bytes.fromhex("74 00 00 02 00 00")) == WRITE_GOAL_POSITION_512
    assert dxl.status_packet(1, 0, bytes.fromhex("06 04 26")) == PING_REPLY_1030
    assert dxl.status_packet(1, 0, bytes.fromhex("A6 00 00 00")) == READ_REPLY_166
    assert dxl.status_packet(1, 0) == STATUS_OK_1
    assert dxl.frame(0xFE, dxl.Instruction.SYNC_WRITE, SYNC_WRITE_150_170[8:-2]) == SYNC_WRITE_150_170


def test_stuffing_inserts_fd_after_each_header_pattern_and_is_undone() -> None:
    # protocol2.md "Packet Process": FF FF FD becomes FF FF FD FD inside instruction..parameters.
    assert dxl.stuff(bytes.fromhex("03 14 00 FF FF FD FF")) == bytes.fromhex("03 14 00 FF FF FD FD FF")
    assert dxl.stuff(bytes.fromhex("FF FF FD FF FF FD")) == bytes.fromhex("FF FF FD FD FF FF FD FD")
    assert dxl.stuff(bytes.fromhex("FF FD FF FF FF")) == bytes.fromhex("FF FD FF FF FF")
    for raw in (bytes.fromhex("FF FF FD FD"), bytes.fromhex("00 FF FF FD 00 FF FF FD")):
        assert dxl.unstuff(dxl.stuff(raw)) == raw


def test_a_stuffed_packet_matches_the_sdk_framing_and_parses_back() -> None:
    params = bytes.fromhex("14 00 FF FF FD FF")  # Homing Offset (20) = -131073, whose bytes hold a header pattern
    wire = dxl.frame(1, dxl.Instruction.WRITE, params)
    assert wire == sdk_frame(1, dxl.Instruction.WRITE, params)
    assert wire[5] == 10 and wire[8:15] == bytes.fromhex("14 00 FF FF FD FD FF")  # LEN counts the stuffing byte
    (packet,) = dxl.PacketParser().feed(wire)
    assert (packet.id, packet.instruction, packet.params) == (1, dxl.Instruction.WRITE, params)


def test_status_errors_decode_to_words() -> None:
    assert dxl.describe_error(0x00) == ""
    assert dxl.describe_error(0x07) == "access error"
    assert dxl.describe_error(0x84) == "data range error, hardware alert"
    assert dxl.describe_hardware_error(0x24) == "overheating, overload"  # bits 2 and 5 (control_table_shutdown.md)
    assert dxl.describe_hardware_error(0x02) == "hardware error bits 0x02"


def test_control_tables_hold_the_e_manual_addresses_and_defaults() -> None:
    # Hand-copied from the e-manual pages (model number; P, D gains; what item 126 is; Current Limit).
    expected = {
        "xl430-w250": (1060, 640, 4000, "present_load", None),
        "xl330-m288": (1200, 400, 0, "present_current", 1750),
        "xm430-w350": (1020, 800, 0, "present_current", 1193),
    }
    for name, (number, p_gain, d_gain, item_126, current_limit) in expected.items():
        model = dxl.MODELS[name]
        assert model.register("model_number").default == number
        assert model.register("position_p_gain").default == p_gain and model.register("position_p_gain").address == 84
        assert model.register("position_d_gain").default == d_gain and model.register("position_d_gain").address == 80
        assert model.at(126).name == item_126
        assert (model.register("current_limit").default if model.has("current_limit") else None) == current_limit
        assert model.has("goal_current") == (current_limit is not None)
        for item, address, size in (("id", 7, 1), ("baud_rate", 8, 1), ("return_delay_time", 9, 1), ("operating_mode", 11, 1),
                                    ("torque_enable", 64, 1), ("hardware_error_status", 70, 1), ("goal_pwm", 100, 2),
                                    ("profile_velocity", 112, 4), ("goal_position", 116, 4), ("present_velocity", 128, 4),
                                    ("present_position", 132, 4)):
            register = model.register(item)
            assert (register.address, register.size) == (address, size)
        assert model.register("operating_mode").eeprom and not model.register("torque_enable").eeprom
    assert dxl.MODELS["xl430-w250"].modes == {1, 3, 4, 16} and dxl.MODELS["xl330-m288"].modes == {0, 1, 3, 4, 5, 16}


def test_the_servo_table_gives_the_hand_computed_torque_law() -> None:
    """Worked by hand: 4096 / (2 pi) = 651.8986 ticks/rad; 885 PWM units = full duty = the stall torque; e-manual XL430-W250
    at 12 V 1.5 N m, 1.4 A, 61 rev/min (6.387905 rad/s); XL330-M288 at 5 V 0.52 N m, 1.47 A, 103 rev/min (10.786135 rad/s)."""
    xl430, xl330 = dxl.MODELS["xl430-w250"], dxl.MODELS["xl330-m288"]
    extended, current_based = 4, 5
    # P 640 / 128 = 5; 5 x 651.8986 / 885 x 1.5 = 5.524565 N m/rad. D 4000 / 16 = 250 per tick/ms: 250 x 0.6518986 / 885 x 1.5
    assert dxl.position_kp(xl430, 640, extended) == pytest.approx(5.524565, rel=1e-6)
    assert dxl.position_kv(xl430, 4000, extended) == pytest.approx(0.2762282, rel=1e-6)
    # the XL330's measured divisor 256: 400 / 256 = 1.5625; 1.5625 x 651.8986 / 885 x 0.52 = 0.598495
    assert dxl.position_kp(xl330, 400, extended) == pytest.approx(0.598495, rel=1e-6)
    # current-based position: 400 / 128 = 3.125 mA per tick; 3.125 x 651.8986 x 0.001 A x (0.52 / 1.47 = 0.3537415 N m/A)
    assert dxl.position_kp(xl330, 400, current_based) == pytest.approx(0.7206363, rel=1e-6)
    assert dxl.current_torque(xl330, 600) == pytest.approx(0.2122449, rel=1e-6)  # 0.6 A x 0.3537415
    assert dxl.back_emf_damping(xl430) == pytest.approx(0.2348188, rel=1e-6)  # 1.5 / 6.387905
    assert dxl.back_emf_damping(xl330) == pytest.approx(0.0482100, rel=1e-5)  # 0.52 / 10.786135


def test_ticks_map_to_radians_about_the_centre_tick() -> None:
    assert dxl.ticks_to_radians(2048) == 0.0
    assert dxl.ticks_to_radians(3072) == pytest.approx(math.pi / 2)  # a quarter turn of 4096 ticks
    assert dxl.ticks_to_radians(0) == pytest.approx(-math.pi)
    assert dxl.radians_to_ticks(-math.pi / 2) == 1024


# ---------------------------------------------------------------- the stream parser


def test_parser_finds_packets_split_at_every_byte() -> None:
    stream = PING_1 + b"\x00\x13" + WRITE_GOAL_POSITION_512 + READ_PRESENT_POSITION_1
    for cut in range(len(stream) + 1):
        parser = dxl.PacketParser()
        packets = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [p.raw for p in packets] == [PING_1, WRITE_GOAL_POSITION_512, READ_PRESENT_POSITION_1]
        assert parser.rejected == 0 and parser.skipped_bytes == 2


def test_bad_crc_is_rejected_counted_and_the_next_packet_still_found() -> None:
    bad = WRITE_GOAL_POSITION_512[:-1] + bytes([WRITE_GOAL_POSITION_512[-1] ^ 0x01])
    parser = dxl.PacketParser()
    assert [p.raw for p in parser.feed(bad + PING_1)] == [PING_1]
    assert parser.rejected == 1


def test_torn_packet_is_rejected_counted_and_the_next_packet_still_found() -> None:
    parser = dxl.PacketParser()
    assert parser.feed(WRITE_GOAL_POSITION_512[:9]) == []  # waits: the rest may still come
    assert [p.raw for p in parser.feed(PING_1)] == [PING_1]  # the ping's header lands inside the write's body
    assert parser.rejected == 1
    parser = dxl.PacketParser()  # torn just before the CRC: the ping's first bytes become a wrong CRC
    assert [p.raw for p in parser.feed(WRITE_GOAL_POSITION_512[:-2] + PING_1)] == [PING_1]
    assert parser.rejected == 1


def test_impossible_length_is_rejected() -> None:
    parser = dxl.PacketParser()
    assert parser.feed(bytes.fromhex("FF FF FD 00 01 02 00") + PING_1) == [dxl.PacketParser().feed(PING_1)[0]]
    assert parser.rejected == 1
    parser = dxl.PacketParser()
    assert parser.feed(bytes.fromhex("FF FF FD 00 01 FF FF 03") + PING_1)[0].raw == PING_1
    assert parser.rejected == 1


# ---------------------------------------------------------------- fuzz

instruction_packets = st.builds(
    sdk_frame,
    st.sampled_from([1, 2, 3, 6, 7, 0xFE]),
    st.sampled_from(list(dxl.Instruction)),
    st.binary(max_size=24),
)


@st.composite
def mutated(draw: st.DrawFn, packets: st.SearchStrategy[bytes]) -> bytes:
    """A packet with a flipped, replaced, dropped or inserted byte, or cut short."""
    packet = bytearray(draw(packets))
    kind = draw(st.sampled_from(["flip", "replace", "drop", "insert", "cut"]))
    at = draw(st.integers(0, len(packet) - 1))
    if kind == "flip":
        packet[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "replace":
        packet[at] = draw(st.integers(0, 255))
    elif kind == "drop":
        del packet[at]
    elif kind == "insert":
        packet.insert(at, draw(st.integers(0, 255)))
    else:
        del packet[at:]
    return bytes(packet)


chunks = st.one_of(instruction_packets, mutated(instruction_packets), st.binary(min_size=1, max_size=30))


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunks, min_size=1, max_size=6), st.lists(st.integers(0, 200), max_size=4))
def test_fuzz_parser_returns_only_packets_with_a_good_crc(parts: list[bytes], cuts: list[int]) -> None:
    """About 10,000 valid, mutated and random chunks (3,000 streams of 1-6) split at random points."""
    stream = b"".join(parts)
    parser = dxl.PacketParser()
    packets = []
    with within(2.0):
        at = 0
        for cut in sorted(cuts) + [len(stream)]:
            packets += parser.feed(stream[at:cut])
            at = max(at, cut)
    for packet in packets:
        assert well_formed(packet.raw) and len(packet.raw) == 7 + int.from_bytes(packet.raw[5:7], "little")
        assert dxl.frame(packet.id, packet.instruction, packet.params) == packet.raw
    exact = [p for p in parts if well_formed(p) and len(p) == 7 + int.from_bytes(p[5:7], "little")]
    leading = next((k for k, p in enumerate(parts) if p not in exact), len(parts))
    assert [p.raw for p in packets[:leading]] == parts[:leading]  # whole packets at the start are all found, in order


@settings(max_examples=4000, deadline=None, database=None)
@given(instruction_packets, st.integers(7, 60), st.integers(1, 255))
def test_fuzz_parser_counts_every_packet_whose_crc_fails(packet: bytes, at: int, flip: int) -> None:
    corrupted = bytearray(packet)
    corrupted[at % (len(packet) - 7) + 7] ^= flip  # anywhere after the header and length: same length, new bytes
    parser = dxl.PacketParser()
    with within(2.0):
        found = parser.feed(bytes(corrupted))
    if well_formed(bytes(corrupted)):  # the CRC still matches: a valid (different) packet
        assert len(found) == 1 and parser.rejected == 0
    else:
        assert found == [] and parser.rejected == 1
