"""Dynamixel X-series servos (Protocol 2.0) as a ``MotorBus``, through ROBOTIS' ``dynamixel_sdk``.

The servo closes its own position loop with the gains in its control table, so
``exchange`` sends only Goal Position (and Goal PWM when ``effort`` changes)
and ignores the command's impedance fields (base.py). Motor space:
``protocol.ticks_to_radians`` (tick 2048 = 0 rad, 4096 ticks per turn, the
servo's counter-clockwise positive), velocity from 0.229 rev/min units, torque
from Present Current (XM430, XL330) or Present Load (XL430) through
``protocol.torque_from_register``.

One tick on the wire, six servos at 1 Mbaud: a Sync Write of Goal Position
(14 + 6 x 5 = 44 bytes, no answer), a Sync Read request of items 126..135
(14 + 6 = 20 bytes) and six status packets of 11 + 10 bytes: 190 bytes, 1.9 ms
at 10 bits per byte. Present Current/Load (126), Velocity (128) and Position
(132) are one contiguous block on all three models, so one Sync Read serves
a mixed arm. ``enabled`` is the torque state each servo acknowledged at
``enable``/``disable``; a servo that shuts itself down sets the alert bit of
every status packet, and the bus then reads its Torque Enable and Hardware
Error Status to report ``enabled`` False and the fault's reason.

``enable`` configures the servos as LeRobot's Koch and OMX followers do
(huggingface/lerobot 7427f318, ``robots/koch_follower/koch_follower.py`` and
``robots/omx_follower/omx_follower.py`` ``configure``; ``motors/dynamixel/
dynamixel.py`` ``configure_motors``, ``write_calibration``): Return Delay Time
0, each motor's Operating Mode (LeRobot: extended position (4) for the arm
joints, so a servo assembled near its 4095 -> 0 wrap still counts on, and
current-based position (5) for the gripper, so a blocked jaw presses with at
most Goal Current), the Position P/I/D gains a motor names (LeRobot: P 1500,
I 0, D 600 on elbow_flex), and the calibration given: Homing_Offset and
Min/Max Position Limit as ``write_calibration`` writes them, and Drive Mode
bit 0 from the file's drive_mode, which LeRobot's ``read_calibration`` reads
back from that register (``servo_calibration``). It reads each servo's
EEPROM block once and writes only the items that differ; a refused write is
an error naming the motor. Goals are clamped to the calibrated range (in
extended position mode the servo no longer clamps them itself). A current-based
position motor gets its ``goal_current`` as Goal Current (else its Current
Limit, as LeRobot leaves it), written only where it differs.

A Dynamixel counts from its reading within one turn at power-on (e-manual
``x/goal_position.md``), so a joint powered on where its encoder had wrapped
reads a whole turn off its calibration, and holding the calibrated range would
drive it a turn. ``enable`` refuses (``BusError``, torque still off) a motor
whose Present Position lies outside its calibrated range by more than
``WRAP_MARGIN``: farther than a joint rests past the ends its owner swept, and
less than the turn a wrap puts between them (for a range narrower than three
quarters of a turn; a wider one cannot tell a wrap from a pose).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, TypeVar

import dynamixel_sdk as sdk
import numpy as np

from simrl.deploy.buses.base import BusError, MotorCommand, MotorReadings
from simrl.deploy.buses.dynamixel import protocol as dxl
from simrl.deploy.buses.dynamixel.settings import check_goal_current
from simrl.deploy.buses.serial_port import WIRE_ERRORS, one_line, sleep_in_reads, wait_readable
from simrl.deploy.servo_calibration import MotorCalibration
from simrl.errors import SimrlError, did_you_mean

T = TypeVar("T")

# Operating Mode (11) values a motor may run in: the position-controlled ones (x/*.md "Operating Mode").
MODES = {"position": dxl.POSITION_MODE, "extended_position": dxl.EXTENDED_POSITION_MODE, "current_position": dxl.CURRENT_POSITION_MODE}
EEPROM_BLOCK = (9, 47)  # Return Delay Time (9) .. Min Position Limit (52, 4 bytes): everything enable configures, one read
GAIN_BLOCK = (80, 6)  # Position D (80), I (82), P (84) Gain
STATE_ADDRESS, STATE_LENGTH = 126, 10  # Present Current/Load (126, 2), Present Velocity (128, 4), Present Position (132, 4)
STATUS_OVERHEAD = 11  # header 4, id, length 2, instruction, error, CRC 2 (protocol2.md "Status Packet")
WRAP_MARGIN = dxl.TICKS_PER_REV // 4  # ticks past a calibrated end that ``enable`` still takes for a real pose (a quarter turn)


class DynamixelConfigError(SimrlError):
    """A motor list, model or mode the Dynamixel bus cannot use."""


@dataclass(frozen=True)
class DynamixelMotor:
    """One servo on the bus: its name, id, model (a ``protocol.MODELS`` key such as ``"xl430-w250"``), operating mode
    (a ``MODES`` key), the Position P, I, D gains to write (None: keep the servo's) and, in current-based position
    mode, the Goal Current to write (the model's current units; None: the servo's Current Limit)."""

    name: str
    id: int
    model: str
    mode: str = "extended_position"
    gains: tuple[int, int, int] | None = None
    goal_current: int | None = None

    def __post_init__(self) -> None:
        if self.model not in dxl.MODELS:
            raise DynamixelConfigError(
                f"Dynamixel motor '{self.name}': model '{self.model}' is not one of "
                f"{', '.join(dxl.MODELS)}{did_you_mean(self.model, dxl.MODELS)}"
            )
        if not 0 <= self.id <= dxl.MAX_ID:
            raise DynamixelConfigError(f"Dynamixel motor '{self.name}': id {self.id} is outside 0..{dxl.MAX_ID}")
        if self.mode not in MODES or MODES[self.mode] not in self.spec.modes:
            allowed = [name for name, value in MODES.items() if value in self.spec.modes]
            why = f" (the {self.model} has no such mode)" if self.mode in MODES else did_you_mean(self.mode, allowed)
            raise DynamixelConfigError(f"Dynamixel motor '{self.name}': mode '{self.mode}'{why}; allowed on the {self.model}: {', '.join(allowed)}")
        if self.gains is not None and not all(0 <= g <= dxl.MAX_GAIN for g in self.gains):
            raise DynamixelConfigError(f"Dynamixel motor '{self.name}': gains {self.gains}; allowed: 0..{dxl.MAX_GAIN} each")
        if self.goal_current is not None:
            try:
                check_goal_current(self.model, self.mode, self.goal_current)
            except ValueError as exc:
                raise DynamixelConfigError(f"Dynamixel motor '{self.name}': {exc}") from None

    @property
    def spec(self) -> dxl.ServoModel:
        return dxl.MODELS[self.model]

    @property
    def operating_mode(self) -> int:
        return MODES[self.mode]


class DynamixelBus:
    """``MotorBus`` for Dynamixel X-series servos on serial ``port`` at ``baud``.

    Each motor runs in its own operating mode (``DynamixelMotor.mode``).
    ``calibration`` maps motor names to their entry of a LeRobot calibration
    file (``MotorCalibration``); ``enable`` writes it to the servos and goals
    are clamped to its range. A motor without one keeps what its servo stores.
    An entry's ``id`` must be the motor's. ``reply_timeout`` is how long a
    per-tick read waits beyond the replies' own wire time; its 5 ms default
    assumes the USB adapter's latency timer at 1 ms (FTDI ships 16 ms, which
    ROBOTIS and LeRobot advise lowering). Setup steps (ping, configuration) use
    the SDK's own timeouts and are tried ``retries`` more times before ``BusError``.
    """

    def __init__(
        self,
        port: str,
        motors: Sequence[DynamixelMotor],
        calibration: Mapping[str, MotorCalibration] | None = None,
        *,
        baud: int = 1_000_000,
        reply_timeout: float = 0.005,
        retries: int = 3,
    ) -> None:
        _check_motors(motors)
        self.motor_names = tuple(m.name for m in motors)
        calibration = dict(calibration or {})
        for name, entry in calibration.items():
            if name not in self.motor_names:
                raise DynamixelConfigError(f"calibration of '{name}': no such motor{did_you_mean(name, self.motor_names)}; motors: {', '.join(self.motor_names)}")
            motor = motors[self.motor_names.index(name)]
            if entry.id != motor.id:
                raise DynamixelConfigError(f"calibration of motor '{name}' is for id {entry.id}; allowed: the motor's id {motor.id}")
        self.port = port
        self._motors = tuple(motors)
        self._calibration = [calibration.get(m.name) for m in motors]
        self._baud = baud
        self._reply_timeout = reply_timeout
        self._retries = retries
        self._handler = sdk.PacketHandler(2.0)
        self._port: sdk.PortHandler | None = None
        self._goal_position: sdk.GroupSyncWrite | None = None
        self._goal_pwm: sdk.GroupSyncWrite | None = None
        self._state: sdk.GroupSyncRead | None = None
        n = len(motors)
        self._position = np.full(n, np.nan)
        self._velocity = np.full(n, np.nan)
        self._torque = np.full(n, np.nan)
        self._enabled = np.zeros(n, dtype=bool)
        self._fault = [""] * n
        self._pwm_limit = np.full(n, dxl.PWM_FULL_SCALE)
        self._position_range = [(-dxl.EXTENDED_POSITION_RANGE, dxl.EXTENDED_POSITION_RANGE)] * n
        self._sent_pwm: list[int] | None = None

    # -- MotorBus

    def open(self) -> None:
        """Open the port at ``baud``, then ping every servo and check its model number; no-op when open."""
        if self._port is not None:
            return
        port = sdk.PortHandler(self.port)
        try:
            opened = port.setBaudRate(self._baud)  # opens the serial device at this rate
        except WIRE_ERRORS as exc:
            raise BusError(f"cannot open Dynamixel port '{self.port}': {one_line(exc)}") from exc
        if not opened:
            raise BusError(f"cannot open Dynamixel port '{self.port}' at {self._baud} baud: the SDK does not support that rate")
        sleep_in_reads(port)
        self._port = port
        try:
            for i in range(len(self._motors)):
                self._check_model(i)
        except BusError:
            self.close()
            raise
        self._goal_position = sdk.GroupSyncWrite(port, self._handler, 116, 4)  # Goal Position
        self._goal_pwm = sdk.GroupSyncWrite(port, self._handler, 100, 2)  # Goal PWM
        self._state = sdk.GroupSyncRead(port, self._handler, STATE_ADDRESS, STATE_LENGTH)
        for m in self._motors:
            self._goal_position.addParam(m.id, bytes(4))
            self._goal_pwm.addParam(m.id, bytes(2))
            self._state.addParam(m.id)

    def enable(self) -> MotorReadings:
        """Torque off; configure as LeRobot does (the module docstring), writing only what differs; hold the present
        position at full Goal PWM (and Goal Current = Current Limit); torque on. Returns the first readings."""
        for i in range(len(self._motors)):
            self._write(i, "torque_enable", 0)
        for i, m in enumerate(self._motors):
            eeprom = self._read(i, *EEPROM_BLOCK)[1]
            targets = {"return_delay_time": 0, "operating_mode": m.operating_mode}
            entry = self._calibration[i]
            if entry is not None:  # LeRobot's write_calibration order: Homing_Offset, Min_, Max_Position_Limit
                drive = _item(m.spec, eeprom, EEPROM_BLOCK[0], "drive_mode")
                targets = {
                    "drive_mode": drive & ~dxl.DRIVE_MODE_REVERSE | (dxl.DRIVE_MODE_REVERSE if entry.drive_mode else 0),
                    "homing_offset": entry.homing_offset,
                    "min_position_limit": entry.range_min,
                    "max_position_limit": entry.range_max,
                    **targets,
                }
            self._configure(i, eeprom, EEPROM_BLOCK[0], targets)
            if m.gains is not None:
                p_gain, i_gain, d_gain = m.gains
                gains = self._read(i, *GAIN_BLOCK)[1]
                self._configure(i, gains, GAIN_BLOCK[0], {"position_p_gain": p_gain, "position_i_gain": i_gain, "position_d_gain": d_gain})
            self._pwm_limit[i] = _item(m.spec, eeprom, EEPROM_BLOCK[0], "pwm_limit")
            self._position_range[i] = self._goal_range(i, eeprom)
            if m.operating_mode == dxl.CURRENT_POSITION_MODE:
                self._configure_goal_current(i, _item(m.spec, eeprom, EEPROM_BLOCK[0], "current_limit"))
            self._write(i, "goal_pwm", int(self._pwm_limit[i]))
            low, high = self._position_range[i]  # an arm resting past its calibrated stop is held at the stop
            present = int.from_bytes(self._read(i, 132, 4)[1], "little", signed=True)
            if entry is not None:
                self._check_not_wrapped(i, present, low, high)
            self._write(i, "goal_position", min(max(present, low), high))
        self._sent_pwm = [int(v) for v in self._pwm_limit]
        for i in range(len(self._motors)):
            self._write(i, "torque_enable", 1)
            self._enabled[i] = True
            self._fault[i] = ""
        return self.read()

    def read(self) -> MotorReadings:
        """One Sync Read of items 126..135 from every servo; the status packets that arrive in time."""
        port = self._require_port()
        assert self._state is not None
        result = self._io("sync read request", self._state.txPacket)
        if result != sdk.COMM_SUCCESS:
            raise BusError(f"Dynamixel sync read on '{self.port}' failed: {self._handler.getTxRxResult(result)}")
        wire = len(self._motors) * (STATUS_OVERHEAD + STATE_LENGTH) * 10 / self._baud
        deadline = time.monotonic() + wire + self._reply_timeout
        port.setPacketTimeoutMillis((wire + self._reply_timeout) * 1000.0)
        pending = {m.id: i for i, m in enumerate(self._motors)}
        fresh = np.zeros(len(self._motors), dtype=bool)
        alerted = []
        for _ in range(2 * len(self._motors)):  # each pass takes one packet (or gives up on one): a babbling port cannot hold the tick
            if not pending or not self._wait_readable(port, deadline):
                break
            packet, result = self._io("sync read", lambda: self._handler.rxPacket(port, False))
            if result != sdk.COMM_SUCCESS:
                continue  # a corrupt packet: the next may still be whole; silence ends the loop at the deadline
            i = pending.pop(packet[4], None)
            if i is None:
                continue
            error, data = packet[8], bytes(packet[9 : 9 + STATE_LENGTH])
            if error & dxl.ALERT:
                alerted.append(i)
            else:
                self._fault[i] = ""
            if error & ~dxl.ALERT or len(data) != STATE_LENGTH:
                continue
            self._decode(i, data)
            fresh[i] = True
        port.is_using = False  # the SDK clears it only when it receives; after a silent tick the next send would see "busy"
        for i in alerted:
            self._read_fault(i)
        return self._readings(fresh)

    def exchange(self, command: MotorCommand) -> MotorReadings:
        """Sync Write Goal PWM (only when ``effort`` changed), then Goal Position; then ``read``."""
        self._require_port()
        n = len(self._motors)
        if len(command.position) != n or len(command.effort) != n:
            raise DynamixelConfigError(
                f"MotorCommand has {len(command.position)} positions and {len(command.effort)} efforts; allowed: {n}"
            )
        if not np.all(np.isfinite(command.position)):
            bad = self.motor_names[int(np.flatnonzero(~np.isfinite(command.position))[0])]
            raise DynamixelConfigError(f"Dynamixel bus: position for motor '{bad}' is not finite")
        assert self._goal_position is not None and self._goal_pwm is not None
        effort = np.clip(np.nan_to_num(np.asarray(command.effort, np.float64)), 0.0, 1.0)
        pwm = [round(float(e) * int(limit)) for e, limit in zip(effort, self._pwm_limit)]
        if pwm != self._sent_pwm:
            for m, value in zip(self._motors, pwm):
                self._goal_pwm.changeParam(m.id, value.to_bytes(2, "little", signed=True))
            self._send(self._goal_pwm, "Goal PWM")
            self._sent_pwm = pwm
        for i, m in enumerate(self._motors):
            low, high = self._position_range[i]
            ticks = min(max(dxl.radians_to_ticks(float(command.position[i])), low), high)
            self._goal_position.changeParam(m.id, ticks.to_bytes(4, "little", signed=True))
        self._send(self._goal_position, "Goal Position")
        return self.read()

    def disable(self) -> MotorReadings:
        """Torque off on every servo (each asked even if another fails); raises ``BusError`` naming those that did not confirm."""
        failures = []
        for i in range(len(self._motors)):
            try:
                self._write(i, "torque_enable", 0)
                self._enabled[i] = False
            except BusError as exc:
                failures.append(str(exc))
        if failures:
            raise BusError("; ".join(failures))
        return self.read()

    def close(self) -> None:
        """Close the port; safe to call twice, and after the port vanished."""
        port, self._port = self._port, None
        if port is not None and port.is_open:
            try:
                port.closePort()
            except WIRE_ERRORS:
                pass

    def __enter__(self) -> "DynamixelBus":
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what the calibration procedure needs (``servo_calibration.CalibrationPort``)

    def prepare_for_calibration(self) -> None:
        """Torque off, Drive Mode normal (``omx_follower.py`` ``calibrate`` writes it NON_INVERTED: our procedure records
        drive_mode 0, so the servos must agree), extended position mode (``koch_follower.py`` ``calibrate``: Homing Offset
        then holds beyond +-1,024 and Present Position counts on past the wrap), each only where it differs."""
        for i in range(len(self._motors)):
            self._write(i, "torque_enable", 0)
            self._enabled[i] = False
        for i, m in enumerate(self._motors):
            eeprom = self._read(i, *EEPROM_BLOCK)[1]
            drive = _item(m.spec, eeprom, EEPROM_BLOCK[0], "drive_mode")
            targets = {"drive_mode": drive & ~dxl.DRIVE_MODE_REVERSE, "operating_mode": dxl.EXTENDED_POSITION_MODE}
            self._configure(i, eeprom, EEPROM_BLOCK[0], targets)

    def raw_positions(self) -> dict[str, int]:
        """Every servo's Present Position in ticks (Homing Offset applied; in extended position mode not wrapped to one turn)."""
        return {m.name: int.from_bytes(self._read(i, 132, 4)[1], "little", signed=True) for i, m in enumerate(self._motors)}

    def write_homing_offsets(self, offsets: Mapping[str, int]) -> None:
        """Write Homing Offset (ticks; EEPROM, so only with torque off) of the named servos."""
        for name, offset in offsets.items():
            self._write(self._index(name), "homing_offset", offset)

    def write_position_limits(self, limits: Mapping[str, tuple[int, int]]) -> None:
        """Write Min/Max Position Limit (ticks) of the named servos; later goals are clamped to the new range."""
        for name, (low, high) in limits.items():
            i = self._index(name)
            if not 0 <= low < high <= dxl.TICKS_PER_REV - 1:
                raise DynamixelConfigError(f"motor '{name}': position limits {low}..{high}; allowed: 0 <= min < max <= {dxl.TICKS_PER_REV - 1}")
            self._write(i, "min_position_limit", low)
            self._write(i, "max_position_limit", high)
            self._position_range[i] = (low, high)

    # -- internals

    def _index(self, name: str) -> int:
        if name not in self.motor_names:
            raise DynamixelConfigError(f"no Dynamixel motor named '{name}'{did_you_mean(name, self.motor_names)}; motors: {', '.join(self.motor_names)}")
        return self.motor_names.index(name)

    def _goal_range(self, i: int, eeprom: bytes) -> tuple[int, int]:
        """Where goals are clamped: the calibrated range, else the servo's own limits in position mode, else its whole reach."""
        entry, m = self._calibration[i], self._motors[i]
        if entry is not None:
            return entry.range_min, entry.range_max
        if m.operating_mode == dxl.POSITION_MODE:
            start = EEPROM_BLOCK[0]
            return _item(m.spec, eeprom, start, "min_position_limit"), _item(m.spec, eeprom, start, "max_position_limit")
        return -dxl.EXTENDED_POSITION_RANGE, dxl.EXTENDED_POSITION_RANGE

    def _configure(self, i: int, block: bytes, start: int, targets: Mapping[str, int]) -> None:
        """Write the items of ``targets`` whose value in ``block`` (read from ``start``) differs, in the order given."""
        spec = self._motors[i].spec
        for item, value in targets.items():
            if _item(spec, block, start, item) != value:
                self._write(i, item, value)

    def _check_not_wrapped(self, i: int, present: int, low: int, high: int) -> None:
        """Refuse a reading farther than ``WRAP_MARGIN`` outside the calibrated range ``low..high`` (the module docstring)."""
        outside = max(low - present, present - high)
        if outside > WRAP_MARGIN:
            raise BusError(
                f"{self._label(i)}: Present Position {present} lies {outside} ticks outside its calibrated range {low}..{high} "
                f"(more than {WRAP_MARGIN}): powered on past its encoder's wrap, it reads a whole turn off and would be driven "
                "a turn; with the power off, move the joint into its range by hand, then power on again"
            )

    def _configure_goal_current(self, i: int, current_limit: int) -> None:
        """Goal Current (102): the motor's ``goal_current``, else the servo's Current Limit; written only where it differs.
        One above the servo's Current Limit, which the servo would refuse, is refused naming both."""
        m = self._motors[i]
        goal = current_limit if m.goal_current is None else m.goal_current
        if goal > current_limit:
            raise BusError(
                f"{self._label(i)}: goal_current {goal} is above the servo's Current Limit (38) {current_limit}; allowed: "
                f"0..{current_limit} (or raise the servo's Current Limit)"
            )
        register = m.spec.register("goal_current")
        if register.decode(self._read(i, register.address, register.size)[1]) != goal:
            self._write(i, "goal_current", goal)

    def _label(self, i: int) -> str:
        m = self._motors[i]
        return f"Dynamixel motor '{m.name}' (id {m.id}) on '{self.port}'"

    def _require_port(self) -> sdk.PortHandler:
        if self._port is None:
            raise BusError(f"Dynamixel bus on '{self.port}' is not open; call open() first")
        return self._port

    def _io(self, what: str, call: Callable[[], T]) -> T:
        """Run one SDK call; a failing port becomes ``BusError`` naming it."""
        port = self._require_port()
        try:
            return call()
        except WIRE_ERRORS as exc:
            port.is_using = False  # the SDK sets it around each packet and would report "port busy" from now on
            raise BusError(f"Dynamixel {what} on '{self.port}' failed: {one_line(exc)}") from exc

    def _wait_readable(self, port: sdk.PortHandler, deadline: float) -> bool:
        """Block (without spinning) until reply bytes are waiting or ``deadline`` passes.

        The SDK's receive loop polls the port without sleeping; left to it, a
        tick's wait would hold a CPU core and, with an emulator in the same
        process, starve the emulator's thread of the GIL for whole switch
        intervals (5 ms). Waiting here in ``select`` first lets the SDK find
        each status packet already arrived.
        """
        if self._io("poll", port.getBytesAvailable):
            return True  # even past the deadline: a reply already here is taken
        return self._io("wait", lambda: wait_readable(port, deadline))

    def _send(self, group: sdk.GroupSyncWrite, item: str) -> None:
        result = self._io(f"sync write of {item}", group.txPacket)
        if result != sdk.COMM_SUCCESS:
            raise BusError(f"Dynamixel sync write of {item} on '{self.port}' failed: {self._handler.getTxRxResult(result)}")

    def _tries(self, i: int, what: str, call: Callable[[], tuple[T, int, int]]) -> tuple[T, int]:
        """An SDK exchange with one servo, retried on silence or a corrupt reply; returns (value, error byte)."""
        result = sdk.COMM_SUCCESS
        for _ in range(self._retries + 1):
            value, result, error = self._io(what, call)
            if result == sdk.COMM_SUCCESS:
                return value, error
        raise BusError(f"{self._label(i)}: {what} got no valid answer in {self._retries + 1} tries at {self._baud} baud "
                       f"({self._handler.getTxRxResult(result)})")

    def _check_model(self, i: int) -> None:
        m = self._motors[i]
        port = self._require_port()
        number, _ = self._tries(i, "ping", lambda: self._handler.ping(port, m.id))
        if number != m.spec.number:
            found = dxl.MODEL_BY_NUMBER.get(number)
            raise BusError(
                f"{self._label(i)}: model number {number} ({found.name if found else 'unknown model'}), "
                f"expected {m.spec.number} ({m.spec.name})"
            )

    def _read(self, i: int, address: int, length: int) -> tuple[int, bytes]:
        """Read ``length`` bytes at ``address`` from servo ``i``; raises on an error byte other than the alert."""
        port, servo_id = self._require_port(), self._motors[i].id
        data, error = self._tries(i, f"read of {length} bytes at {address}",
                                  lambda: self._handler.readTxRx(port, servo_id, address, length))
        if error & ~dxl.ALERT or len(data) != length:
            raise BusError(f"{self._label(i)}: read of {length} bytes at {address} refused ({dxl.describe_error(error)})")
        return error, bytes(data)

    def _write(self, i: int, item: str, value: int) -> None:
        """Write one item of servo ``i`` and check the status packet accepts it."""
        port, m = self._require_port(), self._motors[i]
        register = m.spec.register(item)
        data = list(register.encode(value))
        _, error = self._tries(i, f"write of {item}",
                               lambda: (None, *self._handler.writeTxRx(port, m.id, register.address, register.size, data)))
        if error & ~dxl.ALERT:
            raise BusError(f"{self._label(i)}: write of {item} = {value} refused ({dxl.describe_error(error)})")

    def _read_fault(self, i: int) -> None:
        """A servo raised the alert bit: it shut down (torque off, control_table_shutdown.md); one read of Torque
        Enable (64) .. Hardware Error Status (70) names the reason. No retries: this runs inside a tick."""
        port, servo_id = self._require_port(), self._motors[i].id
        self._enabled[i] = False
        self._fault[i] = "hardware alert"
        data, result, error = self._io("hardware error read", lambda: self._handler.readTxRx(port, servo_id, 64, 7))
        if result == sdk.COMM_SUCCESS and not error & ~dxl.ALERT and len(data) == 7:
            self._enabled[i] = bool(data[0])
            self._fault[i] = dxl.describe_hardware_error(data[6]) or "hardware alert"

    def _decode(self, i: int, data: bytes) -> None:
        spec = self._motors[i].spec
        self._torque[i] = dxl.torque_from_register(spec, int.from_bytes(data[0:2], "little", signed=True))
        self._velocity[i] = int.from_bytes(data[2:6], "little", signed=True) * dxl.VELOCITY_UNIT
        self._position[i] = dxl.ticks_to_radians(int.from_bytes(data[6:10], "little", signed=True))

    def _readings(self, fresh: np.ndarray) -> MotorReadings:
        return MotorReadings(
            position=self._position.copy(),
            velocity=self._velocity.copy(),
            torque=self._torque.copy(),
            fresh=fresh,
            enabled=self._enabled.copy(),
            fault=tuple(self._fault),
            stamp=time.monotonic(),
        )


def _item(spec: dxl.ServoModel, block: bytes, start: int, name: str) -> int:
    """Control-table item ``name`` decoded from ``block``, bytes read from address ``start``."""
    register = spec.register(name)
    return register.decode(block[register.address - start : register.address - start + register.size])


def _check_motors(motors: Sequence[DynamixelMotor]) -> None:
    if not motors:
        raise DynamixelConfigError("Dynamixel bus needs at least one motor")
    for key, label in ((lambda m: m.name, "name"), (lambda m: m.id, "id")):
        seen: dict[object, str] = {}
        for m in motors:
            if key(m) in seen:
                raise DynamixelConfigError(f"Dynamixel motors '{seen[key(m)]}' and '{m.name}' share the same {label}; allowed: distinct")
            seen[key(m)] = m.name
