"""``DamiaoBus``: the ``MotorBus`` of Damiao quasi-direct-drive motors (OpenArm) on one CAN channel, through python-can.

The frames themselves are ``protocol.py``'s; this module is the exchange
around them: which frames go out for each ``MotorBus`` call, which replies
count, how long to wait and when to retry.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

import can
import numpy as np

from simrl.deploy.buses.base import BusError, MotorCommand, MotorReadings
from simrl.deploy.buses.damiao.protocol import (
    CMD_CLEAR_ERROR,
    CMD_DISABLE,
    CMD_ENABLE,
    CMD_SET_ZERO,
    CTRL_MODE_MIT,
    PARAM_CAN_ID,
    PARAM_READ,
    PARAM_REFRESH,
    PARAM_WRITE,
    RID_CTRL_MODE,
    STATUS_DISABLED,
    STATUS_ENABLED,
    STATUS_TEXT,
    DamiaoConfigError,
    DamiaoMotor,
    check_motor_list,
    command_frame,
    decode_status,
    pack_mit_command,
    pack_param,
    register_value,
    unpack_mit_reply,
    unpack_param,
)
from simrl.errors import did_you_mean


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

    ``fd`` speaks CAN FD, as the maker sets the OpenArm up: python-can gets
    ``fd=True`` and ``data_bitrate``, every frame goes out as an FD frame with
    the bit rate switch on (openarm_can ``create_canfd_frame``: ``flags =
    CANFD_BRS``), still 8 data bytes, and replies are taken in either format
    (an FD controller receives classic frames too). Without ``fd`` the bus is a
    CAN 2.0 controller: it never takes an FD frame (SocketCAN does not deliver
    them to a socket without ``CAN_RAW_FD_FRAMES``; on the wire a classic
    controller cannot decode them), so motors set to CAN FD, which answer in FD
    only, stay silent to it.

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
        fd: bool = False,
        data_bitrate: int | None = None,
        can_bus: can.BusABC | None = None,
        reply_timeout: float = 0.002,
        setup_timeout: float = 0.05,
        retries: int = 3,
        **can_kwargs: Any,
    ) -> None:
        check_motor_list(motors)
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
        self._fd = fd
        if fd:  # LeRobot's DamiaoMotorsBus opens the OpenArm's bus the same way (fd=True, data_bitrate)
            self._settings["fd"] = True
            if data_bitrate is not None:
                self._settings["data_bitrate"] = data_bitrate
            if interface == "virtual":  # python-can's virtual bus reports the protocol it is given (virtual.py)
                self._settings.setdefault("protocol", can.CanProtocol.CAN_FD)
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
        """Create the python-can bus, or take the one passed in; no-op when open.

        With ``fd``, a bus that python-can opened as CAN 2.0 (an interface
        without CAN FD, such as socketcand or slcan) is refused: its FD frames
        would go out as classic ones or not at all.
        """
        if self._bus is not None:
            return
        if self._given_bus is not None:
            bus = self._given_bus
        else:
            try:
                bus = can.Bus(**self._settings)
            except (*_WIRE_ERRORS, ImportError) as exc:
                raise BusError(
                    f"cannot open CAN interface '{self._settings['interface']}' channel "
                    f"'{self._settings['channel']}': {_one_line(exc)}"
                ) from exc
        if self._fd and bus.protocol is not can.CanProtocol.CAN_FD:
            if bus is not self._given_bus:
                bus.shutdown()
            raise BusError(
                f"CAN FD asked for (fd true) but python-can opened '{bus.channel_info}' as {bus.protocol.name}; "
                "allowed: fd false, or an interface that speaks CAN FD (socketcan, ...)"
            )
        self._bus = bus

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
        use under a quarter of a 20 ms period; CAN FD at 5 Mbit/s data about
        half of that (an 8-byte FD frame: about 29 bits at the nominal rate and
        97 at the data rate before stuffing).
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
        message = can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False, is_fd=self._fd, bitrate_switch=self._fd)
        try:
            bus.send(message)
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

    def _heard(self, msg: can.Message) -> bool:
        """Whether this controller receives ``msg`` as a data frame: a classic one never takes an FD frame."""
        return not (msg.is_error_frame or msg.is_remote_frame or (msg.is_fd and not self._fd))

    def _take_state(self, msg: can.Message) -> int | None:
        """Store a state reply from one of our motors and return its index; None for any other frame."""
        data = bytes(msg.data)
        if not self._heard(msg) or not data:
            return None
        i = self._by_reply.get(msg.arbitration_id << 4 | data[0] & 0xF)
        decoded = None if i is None else unpack_mit_reply(self._motors[i].limits, data)
        if decoded is None:  # not one of our motors, or not a whole reply
            return None
        _, status, q, dq, tau, _, _ = decoded
        self._status[i] = status
        self._position[i] = q
        self._velocity[i] = dq
        self._torque[i] = tau
        return i

    def _take_param(self, op: int, rid: int) -> Callable[[can.Message], int | None]:
        """A receiver for parameter replies ``op``/``rid`` (they come on the master id, DM_CAN.py)."""

        def take(msg: can.Message) -> int | None:
            decoded = unpack_param(bytes(msg.data)) if self._heard(msg) else None
            if decoded is None or decoded[1:3] != (op, rid):
                return None
            can_id, _, _, value = decoded
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
        if not heard and len(pending) == len(self._motors):  # a classic bus and CAN FD motors (or the reverse) look like this
            problems += f"; no motor answered: check power, the channel, and that fd ({str(self._fd).lower()}) matches the motors' CAN mode"
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
        expected = register_value(rid, value)
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
