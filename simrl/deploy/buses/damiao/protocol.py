"""The Damiao wire protocol as pure functions: MIT command and reply frames, command and parameter frames, model limits.

The wire facts below are read from the maker-side drivers, enactic/openarm_can
``src/openarm/damiao_motor/`` (``dm_motor_constants.hpp``, ``dm_motor_control.cpp``)
and huggingface/lerobot ``src/lerobot/motors/damiao/tables.py``, plus the
vendor's ``DM_CAN.py`` for parameter replies. The codecs are plain functions
(no python-can, no state) so that the bus (``bus.py``) and the emulated
firmware (``simrl.deploy.emulation.damiao_firmware``) share one implementation:
a bug in either direction then shows up as a failed round-trip in the tests
instead of two mistakes that cancel out.

Wire summary (11-bit ids, 8 data bytes, classic CAN or CAN FD: see ``FD_DATA_BITRATES``):
- motor ``can_id`` receives commands; it answers on its ``master_id``;
- ``FF×7 FC/FD/FE/FB`` on ``can_id``: enable / disable / set zero / clear error;
- any other 8 bytes on ``can_id``: an MIT command (see ``pack_mit_command``);
- ``0x7FF``: parameter frames ``[id_lo, id_hi, op, rid, value(4, LE)]``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

from simrl.errors import SimrlError, did_you_mean


class DamiaoConfigError(SimrlError):
    """A motor list, motor model or command the Damiao bus cannot use."""


@dataclass(frozen=True)
class DamiaoLimits:
    """The ranges a motor model maps its fixed-point MIT fields onto (rad, rad/s, N·m)."""

    pmax: float
    vmax: float
    tmax: float
    kp_max: float = 500.0  # kp range [0, 500]: openarm_can pack_mit_control_data, lerobot MIT_KP_RANGE
    kd_max: float = 5.0  # kd range [0, 5]: same sources


# [PMAX, VMAX, TMAX] per model: openarm_can dm_motor_constants.hpp MOTOR_LIMIT_PARAMS,
# lerobot tables.py MOTOR_LIMIT_PARAMS. For DM4340 lerobot says VMAX 8; openarm_can
# (the arm maker's driver) says 10, and the motor firmware must agree with whoever
# wrote its PMAX/VMAX/TMAX registers, so we follow the arm maker.
DAMIAO_LIMITS: Mapping[str, DamiaoLimits] = MappingProxyType(
    {
        "DM4310": DamiaoLimits(pmax=12.5, vmax=30.0, tmax=10.0),
        "DM4340": DamiaoLimits(pmax=12.5, vmax=10.0, tmax=28.0),
        "DM8009": DamiaoLimits(pmax=12.5, vmax=45.0, tmax=54.0),
    }
)

# Last byte of the FF×7 command frames (openarm_can create_*_command, lerobot CAN_CMD_*).
CMD_ENABLE = 0xFC
CMD_DISABLE = 0xFD
CMD_SET_ZERO = 0xFE
CMD_CLEAR_ERROR = 0xFB

# Parameter frames (openarm_can create_query_param/set_control_mode/refresh_command).
PARAM_CAN_ID = 0x7FF
PARAM_READ = 0x33
PARAM_WRITE = 0x55
PARAM_REFRESH = 0xCC
RID_CTRL_MODE = 10
CTRL_MODE_MIT = 1

# Status nibble of a reply's first byte (ROBOTS.md, the damiao-motor package's decoder): 0 and 1 say
# whether torque is on, the others are latched faults (torque off until a clear-error frame).
STATUS_DISABLED = 0
STATUS_ENABLED = 1
FAULTS: Mapping[int, str] = MappingProxyType(
    {
        0x8: "over-voltage",
        0x9: "under-voltage",
        0xA: "over-current",
        0xB: "MOSFET over-temperature",
        0xC: "rotor over-temperature",
        0xD: "lost communication",
        0xE: "overload",
    }
)
STATUS_TEXT: Mapping[int, str] = MappingProxyType({STATUS_DISABLED: "disabled", STATUS_ENABLED: "enabled", **FAULTS})

MAX_STD_ID = 0x7FE  # 11-bit ids; 0x7FF is the parameter channel
# Every Damiao frame carries 8 data bytes (DLC 8), on classic CAN and on CAN FD alike: openarm_can
# create_canfd_frame sets len = the same 8-byte payload it sends as a classic frame.
FRAME_BYTES = 8

# The CAN FD data rates (bit/s) a Damiao motor's baud register (RID 35, "can_br") takes: codes 5..9 =
# 2, 2.5, 3.2, 4, 5 Mbit/s (codes 0..4: 125 k..1 Mbit/s, classic). Damiao's manual, as Enactic hosts it
# (enactic/damiao, website/i18n/en/.../products/hardware/dm-j4340p-2ec-v1.0.mdx, "Change the baud rate of
# CAN communication"): above 1 Mbit/s the motor switches to CAN FD, at or below it to CAN 2.0B, and a
# stored rate above 5 Mbit/s falls back to 1 Mbit/s at power-up; the same table in the OpenArm docs
# (enactic/openarm website/docs/setup/openarm-setup/4-motor-config.mdx, docs.openarm.dev). A motor set to
# CAN FD still receives CAN 2.0B frames but answers in CAN FD only, so a classic controller never hears it.
FD_DATA_BITRATES = (2_000_000, 2_500_000, 3_200_000, 4_000_000, 5_000_000)
_COMMAND_PREFIX = b"\xff" * 7
_COMMAND_CODES = (CMD_ENABLE, CMD_DISABLE, CMD_SET_ZERO, CMD_CLEAR_ERROR)


@dataclass(frozen=True)
class DamiaoMotor:
    """One motor on the bus: its name, the id it listens on, the id it answers on, its model."""

    name: str
    can_id: int
    master_id: int
    model: str

    def __post_init__(self) -> None:
        if self.model not in DAMIAO_LIMITS:
            raise DamiaoConfigError(
                f"Damiao motor '{self.name}': model '{self.model}' is not one of "
                f"{', '.join(DAMIAO_LIMITS)}{did_you_mean(self.model, DAMIAO_LIMITS)}"
            )
        for field, value, low in (("can_id", self.can_id, 1), ("master_id", self.master_id, 0)):
            if not low <= value <= MAX_STD_ID:
                raise DamiaoConfigError(
                    f"Damiao motor '{self.name}': {field} {value:#x} is outside {low:#x}..{MAX_STD_ID:#x}"
                )

    @property
    def limits(self) -> DamiaoLimits:
        """The MIT field ranges of this motor's model."""
        return DAMIAO_LIMITS[self.model]


def check_motor_list(motors: Sequence[DamiaoMotor]) -> None:
    """Reject motor lists that cannot share one wire: replies told apart by master id and low id nibble, commands by id."""
    if not motors:
        raise DamiaoConfigError("Damiao bus needs at least one motor")
    for key, label in (
        (lambda m: m.name, "name"),
        (lambda m: m.can_id, "can_id"),
        (lambda m: (m.master_id, m.can_id & 0xF), "master_id and low can_id nibble"),
    ):
        seen: dict[object, str] = {}
        for m in motors:
            if key(m) in seen:
                raise DamiaoConfigError(
                    f"Damiao motors '{seen[key(m)]}' and '{m.name}' share the same {label}; allowed: distinct"
                )
            seen[key(m)] = m.name
    clash = {m.master_id for m in motors} & {m.can_id for m in motors}
    if clash:
        raise DamiaoConfigError(
            f"Damiao master id(s) {sorted(clash)} are also motor command ids; allowed: disjoint sets"
        )


def _to_uint(x: float, low: float, high: float, bits: int) -> int:
    """Clamp ``x`` into [low, high] and map it onto ``bits`` bits.

    Truncates like openarm_can ``double_to_uint`` (a C cast), so our frames are
    bit-identical to the arm maker's: zero on a ±range maps to 0x7FFF, not 0x8000.
    """
    if x != x:
        raise DamiaoConfigError(f"Damiao MIT field value is NaN; allowed: a number (clamped to [{low}, {high}])")
    x = low if x < low else high if x > high else x
    return int((x - low) / (high - low) * ((1 << bits) - 1))


def _to_float(u: int, low: float, high: float, bits: int) -> float:
    """The inverse of ``_to_uint`` (openarm_can ``uint_to_double``)."""
    return u / ((1 << bits) - 1) * (high - low) + low


def pack_mit_command(limits: DamiaoLimits, q: float, dq: float, kp: float, kd: float, tau: float) -> bytes:
    """The 8 data bytes of an MIT command: q 16 bits, dq/kp/kd/tau 12 bits each, big-endian nibble packing."""
    uq = _to_uint(q, -limits.pmax, limits.pmax, 16)
    udq = _to_uint(dq, -limits.vmax, limits.vmax, 12)
    ukp = _to_uint(kp, 0.0, limits.kp_max, 12)
    ukd = _to_uint(kd, 0.0, limits.kd_max, 12)
    utau = _to_uint(tau, -limits.tmax, limits.tmax, 12)
    return bytes(
        (
            uq >> 8,
            uq & 0xFF,
            udq >> 4,
            (udq & 0xF) << 4 | ukp >> 8,
            ukp & 0xFF,
            ukd >> 4,
            (ukd & 0xF) << 4 | utau >> 8,
            utau & 0xFF,
        )
    )


def unpack_mit_command(limits: DamiaoLimits, data: bytes) -> tuple[float, float, float, float, float] | None:
    """``(q, dq, kp, kd, tau)`` from an MIT command's 8 bytes: what the motor firmware decodes; None for any other length."""
    if len(data) != FRAME_BYTES:
        return None
    uq = data[0] << 8 | data[1]
    udq = data[2] << 4 | data[3] >> 4
    ukp = (data[3] & 0xF) << 8 | data[4]
    ukd = data[5] << 4 | data[6] >> 4
    utau = (data[6] & 0xF) << 8 | data[7]
    return (
        _to_float(uq, -limits.pmax, limits.pmax, 16),
        _to_float(udq, -limits.vmax, limits.vmax, 12),
        _to_float(ukp, 0.0, limits.kp_max, 12),
        _to_float(ukd, 0.0, limits.kd_max, 12),
        _to_float(utau, -limits.tmax, limits.tmax, 12),
    )


def pack_mit_reply(
    limits: DamiaoLimits, motor_id: int, status: int, q: float, dq: float, tau: float, t_mos: int, t_rotor: int
) -> bytes:
    """A motor's state reply: B0 = status<<4 | id&0xF, q 16 bits, dq 12, tau 12, then two temperatures (°C)."""
    uq = _to_uint(q, -limits.pmax, limits.pmax, 16)
    udq = _to_uint(dq, -limits.vmax, limits.vmax, 12)
    utau = _to_uint(tau, -limits.tmax, limits.tmax, 12)
    return bytes(
        (
            (status & 0xF) << 4 | motor_id & 0xF,
            uq >> 8,
            uq & 0xFF,
            udq >> 4,
            (udq & 0xF) << 4 | utau >> 8,
            utau & 0xFF,
            min(max(int(t_mos), 0), 255),
            min(max(int(t_rotor), 0), 255),
        )
    )


def unpack_mit_reply(limits: DamiaoLimits, data: bytes) -> tuple[int, int, float, float, float, int, int] | None:
    """``(motor_id, status, q, dq, tau, t_mos, t_rotor)`` from a state reply (openarm_can parse_motor_state_data); None unless 8 bytes."""
    if len(data) != FRAME_BYTES:
        return None
    uq = data[1] << 8 | data[2]
    udq = data[3] << 4 | data[4] >> 4
    utau = (data[4] & 0xF) << 8 | data[5]
    return (
        data[0] & 0xF,
        data[0] >> 4,
        _to_float(uq, -limits.pmax, limits.pmax, 16),
        _to_float(udq, -limits.vmax, limits.vmax, 12),
        _to_float(utau, -limits.tmax, limits.tmax, 12),
        data[6],
        data[7],
    )


def decode_status(status: int) -> tuple[bool, str]:
    """``(enabled, fault)`` of a reply's state nibble: what ``MotorReadings`` carries instead of the code.

    A code the firmware does not document (2..7, 0xF) is a fault too, named by
    its value: a motor in an unknown state is not one to keep driving.
    """
    if status in FAULTS:
        return False, FAULTS[status]
    if status in (STATUS_DISABLED, STATUS_ENABLED):
        return status == STATUS_ENABLED, ""
    return False, f"unknown state {status:#x}"


def command_frame(code: int) -> bytes:
    """``FF×7 code``: enable, disable, set-zero or clear-error."""
    return _COMMAND_PREFIX + bytes((code,))


def command_code(data: bytes) -> int | None:
    """The code of an ``FF×7 code`` frame, or None when ``data`` is an MIT command."""
    if len(data) == FRAME_BYTES and data[:7] == _COMMAND_PREFIX and data[7] in _COMMAND_CODES:
        return data[7]
    return None


def is_uint_param(rid: int) -> bool:
    """Whether register ``rid`` holds a uint32 (else a float32): openarm_can ``is_in_ranges``, DM_CAN.py."""
    return 7 <= rid <= 10 or 13 <= rid <= 16 or 35 <= rid <= 36


def _param_format(rid: int) -> str:
    """struct format of register ``rid``'s value: uint32 or float32, little-endian."""
    return "<I" if is_uint_param(rid) else "<f"


def _param_bytes(rid: int, value: float) -> bytes:
    return struct.pack(_param_format(rid), int(value) if is_uint_param(rid) else value)


def register_value(rid: int, value: float) -> float:
    """``value`` as register ``rid`` stores it (a uint32 truncated, a float32 rounded): what a write's echo says."""
    (stored,) = struct.unpack(_param_format(rid), _param_bytes(rid, value))
    return stored


def pack_param(can_id: int, op: int, rid: int, value: float = 0) -> bytes:
    """A parameter frame ``[id_lo, id_hi, op, rid, value as uint32 or float32 LE]`` (on 0x7FF, and its reply)."""
    return bytes((can_id & 0xFF, can_id >> 8 & 0xFF, op, rid)) + _param_bytes(rid, value)


def unpack_param(data: bytes) -> tuple[int, int, int, float] | None:
    """``(can_id, op, rid, value)`` from a parameter frame; value is an int for uint32 registers; None unless 8 bytes."""
    if len(data) != FRAME_BYTES:
        return None
    rid = data[3]
    (value,) = struct.unpack(_param_format(rid), bytes(data[4:8]))
    return data[0] | data[1] << 8, data[2], rid, value
