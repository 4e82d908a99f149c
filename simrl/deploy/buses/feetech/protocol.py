"""The Feetech STS/SMS serial protocol ("protocol 0") as pure functions: no I/O.

The bus talks to the servos through the vendor SDK (``scservo_sdk``); the
emulator (``simrl.deploy.emulation.feetech_firmware``) answers it with this
codec. Keeping the facts in one place means a mistake in the table shows up as
a disagreement with the SDK in the tests, not as two errors that cancel out.

Wire format (Feetech's Dynamixel-1.0-like "protocol 0"; scservo_sdk
``protocol_packet_handler.py``, Feetech's ``SCS.cpp`` in ftservo/FTServo)::

    FF FF ID LEN CODE PARAMS... CHK      LEN = len(PARAMS) + 2
                                         CHK = ~(ID + LEN + CODE + sum(PARAMS)) & 0xFF

CODE is the instruction in a request and the error byte in a servo's status
reply. Multi-byte values are little-endian (the SDK with ``protocol_end`` 0).
Signed registers use sign-magnitude with a per-register sign bit, not two's
complement (Feetech's ``SMS_STS.cpp``: ``ReadPos``/``WritePosEx`` bit 15,
``ReadLoad`` bit 10; LeRobot ``motors/feetech/tables.py``: ``Homing_Offset`` bit 11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Mapping

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE  # scservo_def.py BROADCAST_ID; no servo replies to it, except where it is asked to (ping, read)
MAX_ID = 0xFD  # the SDK's rxPacket drops status packets from ids above 0xFD
STS3215_MODEL = 777  # LeRobot tables.py MODEL_NUMBER_TABLE["sts3215"]; ROBOTS.md

TICKS_PER_TURN = 4096  # 12-bit magnetic encoder (LeRobot MODEL_RESOLUTION["sts3215"])
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_TURN
CENTER_TICK = TICKS_PER_TURN // 2  # half a turn: where LeRobot's homing puts the calibration pose (feetech.py _get_half_turn_homings)
RETURN_DELAY_UNIT_S = 2e-6  # Return_Delay_Time counts 2 µs (LeRobot feetech.py: the default 250 is 500 µs)


class Instruction(IntEnum):
    """Instruction codes (scservo_def.py; Feetech INST.h)."""

    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


# Status error bits and what they mean (scservo_sdk protocol_packet_handler.py ERRBIT_*,
# getRxPacketError: "Input voltage", "Angle sen", "Overheat", "OverEle", "Overload").
ERROR_BITS: Mapping[int, str] = MappingProxyType(
    {
        0x01: "input voltage",
        0x02: "angle sensor",
        0x04: "overheat",
        0x08: "over-current",
        0x20: "overload",
    }
)


def describe_error(error: int) -> str:
    """The reasons set in a status error byte, e.g. ``"overheat, overload"``; ``""`` for 0."""
    reasons = [ERROR_BITS.get(1 << bit, f"error bit {bit}") for bit in range(8) if error >> bit & 1]
    return ", ".join(reasons)


# Baud_Rate register values (Feetech INST.h in ftservo/FTServo). LeRobot's tables.py
# agrees on 0..4 and lists 5, 6, 7 as 57600, 38400, 19200; we follow the maker.
BAUD_RATES: Mapping[int, int] = MappingProxyType(
    {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 76_800, 6: 57_600, 7: 38_400}
)


@dataclass(frozen=True)
class Register:
    """One control-table entry of the STS3215."""

    name: str
    address: int
    size: int  # bytes, 1 or 2
    eeprom: bool  # kept across power cycles; writes need Lock = 0
    writable: bool
    sign_bit: int | None = None  # sign-magnitude sign bit, None for unsigned

    def encode(self, value: int) -> bytes:
        """``value`` as the register's little-endian bytes (sign-magnitude where the register is signed)."""
        raw = value if self.sign_bit is None else encode_sign_magnitude(value, self.sign_bit)
        if not 0 <= raw < 1 << 8 * self.size:
            raise ValueError(f"{self.name}: value {value} does not fit in {self.size} byte(s)")
        return raw.to_bytes(self.size, "little")

    def decode(self, data: bytes) -> int:
        """The register's value from its little-endian bytes."""
        raw = int.from_bytes(data[: self.size], "little")
        return raw if self.sign_bit is None else decode_sign_magnitude(raw, self.sign_bit)


def _table(*rows: tuple[str, int, int, bool, bool, int | None]) -> Mapping[str, Register]:
    return MappingProxyType({name: Register(name, address, size, eeprom, writable, sign) for name, address, size, eeprom, writable, sign in rows})


# The STS3215 control table. Addresses and sizes: LeRobot tables.py STS_SMS_SERIES_CONTROL_TABLE
# (from Feetech's STS e-manual) and Feetech's SMS_STS.h; the EEPROM area is addresses 0..39
# plus the factory block 80..86 (SMS_STS.h "EPROM" sections; LeRobot's "EPROM"/"Factory"
# comments). Sign bits: SMS_STS.cpp (positions, velocities, current 15; load 10), tables.py
# (Homing_Offset 11). Read-only: the model/firmware numbers and the Present_* block.
EEPROM, RAM, RW, RO = True, False, True, False
REGISTERS: Mapping[str, Register] = _table(
    ("Firmware_Major_Version", 0, 1, EEPROM, RO, None),
    ("Firmware_Minor_Version", 1, 1, EEPROM, RO, None),
    ("Model_Number", 3, 2, EEPROM, RO, None),
    ("ID", 5, 1, EEPROM, RW, None),
    ("Baud_Rate", 6, 1, EEPROM, RW, None),
    ("Return_Delay_Time", 7, 1, EEPROM, RW, None),
    ("Response_Status_Level", 8, 1, EEPROM, RW, None),
    ("Min_Position_Limit", 9, 2, EEPROM, RW, None),
    ("Max_Position_Limit", 11, 2, EEPROM, RW, None),
    ("Max_Temperature_Limit", 13, 1, EEPROM, RW, None),
    ("Max_Voltage_Limit", 14, 1, EEPROM, RW, None),
    ("Min_Voltage_Limit", 15, 1, EEPROM, RW, None),
    ("Max_Torque_Limit", 16, 2, EEPROM, RW, None),
    ("Phase", 18, 1, EEPROM, RW, None),
    ("Unloading_Condition", 19, 1, EEPROM, RW, None),
    ("LED_Alarm_Condition", 20, 1, EEPROM, RW, None),
    ("P_Coefficient", 21, 1, EEPROM, RW, None),
    ("D_Coefficient", 22, 1, EEPROM, RW, None),
    ("I_Coefficient", 23, 1, EEPROM, RW, None),
    ("Minimum_Startup_Force", 24, 2, EEPROM, RW, None),
    ("CW_Dead_Zone", 26, 1, EEPROM, RW, None),
    ("CCW_Dead_Zone", 27, 1, EEPROM, RW, None),
    ("Protection_Current", 28, 2, EEPROM, RW, None),
    ("Angular_Resolution", 30, 1, EEPROM, RW, None),
    ("Homing_Offset", 31, 2, EEPROM, RW, 11),
    ("Operating_Mode", 33, 1, EEPROM, RW, None),
    ("Protective_Torque", 34, 1, EEPROM, RW, None),
    ("Protection_Time", 35, 1, EEPROM, RW, None),
    ("Overload_Torque", 36, 1, EEPROM, RW, None),
    ("Velocity_P_Coefficient", 37, 1, EEPROM, RW, None),
    ("Over_Current_Protection_Time", 38, 1, EEPROM, RW, None),
    ("Velocity_I_Coefficient", 39, 1, EEPROM, RW, None),
    ("Torque_Enable", 40, 1, RAM, RW, None),
    ("Acceleration", 41, 1, RAM, RW, None),
    ("Goal_Position", 42, 2, RAM, RW, 15),
    ("Goal_Time", 44, 2, RAM, RW, None),
    ("Goal_Velocity", 46, 2, RAM, RW, 15),
    ("Torque_Limit", 48, 2, RAM, RW, None),
    ("Lock", 55, 1, RAM, RW, None),
    ("Present_Position", 56, 2, RAM, RO, 15),
    ("Present_Velocity", 58, 2, RAM, RO, 15),
    ("Present_Load", 60, 2, RAM, RO, 10),
    ("Present_Voltage", 62, 1, RAM, RO, None),
    ("Present_Temperature", 63, 1, RAM, RO, None),
    ("Status", 65, 1, RAM, RO, None),
    ("Moving", 66, 1, RAM, RO, None),
    ("Present_Current", 69, 2, RAM, RO, 15),
    ("Moving_Velocity_Threshold", 80, 1, EEPROM, RW, None),
    ("DTs", 81, 1, EEPROM, RW, None),
    ("Velocity_Unit_Factor", 82, 1, EEPROM, RW, None),
    ("Hts", 83, 1, EEPROM, RW, None),
    ("Maximum_Velocity_Limit", 84, 1, EEPROM, RW, None),
    ("Maximum_Acceleration", 85, 1, EEPROM, RW, None),
    ("Acceleration_Multiplier", 86, 1, EEPROM, RW, None),
)
TABLE_SIZE = 87  # addresses 0..86; the last entry is Acceleration_Multiplier
HOMING_OFFSET_LIMIT = (1 << 11) - 1  # 2047: Homing_Offset is sign-magnitude with the sign in bit 11


def register_at(address: int) -> Register | None:
    """The register whose bytes include ``address``, None for a gap in the table."""
    return _BYTE_OWNER.get(address)


_BYTE_OWNER: Mapping[int, Register] = MappingProxyType(
    {reg.address + k: reg for reg in REGISTERS.values() for k in range(reg.size)}
)


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """``value`` as magnitude in bits below ``sign_bit``, the sign in ``sign_bit`` (Feetech's signed registers)."""
    magnitude = abs(value)
    if magnitude >= 1 << sign_bit:
        raise ValueError(f"magnitude {magnitude} does not fit below sign bit {sign_bit}")
    return magnitude | (1 << sign_bit if value < 0 else 0)


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    """The signed value of a sign-magnitude register; bits above ``sign_bit`` are ignored."""
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw >> sign_bit & 1 else magnitude


def checksum(body: bytes) -> int:
    """The checksum of a packet's ID..last parameter bytes."""
    return ~sum(body) & 0xFF


def packet_bytes(servo_id: int, code: int, params: bytes = b"") -> bytes:
    """A whole packet: an instruction (``code`` = instruction) or a status reply (``code`` = error byte)."""
    if len(params) > 253:
        raise ValueError(f"{len(params)} parameter bytes do not fit one packet (at most 253)")
    body = bytes((servo_id, len(params) + 2, code)) + bytes(params)
    return HEADER + body + bytes((checksum(body),))


@dataclass(frozen=True)
class Packet:
    """One whole packet off the wire with a valid checksum."""

    servo_id: int
    code: int  # instruction, or the error byte of a status reply
    params: bytes


class PacketStream:
    """Whole packets out of bytes that arrive in any split, with garbage and torn packets counted, never passed on.

    A candidate starts at ``FF FF``; its LEN byte says where it ends. A
    candidate whose checksum fails is counted (``bad_checksum``) and the search
    resumes one byte after its start, so a good packet that a torn one swallowed
    is still found. A candidate still incomplete when the line has been quiet for
    ``gap_s`` is counted as torn and dropped (a receiver that waits forever
    for the rest of a torn packet would swallow the packets after it; Feetech
    does not document its own timeout, so the gap is our choice). A header whose
    LEN is below 2 is torn at once: no packet is that short. Bytes skipped
    while looking for a header are ``noise_bytes``.
    """

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self._buffer = bytearray()
        self._last = -math.inf
        self.bad_checksum = 0
        self.torn = 0
        self.noise_bytes = 0

    @property
    def rejected(self) -> int:
        """Candidate packets refused: bad checksums plus torn packets."""
        return self.bad_checksum + self.torn

    def reset(self) -> None:
        """Forget buffered bytes and counts (a power cycle)."""
        self._buffer.clear()
        self._last = -math.inf
        self.bad_checksum = self.torn = self.noise_bytes = 0

    def feed(self, data: bytes, now: float) -> list[Packet]:
        """Take ``data`` that arrived at time ``now`` (s, any clock); return the packets it completes, in order."""
        if self._buffer and now - self._last > self.gap_s:
            self._drop_partial()
        if data:
            self._last = now
        self._buffer += data
        packets: list[Packet] = []
        while (packet := self._next()) is not None:
            packets.append(packet)
        return packets

    def _drop_partial(self) -> None:
        """An idle line: a started packet will never complete."""
        if self._buffer.startswith(HEADER):
            self.torn += 1
        else:
            self.noise_bytes += len(self._buffer)
        self._buffer.clear()

    def _skip(self, count: int) -> None:
        self.noise_bytes += count
        del self._buffer[:count]

    def _next(self) -> Packet | None:
        """The next whole packet in the buffer, consuming what precedes it; None when more bytes are needed."""
        buffer = self._buffer
        while True:
            start = buffer.find(HEADER)
            if start < 0:  # keep a trailing FF: it may be the first header byte
                self._skip(len(buffer) - (1 if buffer.endswith(b"\xff") else 0))
                return None
            self._skip(start)
            if len(buffer) < 4:
                return None
            if buffer[2] == 0xFF:  # FF FF FF: the first FF is noise, the header starts one later
                self._skip(1)
                continue
            length = buffer[3]
            if length < 2:
                self.torn += 1
                del buffer[:2]
                continue
            total = length + 4
            if len(buffer) < total:
                return None
            body = bytes(buffer[2 : total - 1])
            if checksum(body) != buffer[total - 1]:
                self.bad_checksum += 1
                self._skip(1)
                continue
            del buffer[:total]
            return Packet(servo_id=body[0], code=body[2], params=body[3:])


def ticks_to_radians(ticks: float, center: int = CENTER_TICK) -> float:
    """A Present/Goal_Position value as an angle from ``center`` (rad)."""
    return (ticks - center) * RAD_PER_TICK


def radians_to_ticks(radians: float, center: int = CENTER_TICK) -> int:
    """An angle from ``center`` (rad) as the nearest position tick."""
    return int(round(center + radians / RAD_PER_TICK))
