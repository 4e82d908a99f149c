"""Damiao quasi-direct-drive motors (OpenArm) on CAN, through python-can.

The wire facts below are read from the maker-side drivers, enactic/openarm_can
``src/openarm/damiao_motor/`` (``dm_motor_constants.hpp``, ``dm_motor_control.cpp``)
and huggingface/lerobot ``src/lerobot/motors/damiao/tables.py``, plus the
vendor's ``DM_CAN.py`` for parameter replies. The frame codecs are plain
functions so that the bus and the emulator (``simrl.deploy.emulator``) share
one implementation: a bug in either direction then shows up as a failed
round-trip in the tests instead of two mistakes that cancel out.

Wire summary (classic CAN, 11-bit ids, 8 data bytes):
- motor ``can_id`` receives commands; it answers on its ``master_id``;
- ``FF×7 FC/FD/FE/FB`` on ``can_id``: enable / disable / set zero / clear error;
- any other 8 bytes on ``can_id``: an MIT command (see ``pack_mit_command``);
- ``0x7FF``: parameter frames ``[id_lo, id_hi, op, rid, value(4, LE)]``.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import can
import numpy as np

from simrl.deploy.buses.base import BusError, MotorCommand, MotorReadings
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

_MAX_STD_ID = 0x7FE  # 11-bit ids; 0x7FF is the parameter channel
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
            if not low <= value <= _MAX_STD_ID:
                raise DamiaoConfigError(
                    f"Damiao motor '{self.name}': {field} {value:#x} is outside {low:#x}..{_MAX_STD_ID:#x}"
                )

    @property
    def limits(self) -> DamiaoLimits:
        """The MIT field ranges of this motor's model."""
        return DAMIAO_LIMITS[self.model]


# ---------------------------------------------------------------- codecs


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


def unpack_mit_command(limits: DamiaoLimits, data: bytes) -> tuple[float, float, float, float, float]:
    """``(q, dq, kp, kd, tau)`` from an MIT command's 8 bytes: what the motor firmware decodes."""
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


def unpack_mit_reply(limits: DamiaoLimits, data: bytes) -> tuple[int, int, float, float, float, int, int]:
    """``(motor_id, status, q, dq, tau, t_mos, t_rotor)`` from a state reply (openarm_can parse_motor_state_data)."""
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
    if len(data) == 8 and data[:7] == _COMMAND_PREFIX and data[7] in _COMMAND_CODES:
        return data[7]
    return None


def is_uint_param(rid: int) -> bool:
    """Whether register ``rid`` holds a uint32 (else a float32): openarm_can ``is_in_ranges``, DM_CAN.py."""
    return 7 <= rid <= 10 or 13 <= rid <= 16 or 35 <= rid <= 36


def pack_param(can_id: int, op: int, rid: int, value: float = 0) -> bytes:
    """A parameter frame ``[id_lo, id_hi, op, rid, value as uint32 or float32 LE]`` (on 0x7FF, and its reply)."""
    raw = struct.pack("<I", int(value)) if is_uint_param(rid) else struct.pack("<f", value)
    return bytes((can_id & 0xFF, can_id >> 8 & 0xFF, op, rid)) + raw


def unpack_param(data: bytes) -> tuple[int, int, int, float]:
    """``(can_id, op, rid, value)`` from a parameter frame; value is an int for uint32 registers."""
    rid = data[3]
    (value,) = struct.unpack("<I" if is_uint_param(rid) else "<f", bytes(data[4:8]))
    return data[0] | data[1] << 8, data[2], rid, value


# ---------------------------------------------------------------- the bus


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (socketcand errors embed whole tracebacks)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# What python-can raises when the wire fails: its own errors, the OS's (a closed TCP
# socket, a vanished interface), and ValueError from select() on a closed socket.
_WIRE_ERRORS = (can.CanError, OSError, ValueError)


class DamiaoBus:
    """``MotorBus`` for Damiao motors on one CAN channel.

    Either give python-can settings (``interface``, ``channel``, ``bitrate`` and any
    interface keyword such as ``host``/``port`` for socketcand) and call ``open()``,
    or pass an already open ``can_bus`` (tests, shared adapters); a bus passed in
    stays its owner's to shut down.

    ``reply_timeout`` bounds one ``exchange`` (every reply or give up);
    ``setup_timeout`` bounds each try of enable/disable/zero/parameter requests,
    which are retried ``retries`` more times before raising ``BusError``.
    """

    def __init__(
        self,
        motors: Sequence[DamiaoMotor],
        *,
        interface: str = "socketcan",
        channel: str = "can0",
        bitrate: int | None = None,
        can_bus: can.BusABC | None = None,
        reply_timeout: float = 0.002,
        setup_timeout: float = 0.05,
        retries: int = 3,
        **can_kwargs: Any,
    ) -> None:
        _check_motors(motors)
        self.motor_names = tuple(m.name for m in motors)
        self._motors = tuple(motors)
        self._by_name = {m.name: i for i, m in enumerate(motors)}
        self._by_can_id = {m.can_id: i for i, m in enumerate(motors)}
        # A state reply is told apart by its arbitration id and its B0 id nibble, so
        # motors may share one master id (DM_CAN.py does the same).
        self._by_reply = {m.master_id << 4 | m.can_id & 0xF: i for i, m in enumerate(motors)}
        self._settings = {"interface": interface, "channel": channel, **can_kwargs}
        if bitrate is not None:  # SocketCAN takes its bitrate from `ip link`, not from here
            self._settings["bitrate"] = bitrate
        if interface == "socketcand":  # TCP_NODELAY/QUICKACK: else Nagle holds back each burst of small frames
            self._settings.setdefault("tcp_tune", True)
        self._given_bus = can_bus
        self._bus: can.BusABC | None = None
        self._reply_timeout = reply_timeout
        self._setup_timeout = setup_timeout
        self._retries = retries
        n = len(motors)
        self._position = np.full(n, np.nan)
        self._velocity = np.full(n, np.nan)
        self._torque = np.full(n, np.nan)
        self._status = np.full(n, -1, dtype=np.int64)
        self._param_values: dict[int, float] = {}

    # -- MotorBus

    def open(self) -> None:
        """Create the python-can bus, or take the one passed in; no-op when open."""
        if self._bus is not None:
            return
        if self._given_bus is not None:
            self._bus = self._given_bus
            return
        try:
            self._bus = can.Bus(**self._settings)
        except (*_WIRE_ERRORS, ImportError) as exc:
            raise BusError(
                f"cannot open CAN interface '{self._settings['interface']}' channel "
                f"'{self._settings['channel']}': {_one_line(exc)}"
            ) from exc

    def enable(self) -> MotorReadings:
        """Put every motor in MIT mode (register 10), then torque on until each reply says status 1."""
        self._write_params(range(len(self._motors)), RID_CTRL_MODE, CTRL_MODE_MIT)
        return self._command_all(CMD_ENABLE, lambda i: self._status[i] == STATUS_ENABLED, "enable")

    def read(self) -> MotorReadings:
        """Every motor's state without a new set point: a refresh request each, replies within ``reply_timeout``.

        The refresh request (0xCC on 0x7FF, openarm_can ``refresh_command``)
        makes a motor answer with the same state frame as an MIT command,
        without touching its set point. On an 8-motor arm at 1 Mbit/s, 8
        requests + 8 replies take at most about 2.2 ms (a classic 8-byte
        standard frame is 111 bits, about 135 with worst-case bit stuffing:
        ISO 11898-1 frame format), so a read and a command exchange per tick
        use under a quarter of a 20 ms period.
        """
        return self._request_state(self._reply_timeout)

    def exchange(self, command: MotorCommand) -> MotorReadings:
        """Send one MIT frame per motor, then read replies until all answered or ``reply_timeout`` passed.

        ``effort`` maps onto the MIT law as ``kp * effort`` with kd kept: the
        safe stop's ramp to 0 leaves the arm settling under damping alone, and
        at effort 1 the frame is the plain command.
        """
        columns = self._command_columns(command)
        self._drain()
        for i, m in enumerate(self._motors):
            q, dq, kp, kd, tau = (column[i] for column in columns)
            self._send(m.can_id, pack_mit_command(m.limits, q, dq, kp, kd, tau))
        missing, _ = self._receive(set(range(len(self._motors))), self._take_state, None, self._reply_timeout)
        return self._readings(missing)

    def disable(self) -> MotorReadings:
        """Torque off until each reply says status 0."""
        return self._command_all(CMD_DISABLE, lambda i: self._status[i] == STATUS_DISABLED, "disable")

    def close(self) -> None:
        """Shut down the python-can bus if this object created it; safe to call twice."""
        if self._bus is not None and self._bus is not self._given_bus:
            self._bus.shutdown()
        self._bus = None

    def __enter__(self) -> "DamiaoBus":
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Damiao extras

    def set_zero(self) -> MotorReadings:
        """Make every motor's present shaft angle its zero (calibration; the zero lives in the motor)."""
        return self._command_all(CMD_SET_ZERO, lambda i: True, "set zero")

    def clear_errors(self) -> MotorReadings:
        """Clear latched faults until each motor reports status 0 or 1."""
        return self._command_all(CMD_CLEAR_ERROR, lambda i: self._status[i] in (0, 1), "clear error")

    def refresh(self) -> MotorReadings:
        """Ask every motor for its state without commanding it, waiting the setup timeout: read the arm before enabling."""
        return self._request_state(self._setup_timeout)

    def read_param(self, name: str, rid: int) -> float:
        """Register ``rid`` of motor ``name`` (an int for uint32 registers such as 10, control mode)."""
        i = self._index(name)
        self._request_params([i], PARAM_READ, rid, 0, lambda _: True)
        return self._param_values[i]

    def write_param(self, name: str, rid: int, value: float) -> None:
        """Set register ``rid`` of motor ``name`` in RAM and check the motor echoes the new value."""
        self._write_params([self._index(name)], rid, value)

    # -- internals

    def _index(self, name: str) -> int:
        if name not in self._by_name:
            raise DamiaoConfigError(
                f"no Damiao motor named '{name}'; motors: {', '.join(self.motor_names)}"
                f"{did_you_mean(name, self.motor_names, '; ')}"
            )
        return self._by_name[name]

    def _require_bus(self) -> can.BusABC:
        if self._bus is None:
            where = self._given_bus.channel_info if self._given_bus is not None else self._settings["channel"]
            raise BusError(f"Damiao bus on '{where}' is not open; call open() first")
        return self._bus

    def _send(self, arbitration_id: int, data: bytes) -> None:
        bus = self._require_bus()
        try:
            bus.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False))
        except _WIRE_ERRORS as exc:
            raise BusError(
                f"send to CAN id {arbitration_id:#x} on '{bus.channel_info}' failed: {_one_line(exc)}"
            ) from exc

    def _recv(self, timeout: float) -> can.Message | None:
        bus = self._require_bus()
        try:
            return bus.recv(timeout)
        except _WIRE_ERRORS as exc:
            raise BusError(f"receive on '{bus.channel_info}' failed: {_one_line(exc)}") from exc

    def _drain(self) -> None:
        """Drop replies that arrived after an earlier timeout, so they are not taken as this exchange's."""
        while self._recv(0.0) is not None:
            pass

    def _request_state(self, timeout: float) -> MotorReadings:
        """One refresh request per motor (0xCC on 0x7FF), then the state replies that arrive within ``timeout``."""
        self._drain()
        for m in self._motors:
            self._send(PARAM_CAN_ID, pack_param(m.can_id, PARAM_REFRESH, 0))
        missing, _ = self._receive(set(range(len(self._motors))), self._take_state, None, timeout)
        return self._readings(missing)

    def _command_columns(self, command: MotorCommand) -> tuple[list[float], ...]:
        """The MIT fields (q, dq, kp, kd, tau) per motor, kp scaled by the effort."""
        columns = (command.position, command.velocity, command.kp, command.kd, command.torque, command.effort)
        n = len(self._motors)
        if any(len(column) != n for column in columns):
            raise DamiaoConfigError(
                f"MotorCommand arrays have lengths {[len(c) for c in columns]}; allowed: {n} (one per motor)"
            )
        q, dq, kp, kd, tau, effort = (np.asarray(column, dtype=np.float64) for column in columns)
        return tuple(column.tolist() for column in (q, dq, kp * effort, kd, tau))

    def _take_state(self, msg: can.Message) -> int | None:
        """Store a state reply from one of our motors and return its index; None for any other frame."""
        data = msg.data
        if msg.is_error_frame or msg.is_remote_frame or len(data) < 8:
            return None
        i = self._by_reply.get(msg.arbitration_id << 4 | data[0] & 0xF)
        if i is None:
            return None
        _, status, q, dq, tau, _, _ = unpack_mit_reply(self._motors[i].limits, data)
        self._status[i] = status
        self._position[i] = q
        self._velocity[i] = dq
        self._torque[i] = tau
        return i

    def _take_param(self, op: int, rid: int) -> Callable[[can.Message], int | None]:
        """A receiver for parameter replies ``op``/``rid`` (they come on the master id, DM_CAN.py)."""

        def take(msg: can.Message) -> int | None:
            data = msg.data
            if msg.is_error_frame or len(data) < 8 or data[2] != op or data[3] != rid:
                return None
            can_id, _, _, value = unpack_param(data)
            i = self._by_can_id.get(can_id)
            if i is None or self._motors[i].master_id != msg.arbitration_id:
                return None
            self._param_values[i] = value
            return i

        return take

    def _receive(
        self,
        pending: set[int],
        take: Callable[[can.Message], int | None],
        accept: Callable[[int], bool] | None,
        timeout: float,
    ) -> tuple[set[int], set[int]]:
        """Receive until every motor in ``pending`` was taken (and accepted) or ``timeout`` passed.

        Returns the motors still pending and those heard from at all, so errors can
        tell a silent motor from one that answered with the wrong state.
        """
        heard: set[int] = set()
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            msg = self._recv(remaining)
            if msg is None:
                break
            i = take(msg)
            if i is None:
                continue
            heard.add(i)
            if accept is None or accept(i):
                pending.discard(i)
        return pending, heard

    def _with_retries(
        self,
        targets: Iterable[int],
        send_one: Callable[[DamiaoMotor], None],
        take: Callable[[can.Message], int | None],
        accept: Callable[[int], bool],
        what: str,
        describe: Callable[[int], str],
    ) -> set[int]:
        """Send to each target until accepted; raise ``BusError`` naming those never accepted."""
        pending = set(targets)
        heard: set[int] = set()
        for _ in range(self._retries + 1):
            self._drain()
            for i in sorted(pending):
                send_one(self._motors[i])
            pending, heard_now = self._receive(pending, take, accept, self._setup_timeout)
            heard |= heard_now
            if not pending:
                return heard
        problems = "; ".join(
            f"{self._label(i)} {describe(i) if i in heard else 'never answered'}" for i in sorted(pending)
        )
        raise BusError(f"Damiao {what} failed after {self._retries + 1} tries: {problems}")

    def _command_all(self, code: int, accept: Callable[[int], bool], what: str) -> MotorReadings:
        frame = command_frame(code)
        heard = self._with_retries(
            range(len(self._motors)),
            lambda m: self._send(m.can_id, frame),
            self._take_state,
            accept,
            what,
            lambda i: f"answered status {self._status[i]:#x} ({STATUS_TEXT.get(int(self._status[i]), 'unknown')})",
        )
        return self._readings(set(range(len(self._motors))) - heard)

    def _request_params(
        self,
        targets: Iterable[int],
        op: int,
        rid: int,
        value: float,
        accept: Callable[[int], bool],
        describe: Callable[[int], str] = lambda _: "",
    ) -> None:
        verb = "read" if op == PARAM_READ else "write"
        self._with_retries(
            targets,
            lambda m: self._send(PARAM_CAN_ID, pack_param(m.can_id, op, rid, value)),
            self._take_param(op, rid),
            accept,
            f"parameter {verb} of register {rid}",
            describe,
        )

    def _write_params(self, targets: Iterable[int], rid: int, value: float) -> None:
        # The echo is the motor's value after the write (DM_CAN.py write_motor_param compares it),
        # so compare with the value as the register stores it (float32 or uint32).
        expected = unpack_param(pack_param(0, PARAM_WRITE, rid, value))[3]
        self._request_params(
            targets,
            PARAM_WRITE,
            rid,
            value,
            lambda i: self._param_values[i] == expected,
            lambda i: f"kept it at {self._param_values[i]} instead of {expected}",
        )

    def _label(self, i: int) -> str:
        m = self._motors[i]
        return f"motor '{m.name}' (id {m.can_id:#04x}, replies on {m.master_id:#04x})"

    def _readings(self, missing: set[int]) -> MotorReadings:
        fresh = np.ones(len(self._motors), dtype=bool)
        fresh[list(missing)] = False
        # -1: no reply yet, so neither enabled nor faulty (``fresh`` says it never answered).
        decoded = [decode_status(int(s)) if s >= 0 else (False, "") for s in self._status]
        return MotorReadings(
            position=self._position.copy(),
            velocity=self._velocity.copy(),
            torque=self._torque.copy(),
            fresh=fresh,
            enabled=np.array([enabled for enabled, _ in decoded]),
            fault=tuple(fault for _, fault in decoded),
            stamp=time.monotonic(),
        )


def _check_motors(motors: Sequence[DamiaoMotor]) -> None:
    """Reject motor lists whose replies could not be told apart."""
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
