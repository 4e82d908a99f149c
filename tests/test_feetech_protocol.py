"""The Feetech codec alone: hand-computed packets, sign-magnitude values, and the stream decoder under fuzz.

Packet bytes below are worked out by hand from the wire format
(``FF FF ID LEN CODE PARAMS CHK``, LEN = params + 2, CHK = ~(ID + LEN + CODE +
params) & 0xFF); tests/test_feetech_firmware.py checks that scservo_sdk sends
exactly these bytes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simrl.deploy.buses.feetech.protocol import (
    REGISTERS,
    Packet,
    PacketStream,
    checksum,
    decode_sign_magnitude,
    describe_error,
    encode_sign_magnitude,
    packet_bytes,
    radians_to_ticks,
    ticks_to_radians,
)

# ping id 1: sum 01+02+01 = 0x04, ~0x04 = 0xFB
PING_1 = bytes.fromhex("FF FF 01 02 01 FB")
# read id 1, Present_Position (0x38), 2 bytes: sum 01+04+02+38+02 = 0x41, ~0x41 = 0xBE
READ_1_POSITION = bytes.fromhex("FF FF 01 04 02 38 02 BE")
# write id 1, Goal_Position (0x2A) = 2048 = 00 08: sum 01+05+03+2A+00+08 = 0x3B, ~0x3B = 0xC4
WRITE_1_GOAL_2048 = bytes.fromhex("FF FF 01 05 03 2A 00 08 C4")
# sync write Goal_Position, id 1 <- 2048 (00 08), id 2 <- 1024 (00 04); 8 params, LEN 0x0A:
# sum FE+0A+83+2A+02+01+00+08+02+00+04 = 454 = 0x1C6, low byte 0xC6, ~0xC6 = 0x39
SYNC_WRITE_GOALS = bytes.fromhex("FF FF FE 0A 83 2A 02 01 00 08 02 00 04 39")
# sync read Present_Position..Present_Load (0x38, 6 bytes) from ids 1, 2: LEN 6,
# sum FE+06+82+38+06+01+02 = 455 = 0x1C7, ~0xC7 = 0x38
SYNC_READ_STATE_1_2 = bytes.fromhex("FF FF FE 06 82 38 06 01 02 38")
# status of id 1, no error, data 00 08 (2048): sum 01+04+00+00+08 = 0x0D, ~0x0D = 0xF2
STATUS_1_2048 = bytes.fromhex("FF FF 01 04 00 00 08 F2")
# status of id 1 to a ping, no error: sum 01+02+00 = 3, ~3 = 0xFC
STATUS_1_PING = bytes.fromhex("FF FF 01 02 00 FC")


@pytest.mark.parametrize(
    ("servo_id", "code", "params", "expected"),
    [
        (1, 0x01, b"", PING_1),
        (1, 0x02, bytes([0x38, 2]), READ_1_POSITION),
        (1, 0x03, bytes([0x2A, 0x00, 0x08]), WRITE_1_GOAL_2048),
        (0xFE, 0x83, bytes.fromhex("2A 02 01 00 08 02 00 04"), SYNC_WRITE_GOALS),
        (0xFE, 0x82, bytes.fromhex("38 06 01 02"), SYNC_READ_STATE_1_2),
        (1, 0x00, bytes([0x00, 0x08]), STATUS_1_2048),
        (1, 0x00, b"", STATUS_1_PING),
    ],
)
def test_packets_match_hand_computed_bytes(servo_id: int, code: int, params: bytes, expected: bytes) -> None:
    assert packet_bytes(servo_id, code, params) == expected
    assert checksum(expected[2:-1]) == expected[-1]


def test_checksum_is_the_inverted_low_byte_of_the_sum() -> None:
    assert checksum(bytes([0x01, 0x02, 0x01])) == 0xFB
    assert checksum(bytes([0xFF, 0x01])) == 0xFF  # 0x100: low byte 0, inverted 0xFF
    assert checksum(b"") == 0xFF


@pytest.mark.parametrize(
    ("register", "value", "raw"),
    [
        ("Homing_Offset", -100, bytes.fromhex("64 08")),  # 100 = 0x064, sign bit 11 = 0x800 -> 0x864
        ("Homing_Offset", 2047, bytes.fromhex("FF 07")),
        ("Present_Load", -500, bytes.fromhex("F4 05")),  # 500 = 0x1F4, sign bit 10 = 0x400 -> 0x5F4
        ("Present_Velocity", -1, bytes.fromhex("01 80")),  # sign bit 15
        ("Goal_Position", 4095, bytes.fromhex("FF 0F")),
        ("Model_Number", 777, bytes.fromhex("09 03")),  # 777 = 0x0309, little-endian
    ],
)
def test_sign_magnitude_registers_match_hand_computed_bytes(register: str, value: int, raw: bytes) -> None:
    reg = REGISTERS[register]
    assert reg.encode(value) == raw
    assert reg.decode(raw) == value


@settings(database=None)  # tests write only under tmp_path: no example database in the working tree
@given(st.sampled_from([10, 11, 15]).flatmap(lambda bit: st.tuples(st.just(bit), st.integers(-(2**bit) + 1, 2**bit - 1))))
def test_sign_magnitude_round_trips(bit_and_value: tuple[int, int]) -> None:
    bit, value = bit_and_value
    raw = encode_sign_magnitude(value, bit)
    assert 0 <= raw < 1 << (bit + 1)
    assert decode_sign_magnitude(raw, bit) == value


def test_sign_magnitude_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        encode_sign_magnitude(2048, 11)
    with pytest.raises(ValueError):
        REGISTERS["P_Coefficient"].encode(256)


def test_ticks_and_radians() -> None:
    assert ticks_to_radians(2048) == 0.0
    assert ticks_to_radians(3072) == pytest.approx(3.141592653589793 / 2)  # a quarter turn past the centre
    assert radians_to_ticks(-3.141592653589793) == 0
    assert radians_to_ticks(ticks_to_radians(1234)) == 1234


def test_error_bits_decode_to_reasons() -> None:
    assert describe_error(0) == ""
    assert describe_error(0x20) == "overload"
    assert describe_error(0x05) == "input voltage, overheat"
    assert describe_error(0x40) == "error bit 6"


# -- the stream decoder


def _feed_in_pieces(stream: PacketStream, data: bytes, cuts: list[int], now: float = 0.0) -> list[Packet]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    out: list[Packet] = []
    for a, b in zip(points, points[1:]):
        out += stream.feed(data[a:b], now)
    return out


def test_decoder_rejects_a_wrong_checksum_and_finds_the_next_packet() -> None:
    stream = PacketStream(gap_s=1.0)
    bad = WRITE_1_GOAL_2048[:-1] + b"\xc5"
    packets = stream.feed(bad + PING_1, 0.0)
    assert packets == [Packet(1, 0x01, b"")]
    assert stream.bad_checksum == 1 and stream.torn == 0


def test_decoder_finds_a_packet_a_torn_one_swallowed() -> None:
    stream = PacketStream(gap_s=1.0)
    torn = WRITE_1_GOAL_2048[:5]  # header, id, LEN 5, WRITE: 4 bytes of it never come
    packets = stream.feed(torn + READ_1_POSITION, 0.0)
    assert packets == [Packet(1, 0x02, bytes([0x38, 2]))]
    assert stream.rejected == 1


def test_decoder_drops_a_torn_packet_after_an_idle_gap() -> None:
    stream = PacketStream(gap_s=0.01)
    assert stream.feed(bytes.fromhex("FF FF 01 F0 03"), 0.0) == []  # LEN 0xF0 would swallow 240 more bytes
    assert stream.feed(PING_1, 0.02) == [Packet(1, 0x01, b"")]
    assert stream.torn == 1


def test_decoder_counts_noise_and_keeps_a_trailing_ff() -> None:
    stream = PacketStream(gap_s=1.0)
    assert stream.feed(b"\x00\x12\xff", 0.0) == []
    assert stream.feed(PING_1[1:], 0.0) == [Packet(1, 0x01, b"")]  # the kept FF was the header's first byte
    assert stream.noise_bytes == 2


# -- fuzz: hypothesis feeds the decoder valid, mutated and random packets in any split

_IDS = st.one_of(st.integers(0, 6), st.just(0xFE), st.integers(0, 0xFE))
_ADDRESSES = st.one_of(st.sampled_from([r.address for r in REGISTERS.values()]), st.integers(0, 255))


@st.composite
def instruction_packets(draw: st.DrawFn) -> bytes:
    """A well-formed instruction packet of any kind the bus uses (and a few it does not)."""
    kind = draw(st.sampled_from(["ping", "read", "write", "sync_read", "sync_write", "other"]))
    servo_id = draw(_IDS)
    if kind == "ping":
        return packet_bytes(servo_id, 0x01)
    if kind == "read":
        return packet_bytes(servo_id, 0x02, bytes([draw(_ADDRESSES), draw(st.integers(0, 90))]))
    if kind == "write":
        return packet_bytes(servo_id, draw(st.sampled_from([0x03, 0x04])), bytes([draw(_ADDRESSES)]) + draw(st.binary(min_size=1, max_size=6)))
    if kind == "sync_read":
        ids = draw(st.lists(st.integers(0, 8), min_size=1, max_size=6))
        return packet_bytes(0xFE, 0x82, bytes([draw(_ADDRESSES), draw(st.integers(1, 8))] + ids))
    if kind == "sync_write":
        size = draw(st.integers(1, 3))
        groups = draw(st.lists(st.tuples(st.integers(0, 8), st.binary(min_size=size, max_size=size)), min_size=1, max_size=6))
        return packet_bytes(0xFE, 0x83, bytes([draw(_ADDRESSES), size]) + b"".join(bytes([i]) + d for i, d in groups))
    return packet_bytes(servo_id, draw(st.integers(0, 255)), draw(st.binary(min_size=0, max_size=8)))


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """A valid packet with one mutation: substituted, inserted or deleted bytes, a flipped bit, or a cut."""
    data = bytearray(draw(instruction_packets()))
    how = draw(st.sampled_from(["substitute", "insert", "delete", "flip", "truncate", "scramble"]))
    at = draw(st.integers(0, len(data) - 1))
    if how == "substitute":
        data[at] = (data[at] + draw(st.integers(1, 255))) & 0xFF
    elif how == "insert":
        data.insert(at, draw(st.integers(0, 255)))
    elif how == "delete":
        del data[at]
    elif how == "flip":
        data[at] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        del data[max(at, 1) :]
    else:  # several bytes at once: about 1 in 256 of these still passes the 8-bit checksum
        for index in draw(st.lists(st.integers(0, len(data) - 1), min_size=2, max_size=4)):
            data[index] = draw(st.integers(0, 255))
    return bytes(data)


def valid_packets_within(data: bytes) -> list[bytes]:
    """Every whole packet with a good checksum that starts anywhere in ``data`` (the fuzz oracle).

    It uses ``checksum``, which the hand-computed vectors above pin down, and
    not the stream decoder under test.
    """
    found = []
    for start in range(len(data) - 5):
        if data[start : start + 2] != b"\xff\xff" or data[start + 2] == 0xFF or data[start + 3] < 2:
            continue
        end = start + data[start + 3] + 4
        if end <= len(data) and checksum(data[start + 2 : end - 1]) == data[end - 1]:
            found.append(data[start:end])
    return found


# A deadline turns a hang into a failure; no example database (tests write only under tmp_path).
FUZZ = settings(max_examples=2500, deadline=timedelta(milliseconds=500), database=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(instruction_packets(), min_size=1, max_size=4), st.lists(st.integers(0, 200), max_size=6))
def test_fuzz_valid_packets_in_any_split_all_come_out(packets: list[bytes], cuts: list[int]) -> None:
    stream = PacketStream(gap_s=1.0)
    out = _feed_in_pieces(stream, b"".join(packets), cuts)
    assert [packet_bytes(p.servo_id, p.code, p.params) for p in out] == packets
    assert stream.rejected == 0 and stream.noise_bytes == 0


@FUZZ
@given(mutants(), st.lists(st.integers(0, 200), max_size=4))
def test_fuzz_a_mutant_is_passed_on_only_if_it_holds_a_valid_packet(mutant: bytes, cuts: list[int]) -> None:
    stream = PacketStream(gap_s=0.01)
    out = _feed_in_pieces(stream, mutant, cuts)
    out += stream.feed(b"", 1.0)  # an idle line: whatever is left is torn
    valid = valid_packets_within(mutant)
    assert all(packet_bytes(p.servo_id, p.code, p.params) in valid for p in out)
    if not valid:
        assert out == []
        assert stream.rejected + stream.noise_bytes > 0, "an invalid packet went uncounted"


@FUZZ
@given(st.lists(st.one_of(st.binary(min_size=0, max_size=40), instruction_packets(), mutants()), min_size=1, max_size=6), st.lists(st.integers(0, 300), max_size=8))
def test_fuzz_any_stream_gives_only_valid_packets_from_the_input(items: list[bytes], cuts: list[int]) -> None:
    stream = PacketStream(gap_s=0.01)
    data = b"".join(items)
    out = _feed_in_pieces(stream, data, cuts)
    for packet in out:
        raw = packet_bytes(packet.servo_id, packet.code, packet.params)
        assert raw in data and checksum(raw[2:-1]) == raw[-1]
