"""Dynamixel Protocol 2.0 as bytes: framing, CRC-16, byte stuffing, status errors, and the X-series control tables.

A pure codec (no I/O). The bus (``bus.py``) speaks through ROBOTIS' own
``dynamixel_sdk`` and takes only the control tables and units from here; the
emulator (``simrl.deploy.emulation.dynamixel_firmware``) frames and parses with
it. Keeping the SDK on the client side means a mistake in this codec shows up
as an SDK that cannot talk to the emulator, not as two errors that cancel out.

Sources (ROBOTIS e-manual, github.com/ROBOTIS-GIT/emanual):
- ``docs/en/dxl/protocol2.md`` (commit 0117956): packet layout, instructions,
  the error field, stuffing, the worked examples the tests replay;
- ``docs/en/dxl/x/xl430-w250.md`` (00a4b78), ``xl330-m288.md`` (028a13d),
  ``xm430-w350.md`` (0855172): control tables, defaults, ranges, specifications;
- ``_includes/en/dxl/control_table_baudrate_2.md``, ``control_table_shutdown.md``
  (hardware error bits), ``x/position_pid_gain.md`` (gain conversions),
  ``x/homing_offset.md``, ``x/torque_enable.md`` (EEPROM lock).
Model numbers and operating modes agree with /work/shared/ROBOTS.md (LeRobot's
``motors/dynamixel/tables.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from enum import IntEnum
from types import MappingProxyType
from typing import Mapping

# ---------------------------------------------------------------- framing

HEADER = b"\xff\xff\xfd\x00"  # protocol2.md "Instruction Packet": 0xFF 0xFF 0xFD, then Reserved 0x00
BROADCAST_ID = 0xFE  # protocol2.md "Packet ID": 254 makes every device execute the packet
MAX_ID = 252  # protocol2.md: ids 0 ~ 252 (0xFD and 0xFF would read as header bytes)
MAX_PACKET = 1024  # the SDK's TXPACKET_MAX_LEN / RXPACKET_MAX_LEN: longer packets are refused as corrupt
CRC_POLY = 0x8005  # CRC-16, x^16 + x^15 + x^2 + 1, initial value 0, no reflection (ROBOTS.md; e-manual docs/en/dxl/crc)
_STUFF_PATTERN = b"\xff\xff\xfd"  # protocol2.md "Packet Process": after this pattern in INST..params, insert 0xFD


class Instruction(IntEnum):
    """Instruction byte values (protocol2.md "Instruction" table)."""

    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    FACTORY_RESET = 0x06
    REBOOT = 0x08
    CLEAR = 0x10
    STATUS = 0x55
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83
    BULK_READ = 0x92
    BULK_WRITE = 0x93


class ErrorNumber(IntEnum):
    """Bits 0-6 of a status packet's error byte (protocol2.md "Error")."""

    RESULT_FAIL = 0x01
    INSTRUCTION = 0x02
    CRC = 0x03
    DATA_RANGE = 0x04
    DATA_LENGTH = 0x05
    DATA_LIMIT = 0x06
    ACCESS = 0x07


ALERT = 0x80  # bit 7 of the error byte: the device has a hardware error, see Hardware Error Status (70)
ERROR_TEXT: Mapping[int, str] = MappingProxyType(
    {
        ErrorNumber.RESULT_FAIL: "result fail",
        ErrorNumber.INSTRUCTION: "instruction error",
        ErrorNumber.CRC: "CRC error",
        ErrorNumber.DATA_RANGE: "data range error",
        ErrorNumber.DATA_LENGTH: "data length error",
        ErrorNumber.DATA_LIMIT: "data limit error",
        ErrorNumber.ACCESS: "access error",
    }
)

# Hardware Error Status (70) bits, X series (control_table_shutdown.md); bits 1, 6, 7 are unused.
HARDWARE_ERRORS: tuple[tuple[int, str], ...] = (
    (0x01, "input voltage"),
    (0x04, "overheating"),
    (0x08, "motor encoder"),
    (0x10, "electrical shock"),
    (0x20, "overload"),
)


def describe_error(error: int) -> str:
    """A status error byte in words: "" when clear, else e.g. "access error" or "hardware alert"."""
    parts = []
    number = error & ~ALERT
    if number:
        parts.append(ERROR_TEXT.get(number, f"error number {number:#04x}"))
    if error & ALERT:
        parts.append("hardware alert")
    return ", ".join(parts)


def describe_hardware_error(bits: int) -> str:
    """Hardware Error Status bits in words ("overload, overheating"); "" when clear."""
    names = [name for bit, name in HARDWARE_ERRORS if bits & bit]
    unknown = bits & ~sum(bit for bit, _ in HARDWARE_ERRORS)
    if unknown:
        names.append(f"hardware error bits {unknown:#04x}")
    return ", ".join(names)


def _crc_table() -> tuple[int, ...]:
    """The CRC of each byte value shifted into the top of the register: 8 polynomial steps done once per byte value."""
    table = []
    for value in range(256):
        crc = value << 8
        for _ in range(8):
            crc = (crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """Protocol 2.0 CRC of ``data`` (header through the last parameter, stuffing included), table-driven."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def stuff(body: bytes) -> bytes:
    """``body`` (instruction + parameters) with 0xFD inserted after every FF FF FD, so no header appears inside."""
    out = bytearray()
    for byte in body:
        out.append(byte)
        if byte == 0xFD and out[-3:] == _STUFF_PATTERN:
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Undo ``stuff``: drop the 0xFD that follows each FF FF FD."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        skip = out[-3:] == _STUFF_PATTERN and i + 1 < len(body) and body[i + 1] == 0xFD
        i += 2 if skip else 1
    return bytes(out)


def frame(packet_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A whole packet on the wire: header, id, length, stuffed instruction + params, CRC (both little-endian)."""
    body = stuff(bytes((instruction,)) + bytes(params))
    head = HEADER + bytes((packet_id,)) + (len(body) + 2).to_bytes(2, "little")
    return head + body + crc16(head + body).to_bytes(2, "little")


def status_packet(servo_id: int, error: int, data: bytes = b"") -> bytes:
    """A device's status packet: instruction 0x55, the error byte, then the data (protocol2.md "Status Packet")."""
    return frame(servo_id, Instruction.STATUS, bytes((error,)) + bytes(data))


@dataclass(frozen=True)
class Packet:
    """One packet as parsed: id, instruction, parameters with the stuffing removed, and its raw wire bytes."""

    id: int
    instruction: int
    params: bytes
    raw: bytes

    @property
    def error(self) -> int:
        """A status packet's error byte."""
        return self.params[0]

    @property
    def data(self) -> bytes:
        """A status packet's data after the error byte."""
        return self.params[1:]


class PacketParser:
    """Finds whole packets in a byte stream split anywhere; counts and drops the bad ones.

    A candidate starts at a header (FF FF FD 00). It is *rejected* (counted in
    ``rejected``, never returned) when its length field is impossible, when its
    CRC does not match, or when it is torn: another header begins inside its
    instruction..parameter bytes, which stuffing rules out for a real packet,
    so the first packet lost its tail. After a rejection the search resumes
    one byte further on, so a good packet swallowed by a torn one is still
    found. Bytes outside any candidate are counted in ``skipped_bytes``.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.rejected = 0
        self.skipped_bytes = 0

    def reset(self) -> None:
        """Forget buffered bytes and counts."""
        self._buffer.clear()
        self.rejected = 0
        self.skipped_bytes = 0

    def feed(self, data: bytes) -> list[Packet]:
        """Take bytes as they arrived; return every packet completed by them, in order."""
        self._buffer += data
        packets: list[Packet] = []
        while (packet := self._next()) is not None:
            packets.append(packet)
        return packets

    def _next(self) -> Packet | None:
        """The next good packet in the buffer, or None when more bytes are needed (bad candidates are dropped on the way)."""
        buffer = self._buffer
        while True:
            start = buffer.find(HEADER)
            if start < 0:  # keep a tail that may be the start of a header split across reads
                keep = next(n for n in (3, 2, 1, 0) if n <= len(buffer) and buffer.endswith(HEADER[:n]))
                self._drop(len(buffer) - keep)
                return None
            self._drop(start)
            if len(buffer) < 7:
                return None
            length = int.from_bytes(buffer[5:7], "little")
            end = 7 + length
            if length < 3 or end > MAX_PACKET:  # at least instruction + CRC
                self._reject()
                continue
            crc_at = end - 2
            inner = buffer.find(HEADER, 1)
            if 0 < inner and inner + 2 < crc_at:  # a header inside the stuffed region: this packet is torn
                self.rejected += 1
                del buffer[:inner]
                continue
            if len(buffer) < end:
                return None
            raw = bytes(buffer[:end])
            if crc16(raw[:crc_at]) != int.from_bytes(raw[crc_at:], "little"):
                self._reject()
                continue
            del buffer[:end]
            body = unstuff(raw[7:crc_at])
            return Packet(id=raw[4], instruction=body[0], params=body[1:], raw=raw)

    def _drop(self, count: int) -> None:
        self.skipped_bytes += count
        del self._buffer[:count]

    def _reject(self) -> None:
        """Count the candidate at the buffer's start as rejected and look again one byte on."""
        self.rejected += 1
        del self._buffer[:1]


# ---------------------------------------------------------------- control tables

RAM_START = 64  # the EEPROM area is 0..63, the RAM area 64.. (x/*.md "Control Table of EEPROM/RAM Area")
TABLE_END = 148  # one past Backup Ready (147); the indirect-address area (168..) is not modelled
FIRMWARE_VERSION = 52  # what the emulated servos report at Firmware Version (6); any value a real X servo ships with
PWM_FULL_SCALE = 885  # PWM Limit (36) maximum: 885 x 0.113 % = 100 % duty
TICKS_PER_REV = 4096  # x/*.md "Resolution 4096 [pulse/rev]"
CENTRE_TICK = 2048  # half a turn: the horn's centre mark, where our motor-space angle is 0
TICKS_PER_RAD = TICKS_PER_REV / (2.0 * math.pi)  # 651.9 ticks a radian
VELOCITY_UNIT = 0.229 * 2.0 * math.pi / 60.0  # rad/s per Present/Goal Velocity unit (0.229 rev/min)
EXTENDED_POSITION_RANGE = 1_048_575  # Goal Position range outside position mode (control_table_goal_position_2.md)
POSITION_MODES = frozenset({3, 4, 5})  # position, extended position, current-based position
CURRENT_MODE, VELOCITY_MODE, POSITION_MODE, EXTENDED_POSITION_MODE, CURRENT_POSITION_MODE, PWM_MODE = 0, 1, 3, 4, 5, 16
HOMING_OFFSET_LIMIT = 1_044_479  # Homing Offset (20) range, -255 ~ 255 rev (x/homing_offset.md)
# x/homing_offset.md: in Position Control Mode an offset beyond +-1,024 is ignored; the other position modes take any
POSITION_MODE_HOMING_LIMIT = 1_024
MAX_GAIN = 16_383  # the P/I/D and velocity gains' range (x/position_pid_gain.md, x/velocity_pi_gain.md)
KPP_DIVISOR = 128  # x/position_pid_gain.md: KPP = Position P Gain / 128
KPD_DIVISOR = 16  # x/position_pid_gain.md: KPD = Position D Gain / 16
# The e-manual's constants "include sampling time" without giving it: the D term is taken per 1 ms sample (our choice;
# it makes the XL430-W250's factory P/D near critically damped on the OMX, robots/omx/robot.xml).
KPD_SAMPLE_S = 1e-3
DRIVE_MODE_REVERSE = 0x01  # Drive Mode (10) bit 0: Reverse Mode, Goal and Present Position counted the other way (x/drive_mode.md)


@dataclass(frozen=True)
class Register:
    """One control-table item: address, size in bytes, writable or not, power-on value, allowed range."""

    name: str
    address: int
    size: int
    writable: bool
    default: int = 0
    low: int | None = None  # the item's own range (a write outside it: data range error); None: any value its size holds
    high: int | None = None
    signed: bool = False

    @property
    def eeprom(self) -> bool:
        """In the EEPROM area: writable only while Torque Enable is 0 (x/torque_enable.md)."""
        return self.address < RAM_START

    def encode(self, value: int) -> bytes:
        return int(value).to_bytes(self.size, "little", signed=self.signed)

    def decode(self, data: bytes) -> int:
        return int.from_bytes(data, "little", signed=self.signed)


@dataclass(frozen=True)
class ServoModel:
    """An X-series model: its control table, and the one statement of its motor and position loop that the emulated
    servos run and that a robot's MJCF servo model must equal (``position_kp``, ``position_kv``, ``back_emf_damping``).

    The motor figures are the e-manual's at ``voltage``, the supply simrl runs this servo at: where the e-manual lists
    several points, the one the arms simrl models use (ROBOTIS powers the OMX follower at 12 V and its XL330s from the
    kit's DC converter at 5 V: ai_worker_website ``docs/omx/hardware_omx.md``).
    """

    name: str
    number: int  # Model Number (0)
    registers: tuple[Register, ...]
    modes: frozenset[int]  # Operating Mode (11) values it accepts
    baud_rates: Mapping[int, int]  # Baud Rate (8) value -> bit/s
    current_unit: float | None  # A per Present/Goal Current unit; None: no current sensing, 126 is Present Load
    stall_torque: float  # N·m at ``voltage`` (specifications table): the torque at full duty (PWM 885) and no speed
    stall_current: float  # A at ``voltage``
    no_load_speed: float  # rad/s at ``voltage``
    voltage: float  # V, the supply simrl runs the servo at (see above)
    p_divisor: float = KPP_DIVISOR  # Position P Gain per unit of KPP where the loop's output is PWM: the e-manual's, unless measured

    def register(self, name: str) -> Register:
        return self._by_name[name]

    def at(self, address: int) -> Register | None:
        """The item that starts at or covers ``address``; None in a gap."""
        return self._by_byte.get(address)

    def has(self, name: str) -> bool:
        return name in self._by_name

    @cached_property
    def _by_name(self) -> Mapping[str, Register]:
        return {r.name: r for r in self.registers}

    @cached_property
    def _by_byte(self) -> Mapping[int, Register]:
        return {r.address + k: r for r in self.registers for k in range(r.size)}

    def power_on_table(self) -> bytearray:
        """The table's bytes at power-on (gaps read 0), a fresh copy."""
        return bytearray(self._power_on_bytes)

    @cached_property
    def _power_on_bytes(self) -> bytes:
        table = bytearray(TABLE_END)
        for r in self.registers:
            table[r.address : r.address + r.size] = r.encode(r.default)
        return bytes(table)


def _x_series(
    number: int,
    *,
    present_126: str,
    gains: tuple[int, int, int, int, int],  # velocity I, velocity P, position D, position I, position P
    limits: Mapping[str, tuple[int, int | None, int | None]],  # name -> (default, low, high)
    extra: tuple[Register, ...],
) -> tuple[Register, ...]:
    """The items the three X-series tables share, with each model's defaults and ranges (addresses are common)."""

    def limit(name: str, address: int, size: int) -> Register:
        default, low, high = limits[name]
        return Register(name, address, size, True, default, low, high)

    vi, vp, pd, pi, pp = gains
    common = (
        Register("model_number", 0, 2, False, number),
        Register("model_information", 2, 4, False),
        Register("firmware_version", 6, 1, False, FIRMWARE_VERSION),
        Register("id", 7, 1, True, 1, 0, MAX_ID),
        Register("baud_rate", 8, 1, True, 1),  # range: the model's baud_rates
        Register("return_delay_time", 9, 1, True, 250, 0, 254),  # 2 µs units
        limit("drive_mode", 10, 1),
        Register("operating_mode", 11, 1, True, 3),  # range: the model's modes
        Register("secondary_id", 12, 1, True, 255),  # 0 ~ 252; 253 and up switch it off
        limit("protocol_type", 13, 1),
        Register("homing_offset", 20, 4, True, 0, -HOMING_OFFSET_LIMIT, HOMING_OFFSET_LIMIT, signed=True),
        Register("moving_threshold", 24, 4, True, 10, 0, 1_023),
        limit("temperature_limit", 31, 1),
        limit("max_voltage_limit", 32, 2),
        limit("min_voltage_limit", 34, 2),
        Register("pwm_limit", 36, 2, True, PWM_FULL_SCALE, 0, PWM_FULL_SCALE),
        limit("velocity_limit", 44, 4),
        Register("max_position_limit", 48, 4, True, 4_095, 0, 4_095),
        Register("min_position_limit", 52, 4, True, 0, 0, 4_095),
        limit("shutdown", 63, 1),
        Register("torque_enable", 64, 1, True, 0, 0, 1),
        Register("led", 65, 1, True, 0, 0, 1),
        Register("status_return_level", 68, 1, True, 2, 0, 2),
        Register("registered_instruction", 69, 1, False),
        Register("hardware_error_status", 70, 1, False),
        Register("velocity_i_gain", 76, 2, True, vi, 0, MAX_GAIN),
        Register("velocity_p_gain", 78, 2, True, vp, 0, MAX_GAIN),
        Register("position_d_gain", 80, 2, True, pd, 0, MAX_GAIN),
        Register("position_i_gain", 82, 2, True, pi, 0, MAX_GAIN),
        Register("position_p_gain", 84, 2, True, pp, 0, MAX_GAIN),
        Register("feedforward_2nd_gain", 88, 2, True, 0, 0, MAX_GAIN),
        Register("feedforward_1st_gain", 90, 2, True, 0, 0, MAX_GAIN),
        Register("bus_watchdog", 98, 1, True, 0, 0, 127),  # 1 ~ 127 x 20 ms, 0 off
        Register("goal_pwm", 100, 2, True, PWM_FULL_SCALE, signed=True),  # limit: +-PWM Limit (36)
        Register("goal_velocity", 104, 4, True, 0, signed=True),  # limit: +-Velocity Limit (44)
        Register("profile_acceleration", 108, 4, True, 0, 0, 32_767),
        Register("profile_velocity", 112, 4, True, 0, 0, 32_767),
        Register("goal_position", 116, 4, True, 0, signed=True),  # position mode: Min/Max Position Limit
        Register("realtime_tick", 120, 2, False),
        Register("moving", 122, 1, False),
        Register("moving_status", 123, 1, False),
        Register("present_pwm", 124, 2, False, signed=True),
        Register(present_126, 126, 2, False, signed=True),
        Register("present_velocity", 128, 4, False, signed=True),
        Register("present_position", 132, 4, False, signed=True),
        Register("velocity_trajectory", 136, 4, False, signed=True),
        Register("position_trajectory", 140, 4, False, signed=True),
        Register("present_input_voltage", 144, 2, False),
        Register("present_temperature", 146, 1, False),
    )
    return tuple(sorted(common + extra, key=lambda r: r.address))



_BAUD_X430 = MappingProxyType(  # control_table_baudrate_2.md, X430/X540 column
    {0: 9_600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000, 7: 4_500_000}
)
_BAUD_XL330 = MappingProxyType({k: v for k, v in _BAUD_X430.items() if k <= 6})  # same file, xl330 column: no 4.5M


def _rpm(value: float) -> float:
    return value * 2.0 * math.pi / 60.0


XL430_W250 = ServoModel(  # docs/en/dxl/x/xl430-w250.md
    name="xl430-w250",
    number=1060,
    registers=_x_series(
        1060,
        present_126="present_load",  # 0.1 %, -1,000 ~ 1,000
        gains=(1_000, 100, 4_000, 0, 640),
        limits={
            "drive_mode": (0, 0, 13),
            "protocol_type": (2, 1, 2),
            "temperature_limit": (72, 0, 100),
            "max_voltage_limit": (140, 60, 140),
            "min_voltage_limit": (60, 60, 140),
            "velocity_limit": (265, 0, 1_023),
            "shutdown": (52, None, None),
        },
        extra=(
            Register("startup_configuration", 60, 1, True, 0, 0, 3),
            Register("backup_ready", 147, 1, False),
        ),
    ),
    modes=frozenset({1, 3, 4, 16}),
    baud_rates=_BAUD_X430,
    current_unit=None,
    # the e-manual's 12 V point (1.5 N·m at 1.4 A, 61 rev/min; it also lists 1.4 N·m, 1.3 A, 57 rev/min at 11.1 V):
    # the OMX follower runs on 12 V (hardware_omx.md)
    stall_torque=1.5,
    stall_current=1.4,
    no_load_speed=_rpm(61),
    voltage=12.0,
)

XL330_M288 = ServoModel(  # docs/en/dxl/x/xl330-m288.md
    name="xl330-m288",
    number=1200,
    registers=_x_series(
        1200,
        present_126="present_current",  # 1 mA
        gains=(1_600, 180, 0, 0, 400),
        limits={
            "drive_mode": (0, 0, 5),
            "protocol_type": (2, 2, 22),
            "temperature_limit": (70, 0, 100),
            "max_voltage_limit": (70, 31, 70),
            "min_voltage_limit": (35, 31, 70),
            "velocity_limit": (445, 0, 2_047),
            "shutdown": (53, None, None),
        },
        extra=(
            Register("current_limit", 38, 2, True, 1_750, 0, 1_750),
            Register("startup_configuration", 60, 1, True, 0, 0, 3),
            Register("pwm_slope", 62, 1, True, 140, 1, 255),
            Register("goal_current", 102, 2, True, 1_750, signed=True),  # limit: +-Current Limit (38)
            Register("backup_ready", 147, 1, False),
        ),
    ),
    modes=frozenset({0, 1, 3, 4, 5, 16}),
    baud_rates=_BAUD_XL330,
    current_unit=0.001,
    stall_torque=0.52,  # at 5.0 V, 1.47 A; no load 103 rev/min at 5.0 V (the recommended voltage)
    stall_current=1.47,
    no_load_speed=_rpm(103),
    voltage=5.0,
    # measured: Rhoban/bam bam/dynamixel/actuator.py XL330_KP_DIVISOR = 256, "empirically observed for XL330 (manual
    # mentions 128)", from the servo's own Present PWM against its position error (the e-manual's 128 stays for the
    # current-based position loop, whose output nobody has measured)
    p_divisor=256,
)

XM430_W350 = ServoModel(  # docs/en/dxl/x/xm430-w350.md
    name="xm430-w350",
    number=1020,
    registers=_x_series(
        1020,
        present_126="present_current",  # 2.69 mA
        gains=(1_920, 100, 0, 0, 800),
        limits={
            "drive_mode": (0, 0, 1),
            "protocol_type": (2, 1, 2),
            "temperature_limit": (80, 0, 100),
            "max_voltage_limit": (160, None, None),  # the page's range (110 ~ 300) excludes its own defaults: not checked
            "min_voltage_limit": (95, None, None),
            "velocity_limit": (200, 0, 1_023),
            "shutdown": (52, None, None),
        },
        extra=(
            Register("current_limit", 38, 2, True, 1_193, 0, 1_193),
            Register("goal_current", 102, 2, True, 1_193, signed=True),
        ),
    ),
    modes=frozenset({0, 1, 3, 4, 5, 16}),
    baud_rates=_BAUD_X430,
    current_unit=0.00269,
    stall_torque=4.1,  # at 12.0 V, 2.3 A
    stall_current=2.3,
    no_load_speed=_rpm(46),
    voltage=12.0,
)

MODELS: Mapping[str, ServoModel] = MappingProxyType({m.name: m for m in (XL430_W250, XL330_M288, XM430_W350)})
MODEL_BY_NUMBER: Mapping[int, ServoModel] = MappingProxyType({m.number: m for m in MODELS.values()})


# ---------------------------------------------------------------- motor-space units


def ticks_to_radians(ticks: int) -> float:
    """A position in ticks as a motor-space angle: tick 2048 (the horn's centre) is 0 rad, counter-clockwise positive."""
    return (ticks - CENTRE_TICK) * 2.0 * math.pi / TICKS_PER_REV


def radians_to_ticks(radians: float) -> int:
    """The nearest tick to a motor-space angle (inverse of ``ticks_to_radians``)."""
    return CENTRE_TICK + round(radians * TICKS_PER_REV / (2.0 * math.pi))


# ---------------------------------------------------------------- the position loop as a torque law


def position_kp(model: ServoModel, p_gain: int, mode: int) -> float:
    """N·m/rad of Position P Gain ``p_gain`` in operating ``mode`` (a ``POSITION_MODES`` value).

    Position and extended position (x/position_pid_gain.md): the loop's output is PWM, KPP = P / ``p_divisor`` PWM
    units per tick of error, 885 units (full duty) = the stall torque. Current-based position
    (control_table_current_position_pid_gain.md): the output is the desired current, KPP = P / 128 current units per
    tick, at the motor's torque per amp (stall torque / stall current).
    """
    if mode == CURRENT_POSITION_MODE:
        return p_gain / KPP_DIVISOR * TICKS_PER_RAD * _current_torque(model)
    return p_gain / model.p_divisor * TICKS_PER_RAD / PWM_FULL_SCALE * model.stall_torque


def position_kv(model: ServoModel, d_gain: int, mode: int) -> float:
    """N·m·s/rad of Position D Gain ``d_gain`` in ``mode``: KPD = D / 16 output units per tick of error per
    ``KPD_SAMPLE_S``, in the output's units as ``position_kp`` reads them. The motor's back-EMF is not in it: that is
    the joint's (``back_emf_damping``), with the torque on or off."""
    per_rad_s = d_gain / KPD_DIVISOR * TICKS_PER_RAD * KPD_SAMPLE_S
    if mode == CURRENT_POSITION_MODE:
        return per_rad_s * _current_torque(model)
    return per_rad_s / PWM_FULL_SCALE * model.stall_torque


def back_emf_damping(model: ServoModel) -> float:
    """N·m·s/rad the motor's back-EMF puts on its joint under a voltage drive: stall torque / no-load speed."""
    return model.stall_torque / model.no_load_speed


def current_torque(model: ServoModel, current: int) -> float:
    """N·m of a Goal Current / Current Limit value ``current`` (in the model's current units) at the motor's torque per amp."""
    return current * _current_torque(model)


def _current_torque(model: ServoModel) -> float:
    """N·m per current unit: the unit in A times stall torque / stall current (a linear fit of the performance graph)."""
    if model.current_unit is None:
        raise ValueError(f"the {model.name} senses no current")
    return model.current_unit * model.stall_torque / model.stall_current


def torque_from_register(model: ServoModel, value: int) -> float:
    """N·m from item 126: Present Current at the torque per amp (``current_torque``), or Present Load as a share of the
    stall torque (0.1 % units) on a model without current sensing."""
    if model.current_unit is None:
        return value * 0.001 * model.stall_torque
    return current_torque(model, value)


def torque_to_register(model: ServoModel, torque: float) -> int:
    """Item 126 for a torque (inverse of ``torque_from_register``), clamped to what the item reports."""
    if model.current_unit is None:
        return max(-1_000, min(1_000, round(torque / model.stall_torque * 1_000)))
    value = round(torque * model.stall_current / model.stall_torque / model.current_unit)
    return max(-32_768, min(32_767, value))
