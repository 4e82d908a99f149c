"""``MotorBus`` for Feetech STS3215 servos (the SO-101) on ``scservo_sdk``.

The servo closes its own position loop, so a command is a Goal_Position per
servo (one sync write, 8 + 3n bytes) and a state is one sync read per tick of
the contiguous block Present_Position, Present_Velocity, Present_Load
(addresses 56..61: an 8 + n byte request, a 12-byte reply per servo). For six
servos that is 112 bytes a tick, 1.12 ms at 1 Mbaud and 10 bits a byte, before
any Return_Delay_Time (set to 0). Motor space is the servo's own frame: angle 0 is tick
2048 (half a turn, where LeRobot's homing puts the calibration pose), 4096
ticks a turn; velocity counts ticks/s (Feetech's speed unit, step/s); torque
is Present_Load, per mille of the rated 3.35 N·m (ROBOTS.md; Feetech's own
library calls it the share of drive voltage, which we take as torque).

``enable`` configures the servos as LeRobot's SO-101 follower does
(``so_follower.py configure``, ``feetech.py configure_motors``): position
mode, P 16 / I 0 / D 32, Return_Delay_Time 0, Acceleration and
Maximum_Acceleration 254, Phase bit 4 cleared (single-turn readings), plus the
calibration given (Homing_Offset, Min/Max_Position_Limit). It reads each
servo's table first and writes only what differs, the EEPROM registers
between Lock 0 and Lock 1, then checks the values stuck. It then sets the goal
to the present position (no jump at torque on), Torque_Limit, and Torque_Enable 1.

``effort`` maps onto the RAM register Torque_Limit (address 48): 1 is the
configured limit, 0 no torque; it is written only when it changes, so the
safe stop can ramp it down without touching the EEPROM gains.

Torque_Enable is not in the per-tick block: ``enabled`` is what the bus set and
read back in ``enable``/``disable``, cleared when a status reply carries an
error that the servo's Unloading_Condition says releases its torque.

The SDK's receive loop polls the port without sleeping; this bus waits for
the first byte of each reply with ``select`` and gives the port a read timeout
(``serial_port.py``) so the SDK's own loops sleep too, so a 2-core robot computer
keeps a core, and an emulator in the same process gets the interpreter.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence, TypeVar

import numpy as np
import scservo_sdk as scs

from simrl.deploy.buses.base import BusError, MotorCommand, MotorReadings
from simrl.deploy.buses.feetech.protocol import (
    CENTER_TICK,
    HOMING_OFFSET_LIMIT,
    RAD_PER_TICK,
    REGISTERS,
    STS3215_MODEL,
    TABLE_SIZE,
    TICKS_PER_TURN,
    describe_error,
    ticks_to_radians,
)
from simrl.deploy.buses.serial_port import WIRE_ERRORS, one_line, sleep_in_reads, wait_readable
from simrl.deploy.servo_calibration import MotorCalibration
from simrl.errors import SimrlError, did_you_mean

RATED_TORQUE_NM = 3.35  # STS3215 at 12 V: ROBOTS.md (TheRobotStudio SO101 MJCF, LeRobot so101)
STATE_BLOCK = (REGISTERS["Present_Position"].address, 6)  # Present_Position, _Velocity, _Load: 56..61
PHASE_MULTI_TURN_BIT = 0x10  # Phase bit 4: angle feedback mode; LeRobot clears it on STS3215 (configure_motors)
T = TypeVar("T")


FULL_RANGE = (0, TICKS_PER_TURN - 1)  # Min/Max_Position_Limit that let a goal anywhere on the turn


class FeetechBus:
    """Servos ``ids[i]`` named ``motor_names[i]`` on one Feetech serial bus (``MotorBus``).

    ``calibration`` maps motor names to their entry of a LeRobot calibration
    file (``MotorCalibration``); ``enable`` writes its Homing_Offset and range
    (as Min/Max_Position_Limit) to the servos and goals are clamped to the
    range. A motor without one keeps what its servo stores, goals over
    0..4095. An entry's ``id`` must be the motor's; its ``drive_mode`` (the
    joint's direction) is the bridge's calibration, not the servo's.
    ``reply_timeout`` bounds one tick's sync read, ``setup_timeout`` the sync
    reads of setup (``enable``, ``raw_positions``). Unicast setup transactions
    (ping, table reads, register writes) wait as long as the SDK does (2 x 16 ms
    + 2 ms + the bytes' time, port_handler.py) and are retried ``retries`` more
    times.
    """

    def __init__(
        self,
        motor_names: Sequence[str],
        ids: Sequence[int],
        calibration: Mapping[str, MotorCalibration] | None = None,
        *,
        port: str = "/dev/ttyACM0",
        baud: int = 1_000_000,
        reply_timeout: float = 0.005,
        setup_timeout: float = 0.05,
        retries: int = 3,
        p_coefficient: int = 16,
        i_coefficient: int = 0,
        d_coefficient: int = 32,
        acceleration: int = 254,
        torque_limits: Mapping[str, int] | None = None,
    ) -> None:
        _check_motors(motor_names, ids)
        self.motor_names = tuple(motor_names)
        self._ids = tuple(int(i) for i in ids)
        self._calibration = _per_motor(calibration, self.motor_names, "calibration")
        for i, entry in enumerate(self._calibration):
            if entry is not None and entry.id != self._ids[i]:
                raise SimrlError(f"calibration of motor '{self.motor_names[i]}' is for id {entry.id}; allowed: the motor's id {self._ids[i]}")
        self._range = [FULL_RANGE if c is None else (c.range_min, c.range_max) for c in self._calibration]
        limits = _per_motor(torque_limits, self.motor_names, "torque_limits")
        self._torque_limits = np.array([1000 if t is None else t for t in limits])
        if np.any((self._torque_limits < 0) | (self._torque_limits > 1000)):
            raise SimrlError(f"torque_limits = {dict(zip(self.motor_names, self._torque_limits.tolist()))}; allowed: 0..1000 per mille")
        self._settings = {
            "Operating_Mode": 0,
            "P_Coefficient": p_coefficient,
            "I_Coefficient": i_coefficient,
            "D_Coefficient": d_coefficient,
            "Return_Delay_Time": 0,
            "Maximum_Acceleration": acceleration,
            "Acceleration": acceleration,
        }
        for name, value in self._settings.items():
            if not 0 <= value < 1 << 8 * REGISTERS[name].size:
                raise SimrlError(f"Feetech bus: {name} = {value}; allowed: 0..{(1 << 8 * REGISTERS[name].size) - 1}")
        self.port_name, self.baud = port, baud
        self._reply_timeout, self._setup_timeout, self._retries = reply_timeout, setup_timeout, retries
        self._port: scs.PortHandler | None = None
        self._handler = scs.PacketHandler(0)  # protocol_end 0: little-endian words (STS/SMS series)
        n = len(self._ids)
        self._position = np.full(n, np.nan)
        self._velocity = np.full(n, np.nan)
        self._torque = np.full(n, np.nan)
        self._fault = [""] * n
        self._torque_on = np.zeros(n, dtype=bool)
        self._unloading = np.zeros(n, dtype=np.int64)  # per servo, the error bits that release its torque
        self._torque_limit_sent: np.ndarray | None = None

    # -- MotorBus

    def open(self) -> None:
        """Open the port and check that every servo answers a ping with the STS3215 model number; no-op when open."""
        if self._port is not None:
            return
        port = scs.PortHandler(self.port_name)
        port.baudrate = self.baud
        try:
            opened = port.openPort()
        except WIRE_ERRORS as exc:
            raise BusError(f"cannot open Feetech bus port '{self.port_name}': {one_line(exc)}") from exc
        if not opened:  # scservo_sdk PortHandler.getCFlagBaud: only the rates it lists
            raise BusError(f"cannot open Feetech bus port '{self.port_name}': scservo_sdk does not support {self.baud} baud")
        sleep_in_reads(port)
        self._port = port
        try:
            for i in range(len(self._ids)):
                model = self._setup(i, "ping", lambda p, h, sid: h.ping(p, sid))[0]
                if model != STS3215_MODEL:
                    raise BusError(f"{self._label(i)} reports model number {model}; allowed: {STS3215_MODEL} (STS3215)")
        except BaseException:
            self.close()
            raise

    def enable(self) -> MotorReadings:
        """Configure as LeRobot does for the SO-101 (writing only what differs), hold the present pose, torque on."""
        tables = [self._read_table(i) for i in range(len(self._ids))]
        for i, table in enumerate(tables):
            targets = dict(self._settings)
            entry = self._calibration[i]
            if entry is not None:
                targets.update(Homing_Offset=entry.homing_offset, Min_Position_Limit=entry.range_min, Max_Position_Limit=entry.range_max)
            phase = _value(table, "Phase")
            if phase & PHASE_MULTI_TURN_BIT:
                targets["Phase"] = phase & ~PHASE_MULTI_TURN_BIT
            self._configure(i, table, targets)
            self._unloading[i] = _value(table, "Unloading_Condition")
        present = self._sync_read(*STATE_BLOCK, self._setup_timeout)
        missing = [i for i in range(len(self._ids)) if i not in present]
        if missing:
            raise BusError(f"enable: {', '.join(self._label(i) for i in missing)} did not answer the state read")
        self._sync_write("Goal_Position", [_value(present[i][1], "Present_Position", STATE_BLOCK[0]) for i in range(len(self._ids))])
        self._send_torque_limits(self._torque_limits)
        self._set_torque(True)
        return self._read(self._setup_timeout)

    def read(self) -> MotorReadings:
        """One sync read of Present_Position/Velocity/Load; servos that do not answer in ``reply_timeout`` are not fresh."""
        return self._read(self._reply_timeout)

    def _read(self, timeout: float) -> MotorReadings:
        replies = self._sync_read(*STATE_BLOCK, timeout)
        fresh = np.zeros(len(self._ids), dtype=bool)
        start = STATE_BLOCK[0]
        for i, (error, data) in replies.items():
            fresh[i] = True
            self._position[i] = ticks_to_radians(_value(data, "Present_Position", start))
            self._velocity[i] = _value(data, "Present_Velocity", start) * RAD_PER_TICK
            self._torque[i] = _value(data, "Present_Load", start) / 1000 * RATED_TORQUE_NM
            self._fault[i] = describe_error(error)
            if error & self._unloading[i]:
                self._torque_on[i] = False
        return MotorReadings(
            position=self._position.copy(),
            velocity=self._velocity.copy(),
            torque=self._torque.copy(),
            fresh=fresh,
            enabled=self._torque_on.copy(),
            fault=tuple(self._fault),
            stamp=time.monotonic(),
        )

    def exchange(self, command: MotorCommand) -> MotorReadings:
        """Sync-write Goal_Position (clamped to each servo's range), Torque_Limit when ``effort`` changed, then ``read``."""
        n = len(self._ids)
        position, effort = np.asarray(command.position, np.float64), np.asarray(command.effort, np.float64)
        if position.shape != (n,) or effort.shape != (n,):
            raise SimrlError(f"MotorCommand position/effort have shapes {position.shape}/{effort.shape}; allowed: ({n},), one per motor")
        if not np.all(np.isfinite(position) & np.isfinite(effort)):
            bad = [self.motor_names[i] for i in np.flatnonzero(~(np.isfinite(position) & np.isfinite(effort)))]
            raise SimrlError(f"MotorCommand position or effort is not finite for {', '.join(bad)}")
        ticks = np.rint(CENTER_TICK + position / RAD_PER_TICK)
        low, high = np.array(self._range).T
        self._sync_write("Goal_Position", np.clip(ticks, low, high).astype(int).tolist())
        limits = np.rint(np.clip(effort, 0.0, 1.0) * self._torque_limits).astype(int)
        if self._torque_limit_sent is None or not np.array_equal(limits, self._torque_limit_sent):
            self._send_torque_limits(limits)
        return self.read()

    def disable(self) -> MotorReadings:
        """Torque off (read back from every servo), then one state read with the setup timeout: setup, not a tick,
        so a fast loop's short reply timeout does not leave the final state unconfirmed."""
        self.disable_torque()
        return self._read(self._setup_timeout)

    def close(self) -> None:
        """Close the port; safe to call twice."""
        if self._port is not None:
            try:
                self._port.closePort()
            except WIRE_ERRORS:
                pass  # the port is already gone
        self._port = None

    def __enter__(self) -> "FeetechBus":
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what the calibration procedure needs (``servo_calibration.CalibrationPort``)

    def disable_torque(self) -> None:
        """Torque_Enable 0 on every servo, checked by reading it back; nothing else changes."""
        self._set_torque(False)

    def prepare_for_calibration(self) -> None:
        """Torque off: all an STS3215 needs before LeRobot's homing (``so_follower.py`` ``calibrate``)."""
        self.disable_torque()

    def raw_positions(self) -> dict[str, int]:
        """Every servo's Present_Position in raw ticks (after its Homing_Offset)."""
        address = REGISTERS["Present_Position"].address
        replies = self._sync_read(address, 2, self._setup_timeout)
        missing = [self._label(i) for i in range(len(self._ids)) if i not in replies]
        if missing:
            raise BusError(f"raw_positions: {', '.join(missing)} did not answer")
        return {self.motor_names[i]: _value(data, "Present_Position", address) for i, (_, data) in sorted(replies.items())}

    def write_homing_offsets(self, offsets: Mapping[str, int]) -> None:
        """Write Homing_Offset (ticks) of the named servos, unlocking their EEPROM for it."""
        for name, offset in offsets.items():
            i = self._index(name)
            if not -HOMING_OFFSET_LIMIT <= offset <= HOMING_OFFSET_LIMIT:
                raise SimrlError(f"motor '{name}': homing_offset = {offset}; allowed: -{HOMING_OFFSET_LIMIT}..{HOMING_OFFSET_LIMIT} ticks")
            self._configure(i, self._read_table(i), {"Homing_Offset": offset})

    def write_position_limits(self, limits: Mapping[str, tuple[int, int]]) -> None:
        """Write Min/Max_Position_Limit (ticks) of the named servos; later goals are clamped to the new range."""
        for name, (low, high) in limits.items():
            i = self._index(name)
            if not 0 <= low < high <= TICKS_PER_TURN - 1:
                raise SimrlError(f"motor '{name}': position limits {low}..{high}; allowed: 0 <= min < max <= {TICKS_PER_TURN - 1}")
            self._configure(i, self._read_table(i), {"Min_Position_Limit": low, "Max_Position_Limit": high})
            self._range[i] = (low, high)

    # -- transactions

    def _require_port(self) -> scs.PortHandler:
        if self._port is None:
            raise BusError(f"Feetech bus on '{self.port_name}' is not open; call open() first")
        return self._port

    def _wire(self, call: Callable[[], T]) -> T:
        """Run an SDK call; the port failing becomes a ``BusError`` naming it."""
        port = self._require_port()
        try:
            return call()
        except WIRE_ERRORS as exc:
            raise BusError(f"Feetech bus on '{self.port_name}' failed: {one_line(exc)}") from exc
        finally:
            port.is_using = False  # the SDK leaves it set when a transaction stops half way

    def _setup(self, i: int, what: str, call: Callable[[scs.PortHandler, object, int], tuple]) -> tuple:
        """A unicast SDK transaction with servo ``i``, retried; its output (``(value, result, error)`` or ``(result, error)``)."""
        port = self._require_port()

        def transact() -> tuple:
            port.ser.reset_input_buffer()  # a late reply to an earlier try is not this one's
            return call(port, self._handler, self._ids[i])

        result = scs.COMM_TX_FAIL
        for attempt in range(self._retries + 1):
            if attempt:  # let a late reply to the failed try arrive before the flush, or it answers the next try
                time.sleep(self._setup_timeout)
            try:
                out = self._wire(transact)
            except IndexError:  # the SDK read a valid packet too short for the answer (ping's model number): a stray reply
                result = scs.COMM_RX_CORRUPT
                continue
            result = out[-2]
            if result == scs.COMM_SUCCESS:
                return out
        raise BusError(
            f"{what}: {self._label(i)} did not answer on '{self.port_name}' at {self.baud} baud "
            f"after {self._retries + 1} {'try' if self._retries == 0 else 'tries'} ({self._handler.getTxRxResult(result).removeprefix('[TxRxResult] ')})"
        )

    def _read_table(self, i: int) -> bytes:
        """Servo ``i``'s whole control table (one READ of addresses 0..86)."""
        data = bytes(self._setup(i, "read control table", lambda p, h, sid: h.readTxRx(p, sid, 0, TABLE_SIZE))[0])
        if len(data) != TABLE_SIZE:
            raise BusError(f"{self._label(i)} sent {len(data)} table bytes; expected {TABLE_SIZE}")
        return data

    def _write_register(self, i: int, name: str, value: int) -> None:
        reg = REGISTERS[name]
        payload = list(reg.encode(value))
        self._setup(i, f"write {name}", lambda p, h, sid: h.writeTxRx(p, sid, reg.address, reg.size, payload))

    def _configure(self, i: int, table: bytes, targets: Mapping[str, int]) -> None:
        """Write the registers of ``targets`` that differ from ``table``, EEPROM ones between Lock 0 and 1; check they stuck."""
        changes = {name: value for name, value in targets.items() if _value(table, name) != value}
        eeprom = {name: value for name, value in changes.items() if REGISTERS[name].eeprom}
        if eeprom:
            self._write_register(i, "Lock", 0)
        for name, value in changes.items():
            self._write_register(i, name, value)
        if eeprom or _value(table, "Lock") != 1:
            self._write_register(i, "Lock", 1)
        if changes:
            now = self._read_table(i)
            stuck = {name: _value(now, name) for name in changes if _value(now, name) != changes[name]}
            if stuck:
                detail = ", ".join(f"{name} reads {got} after writing {changes[name]}" for name, got in stuck.items())
                raise BusError(f"{self._label(i)}: {detail}; the servo did not take the write (EEPROM lock?)")

    def _set_torque(self, on: bool) -> None:
        """Torque_Enable on every servo (one sync write), then read back from each."""
        self._sync_write("Torque_Enable", [int(on)] * len(self._ids))
        address = REGISTERS["Torque_Enable"].address
        for i in range(len(self._ids)):
            state = self._setup(i, "read Torque_Enable", lambda p, h, sid: h.read1ByteTxRx(p, sid, address))[0]
            if state != int(on):
                raise BusError(f"{self._label(i)} reports Torque_Enable {state} after writing {int(on)}")
            self._torque_on[i] = on

    def _send_torque_limits(self, limits: np.ndarray) -> None:
        self._sync_write("Torque_Limit", limits.astype(int).tolist())
        self._torque_limit_sent = limits.copy()

    def _sync_write(self, name: str, values: Sequence[int]) -> None:
        """One SYNC_WRITE of register ``name``: ``values[i]`` to servo ``ids[i]`` (no replies)."""
        reg = REGISTERS[name]
        port = self._require_port()
        group = scs.GroupSyncWrite(port, self._handler, reg.address, reg.size)
        for servo_id, value in zip(self._ids, values):
            group.addParam(servo_id, list(reg.encode(int(value))))
        result = self._wire(group.txPacket)
        if result != scs.COMM_SUCCESS:
            raise BusError(f"sync write of {name} on '{self.port_name}' failed: {self._handler.getTxRxResult(result)}")

    def _sync_read(self, address: int, size: int, timeout: float) -> dict[int, tuple[int, bytes]]:
        """One SYNC_READ; ``{servo index: (error byte, data)}`` for the replies that came within ``timeout``.

        The SDK's ``GroupSyncRead.rxPacket`` stops at the first servo that does
        not answer and drops the replies after it; here each status packet is
        taken through the SDK's ``rxPacket`` and filed by its id, so one silent
        servo costs only its own reading.
        """
        port = self._require_port()
        group = scs.GroupSyncRead(port, self._handler, address, size)
        for servo_id in self._ids:
            group.addParam(servo_id)
        index = {servo_id: i for i, servo_id in enumerate(self._ids)}

        def exchange() -> dict[int, tuple[int, bytes]]:
            port.ser.reset_input_buffer()  # replies that came after an earlier timeout are not this read's
            result = group.txPacket()
            if result != scs.COMM_SUCCESS:
                raise BusError(f"sync read on '{self.port_name}' failed to send: {self._handler.getTxRxResult(result)}")
            deadline = time.monotonic() + timeout
            port.setPacketTimeoutMillis(timeout * 1000)
            replies: dict[int, tuple[int, bytes]] = {}
            while len(replies) < len(self._ids):
                if not wait_readable(port, deadline):
                    break
                packet, result = self._handler.rxPacket(port)
                i = index.get(packet[2]) if result == scs.COMM_SUCCESS else None
                if i is not None and packet[3] == size + 2:
                    replies[i] = (packet[4], bytes(packet[5 : 5 + size]))
            return replies

        return self._wire(exchange)

    # -- helpers

    def _index(self, name: str) -> int:
        if name not in self.motor_names:
            raise SimrlError(f"no Feetech motor named '{name}'{did_you_mean(name, self.motor_names)}; motors: {', '.join(self.motor_names)}")
        return self.motor_names.index(name)

    def _label(self, i: int) -> str:
        return f"motor '{self.motor_names[i]}' (id {self._ids[i]})"


def _value(table: bytes, name: str, start: int = 0) -> int:
    """Register ``name`` decoded from ``table``, a block read from address ``start``."""
    reg = REGISTERS[name]
    return reg.decode(table[reg.address - start : reg.address - start + reg.size])


def _per_motor(values: Mapping[str, T] | None, names: Sequence[str], what: str) -> list[T | None]:
    """``values`` as a list in motor order (None where absent); a name that is no motor is an error."""
    values = values or {}
    for name in values:
        if name not in names:
            raise SimrlError(f"{what}: no Feetech motor named '{name}'{did_you_mean(name, names)}; motors: {', '.join(names)}")
    return [values.get(name) for name in names]


def _check_motors(names: Sequence[str], ids: Sequence[int]) -> None:
    if not names or len(names) != len(ids):
        raise SimrlError(f"Feetech bus: {len(names)} motor names for {len(ids)} ids; allowed: one id per name, at least one")
    if len(set(names)) != len(names) or len(set(ids)) != len(ids):
        raise SimrlError(f"Feetech bus: motor names {list(names)} / ids {list(ids)}; allowed: distinct names and distinct ids")
    for name, servo_id in zip(names, ids):
        if not 0 <= servo_id <= scs.MAX_ID:  # scservo_def.py MAX_ID 252
            raise SimrlError(f"motor '{name}': id {servo_id}; allowed: 0..{scs.MAX_ID}")
