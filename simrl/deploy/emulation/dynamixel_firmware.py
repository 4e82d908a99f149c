"""Dynamixel X-series servos on one Protocol 2.0 bus, as firmware behind a ``PtySerialLink``.

``DynamixelFirmware`` is a ``serial_link.SerialFirmware``: raw bytes in, status
packets out. Each servo keeps its control table (``protocol.ServoModel``) and
drives one motor of a ``MotorPlant`` with its own position loop, so a client
(ROBOTIS' ``dynamixel_sdk``, LeRobot, our ``DynamixelBus``) sees what a real
bus would show: pings, reads, writes, Reg Write + Action, Reboot, Sync and
Bulk Read/Write, broadcast, error bytes, Return Delay Time, Status Return
Level, the EEPROM lock while torque is on, and a Baud Rate register.

What the emulator decides where the e-manual is silent (each a choice):

- A packet with a bad CRC, a torn one or an impossible length is dropped and
  counted (``rejected``), never answered: its id cannot be trusted, and an
  answer could collide with another servo's. The client then times out.
- Ticks <-> plant joint angle. Each servo's encoder reads ``encoder_zero``
  at plant joint angle 0 (default 2048, the horn's centre: joint 0 is motor
  angle 0), 4096 ticks a turn, counter-clockwise positive. The e-manual
  (``x/goal_position.md``) says Present Position is reset "to the absolute
  position value within a single turn" at power-on and when the Operating
  Mode changes to extended position; from there the servo counts on across
  turns. So the actual position is ``zero + angle / tick`` less the whole
  turns that put it in 0..4095 at the last such moment (a change of Drive
  Mode resets it too: our choice). Present Position = actual + Homing
  Offset (20) (``x/homing_offset.md``), except in position mode, which
  ignores an offset beyond +-1,024 (same page). Drive Mode (10) bit 0
  (Reverse) counts the actual position the other way (``x/drive_mode.md``);
  here it reverses velocity, current and PWM too, one frame for all (the
  e-manual names only the positions for the X430/XL330).
- The position loop acts on the plant as the MIT law
  ``tau = kp (q_goal - q) - kd dq``, its gains those of the servo model
  (``protocol.position_kp`` / ``position_kv``: the e-manual's conversions,
  the measured P divisor where there is one, the motor's figures at the
  supply simrl runs it at), the same statement a robot's MJCF servo must
  equal (tests/test_deploy_omx.py). The motor's back-EMF is not in ``kd``:
  like its armature and friction it belongs to the joint, which the plant's
  model carries (robots/omx/robot.xml: damping = stall torque / no-load
  speed, ``protocol.back_emf_damping``), so it is counted once. Velocity and
  PWM modes likewise drive the joint and leave its back-EMF to the plant.
  Position I, feed-forward and the Profile items are not modelled (I and
  feed-forward are 0 by default; a profile of 0 means a step, as here).
- Goal PWM (100) caps the torque at |Goal PWM| / 885 of the stall torque
  (``plant.set_torque_limit``, a share of the plant motor's rated torque,
  which for these servos is the model's stall torque: ``rated_torques``);
  in current-based position mode Goal Current caps it too. At power-on Goal
  PWM = PWM Limit, Goal Current = Current Limit and Goal Position = Present
  Position, so torque on holds the arm where it is; torque on also takes
  Goal Position from Present Position.
- Present Current / Load come from the plant's torque through the model's
  torque per amp (``protocol.torque_to_register``); temperature and input
  voltage read constant (35 degC, the recommended voltage).
- A Baud Rate write answers at the old rate, then the servo listens at the
  new one. The wire (``baud()``) moves to a new rate once every servo holds it
  (a client changes the whole bus, then reopens its port); until then the
  servos that changed cannot hear it.
- ``fault(servo_id, bits)`` raises a hardware error as a real overload or
  overheating would: Hardware Error Status set, torque off, the alert bit in
  every status packet, Torque Enable 1 refused (result fail) until Reboot.
- Factory Reset and Clear are answered with an instruction error (not modelled).
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Sequence

from simrl.deploy.buses.dynamixel import protocol as dxl
from simrl.deploy.buses.dynamixel.protocol import ErrorNumber, Instruction, Packet, ServoModel
from simrl.deploy.emulation.serial_link import Reply
from simrl.deploy.emulation.plant import MotorPlant
from simrl.errors import SimrlError, did_you_mean

RETURN_DELAY_UNIT = 2e-6  # s per Return Delay Time (9) unit (x/return_delay_time.md)
TEMPERATURE_C = 35
_READS = (Instruction.READ, Instruction.SYNC_READ, Instruction.BULK_READ)


def rated_torques(models: Sequence[str]) -> list[float]:
    """The plant motors' rated torques (N·m) for servos of ``models`` (``protocol.MODELS`` keys): their stall torques,
    of which Goal PWM and Goal Current take their shares."""
    return [dxl.MODELS[name].stall_torque for name in models]


class _Servo:
    """One servo: its control table, its registered write, and the plant motor it drives."""

    def __init__(self, model: ServoModel, motor: int, plant: MotorPlant, servo_id: int, baud_code: int, encoder_zero: int) -> None:
        self.model, self.motor, self.plant = model, motor, plant
        self.power_on_id, self.power_on_baud = servo_id, baud_code
        self.encoder_zero = encoder_zero  # the encoder's single-turn reading at plant joint angle 0
        self.turns = 0  # whole turns added to the count at the last single-turn reset
        self.table = bytearray()
        self.registered: tuple[int, bytes] | None = None
        self.power_on(keep_eeprom=False)

    # -- registers

    def get(self, name: str) -> int:
        r = self.model.register(name)
        return r.decode(self.table[r.address : r.address + r.size])

    def set(self, name: str, value: int) -> None:
        r = self.model.register(name)
        self.table[r.address : r.address + r.size] = r.encode(value)

    @property
    def id(self) -> int:
        return self.get("id")

    @property
    def rate(self) -> int:
        return self.model.baud_rates[self.get("baud_rate")]

    @property
    def alert(self) -> int:
        return dxl.ALERT if self.get("hardware_error_status") else 0

    def power_on(self, keep_eeprom: bool) -> None:
        """The table as after power-up (EEPROM kept on a reboot), torque off, holding where the arm is."""
        eeprom = bytes(self.table[: dxl.RAM_START])
        self.table = self.model.power_on_table()
        if keep_eeprom:
            self.table[: dxl.RAM_START] = eeprom
        else:
            self.set("id", self.power_on_id)
            self.set("baud_rate", self.power_on_baud)
        self.registered = None
        self.plant.set_enabled(self.motor, False)
        self.plant.set_deadband(self.motor, 0.0)  # a Dynamixel has no dead zone
        self.reset_turns()
        self.refresh()
        self.set("goal_position", self.get("present_position"))
        self.drive()

    # -- the position frame

    @property
    def direction(self) -> int:
        """-1 in Reverse Mode (Drive Mode bit 0), else +1."""
        return -1 if self.get("drive_mode") & dxl.DRIVE_MODE_REVERSE else 1

    def count(self, radians: float) -> float:
        """The actual position (ticks, unrounded) at plant joint angle ``radians``, before Homing Offset."""
        return self.direction * (self.encoder_zero + radians * dxl.TICKS_PER_RAD) + dxl.TICKS_PER_REV * self.turns

    def angle(self, count: float) -> float:
        """The plant joint angle where the actual position is ``count`` (inverse of ``count``)."""
        return (self.direction * (count - dxl.TICKS_PER_REV * self.turns) - self.encoder_zero) / dxl.TICKS_PER_RAD

    def reset_turns(self) -> None:
        """Count from the absolute position within a single turn (0..4095) from here on."""
        self.turns = 0
        self.turns = -math.floor(self.count(self.plant.sample(self.motor).position) / dxl.TICKS_PER_REV)

    def homing(self) -> int:
        """The Homing Offset in effect: position mode ignores one beyond +-1,024."""
        offset = self.get("homing_offset")
        if self.get("operating_mode") == dxl.POSITION_MODE and abs(offset) > dxl.POSITION_MODE_HOMING_LIMIT:
            return 0
        return offset

    # -- reads

    def read(self, address: int, length: int) -> tuple[int, bytes]:
        """(error number, data) for a read of ``length`` bytes at ``address``; gaps read 0."""
        if length == 0 or address + length > dxl.TABLE_END:
            return ErrorNumber.ACCESS, b""
        if address + length > dxl.RAM_START:
            self.refresh()
        return 0, bytes(self.table[address : address + length])

    def refresh(self) -> None:
        """Fill the present-state items from the plant's sensors."""
        model, sample, direction = self.model, self.plant.sample(self.motor), self.direction
        velocity = round(direction * sample.velocity / dxl.VELOCITY_UNIT)
        self.set("present_position", round(self.count(sample.position)) + self.homing())
        self.set("present_velocity", velocity)
        self.set("present_current" if model.current_unit else "present_load", dxl.torque_to_register(model, direction * sample.torque))
        pwm = round(direction * sample.torque / model.stall_torque * dxl.PWM_FULL_SCALE)
        self.set("present_pwm", max(-dxl.PWM_FULL_SCALE, min(dxl.PWM_FULL_SCALE, pwm)))
        self.set("moving", int(abs(velocity) > self.get("moving_threshold")))
        self.set("position_trajectory", self.get("goal_position"))
        self.set("present_input_voltage", round(model.voltage * 10))
        self.set("present_temperature", TEMPERATURE_C)

    # -- writes

    def check_write(self, address: int, data: bytes) -> int:
        """The error number a write of ``data`` at ``address`` would get (0: it may be applied)."""
        end = address + len(data)
        if not data or end > dxl.TABLE_END:
            return ErrorNumber.DATA_LENGTH if not data else ErrorNumber.ACCESS
        covered = {self.model.at(a) for a in range(address, end)}
        if None in covered:
            return ErrorNumber.ACCESS
        registers = sorted(covered, key=lambda r: r.address)  # type: ignore[arg-type, return-value]
        if registers[0].address < address or registers[-1].address + registers[-1].size > end:
            return ErrorNumber.DATA_LENGTH  # part of an item
        if any(not r.writable for r in registers):
            return ErrorNumber.ACCESS
        if self.get("torque_enable") and any(r.eeprom for r in registers):
            return ErrorNumber.ACCESS  # EEPROM is locked while torque is on
        after = bytearray(self.table)
        after[address:end] = data
        for r in registers:
            value = r.decode(after[r.address : r.address + r.size])
            error = self._check_value(r.name, value, after, r)
            if error:
                return error
        return 0

    def _check_value(self, name: str, value: int, after: bytearray, register: dxl.Register) -> int:
        """Range (the item's own) and limit (another item's) checks of one written value."""

        def other(item: str) -> int:
            r = self.model.register(item)
            return r.decode(after[r.address : r.address + r.size])

        if register.low is not None and register.high is not None and not register.low <= value <= register.high:
            return ErrorNumber.DATA_RANGE
        if name == "operating_mode" and value not in self.model.modes:
            return ErrorNumber.DATA_RANGE
        if name == "baud_rate" and value not in self.model.baud_rates:
            return ErrorNumber.DATA_RANGE
        if name == "torque_enable" and value and self.get("hardware_error_status"):
            return ErrorNumber.RESULT_FAIL  # after a shutdown only a reboot brings torque back
        bound = {"goal_pwm": "pwm_limit", "goal_current": "current_limit", "goal_velocity": "velocity_limit"}.get(name)
        if bound is not None and abs(value) > other(bound):
            return ErrorNumber.DATA_LIMIT
        if name == "goal_position":
            if other("operating_mode") == dxl.POSITION_MODE:
                if not other("min_position_limit") <= value <= other("max_position_limit"):
                    return ErrorNumber.DATA_LIMIT
            elif abs(value) > dxl.EXTENDED_POSITION_RANGE:
                return ErrorNumber.DATA_RANGE
        return 0

    def write(self, address: int, data: bytes) -> int:
        """Validate, then apply a write and act on it; returns the error number (nothing applied unless 0)."""
        error = self.check_write(address, data)
        if error:
            return error
        was_enabled, was_mode, was_direction = self.get("torque_enable"), self.get("operating_mode"), self.direction
        self.table[address : address + len(data)] = data
        touched = range(address, address + len(data))
        mode = self.get("operating_mode")
        if (mode != was_mode and mode == dxl.EXTENDED_POSITION_MODE) or self.direction != was_direction:
            self.reset_turns()
        if was_enabled != self.get("torque_enable"):
            self.plant.set_enabled(self.motor, bool(self.get("torque_enable")))
            goal = self.model.register("goal_position").address
            if self.get("torque_enable") and goal not in touched:
                self.refresh()
                self.set("goal_position", self.get("present_position"))
        self.drive()
        return 0

    def drive(self) -> None:
        """Hand the plant this servo's loop for its present mode, goals, gains and torque cap."""
        model, plant, motor, direction = self.model, self.plant, self.motor, self.direction
        mode, stall = self.get("operating_mode"), model.stall_torque
        share = min(abs(self.get("goal_pwm")), self.get("pwm_limit")) / dxl.PWM_FULL_SCALE
        if mode in dxl.POSITION_MODES:
            target = self.angle(self.get("goal_position") - self.homing())
            kp = dxl.position_kp(model, self.get("position_p_gain"), mode)
            plant.set_command(motor, target, 0.0, kp, dxl.position_kv(model, self.get("position_d_gain"), mode), 0.0)
            if mode == dxl.CURRENT_POSITION_MODE:
                share = min(share, self._current_share("goal_current"))
        elif mode == dxl.VELOCITY_MODE:  # PWM = KVP (v_goal - v), KVP = VelP/128 PWM units per velocity unit
            kv = self.get("velocity_p_gain") / 128.0 / dxl.PWM_FULL_SCALE * stall / dxl.VELOCITY_UNIT
            goal = direction * self.get("goal_velocity") * dxl.VELOCITY_UNIT
            plant.set_command(motor, 0.0, goal, 0.0, kv, 0.0)
        elif mode == dxl.CURRENT_MODE:  # torque follows Goal Current
            torque = direction * dxl.torque_from_register(model, self.get("goal_current"))
            plant.set_command(motor, 0.0, 0.0, 0.0, 0.0, torque)
            share = self._current_share("current_limit")
        else:  # PWM mode: the duty drives the motor (against its back-EMF, which the joint carries)
            plant.set_command(motor, 0.0, 0.0, 0.0, 0.0, direction * self.get("goal_pwm") / dxl.PWM_FULL_SCALE * stall)
            share = self.get("pwm_limit") / dxl.PWM_FULL_SCALE
        plant.set_torque_limit(motor, min(1.0, share))

    def _current_share(self, item: str) -> float:
        """The share of the stall torque the current in ``item`` (Goal Current or Current Limit) allows."""
        amps = abs(self.get(item)) * (self.model.current_unit or 0.0)
        return min(1.0, amps / self.model.stall_current)

    def shut_down(self, bits: int) -> None:
        """A hardware error: the bits latch, torque goes off (control_table_shutdown.md)."""
        self.set("hardware_error_status", self.get("hardware_error_status") | bits)
        self.set("torque_enable", 0)
        self.plant.set_enabled(self.motor, False)


class DynamixelFirmware:
    """``SerialFirmware`` for X-series servos driving ``plant`` motors 0..n-1 in the order of ``servos``.

    ``servos`` lists ``(id, model name)`` per plant motor (``protocol.MODELS``
    keys, e.g. ``"xl430-w250"``); ``baud`` is the rate their Baud Rate items hold
    at power-on; ``encoder_zero[i]`` is servo ``i``'s encoder reading (0..4095) at
    plant joint angle 0, default 2048. ``rejected`` counts packets dropped for a
    bad CRC, a torn body or an impossible length; ``handled`` counts good
    instruction packets.
    """

    def __init__(
        self, plant: MotorPlant, servos: Sequence[tuple[int, str]], baud: int = 1_000_000, encoder_zero: Sequence[int] | None = None
    ) -> None:
        if len(servos) != plant.num_motors:
            raise SimrlError(f"Dynamixel emulator: {len(servos)} servos for a plant of {plant.num_motors} motors")
        zeros = [dxl.CENTRE_TICK] * len(servos) if encoder_zero is None else list(encoder_zero)
        if len(zeros) != len(servos) or any(not 0 <= z < dxl.TICKS_PER_REV for z in zeros):
            raise SimrlError(f"Dynamixel emulator: encoder_zero = {zeros}; allowed: one tick in 0..{dxl.TICKS_PER_REV - 1} per servo ({len(servos)})")
        self._servos: list[_Servo] = []
        for motor, ((servo_id, name), zero) in enumerate(zip(servos, zeros)):
            if name not in dxl.MODELS:
                raise SimrlError(
                    f"Dynamixel emulator: servo id {servo_id} has model '{name}'{did_you_mean(name, dxl.MODELS)}; "
                    f"allowed: {', '.join(dxl.MODELS)}"
                )
            model = dxl.MODELS[name]
            codes = {rate: code for code, rate in model.baud_rates.items()}
            if baud not in codes:
                raise SimrlError(f"Dynamixel emulator: {model.name} cannot run at {baud} baud; allowed: {sorted(codes)}")
            if not 0 <= servo_id <= dxl.MAX_ID or servo_id in [s.power_on_id for s in self._servos]:
                raise SimrlError(f"Dynamixel emulator: servo id {servo_id} is taken or outside 0..{dxl.MAX_ID}")
            self._servos.append(_Servo(model, motor, plant, servo_id, codes[baud], zero))
        self._power_on_baud = baud
        self._wire_baud = baud
        self._parser = dxl.PacketParser()
        self._lock = threading.Lock()
        self.handled = 0
        self._handlers: dict[int, Callable[[Packet], list[Reply]]] = {
            Instruction.PING: self._ping,
            Instruction.READ: self._read,
            Instruction.WRITE: self._write,
            Instruction.REG_WRITE: self._reg_write,
            Instruction.ACTION: self._action,
            Instruction.REBOOT: self._reboot,
            Instruction.SYNC_READ: self._sync_read,
            Instruction.SYNC_WRITE: self._sync_write,
            Instruction.BULK_READ: self._bulk_read,
            Instruction.BULK_WRITE: self._bulk_write,
        }

    # -- SerialFirmware

    def baud(self) -> int:
        with self._lock:
            return self._wire_baud

    def receive(self, data: bytes) -> list[Reply]:
        """Parse whatever arrived and answer every good instruction packet addressed to a servo that hears the wire."""
        with self._lock:
            replies: list[Reply] = []
            for packet in self._parser.feed(data):
                if packet.instruction != Instruction.STATUS:  # a status packet is another device's answer
                    self.handled += 1
                    replies.extend(self._handle(packet))
                    self._follow_baud()
            return replies

    # -- for tests and the emulator's operator

    @property
    def rejected(self) -> int:
        with self._lock:
            return self._parser.rejected

    def reset(self) -> None:
        """Power-cycle every servo: factory tables with the power-on ids and baud rate, counters at zero."""
        with self._lock:
            for servo in self._servos:
                servo.power_on(keep_eeprom=False)
            self._wire_baud = self._power_on_baud
            self._parser.reset()
            self.handled = 0

    def fault(self, servo_id: int, bits: int) -> None:
        """Latch Hardware Error Status ``bits`` (``protocol.HARDWARE_ERRORS``) on the servo with ``servo_id``."""
        with self._lock:
            for servo in self._servos:
                if servo.id == servo_id:
                    servo.shut_down(bits)

    def tables(self) -> dict[int, bytes]:
        """Each motor's control table as stored (present-state items as last refreshed), by plant motor index."""
        with self._lock:
            return {s.motor: bytes(s.table) for s in self._servos}

    # -- instructions

    def _listening(self, packet_id: int) -> list[_Servo]:
        """The servos that hear the wire and answer to ``packet_id`` (all of them for broadcast), by id."""
        servos = [s for s in self._servos if s.rate == self._wire_baud]
        chosen = servos if packet_id == dxl.BROADCAST_ID else [s for s in servos if s.id == packet_id]
        return sorted(chosen, key=lambda s: s.id)

    def _handle(self, packet: Packet) -> list[Reply]:
        handler = self._handlers.get(packet.instruction)
        if handler is None:  # undefined, or Factory Reset / Clear, which are not modelled
            return self._answer_each(packet, lambda s: (ErrorNumber.INSTRUCTION, b""))
        return handler(packet)

    def _reply(self, servo: _Servo, instruction: int, error: int, data: bytes = b"", reply_id: int | None = None) -> list[Reply]:
        """The servo's status packet, unless its Status Return Level withholds it or the wire loses it."""
        level = servo.get("status_return_level")
        if instruction != Instruction.PING and (level == 0 or (level == 1 and instruction not in _READS)):
            return []
        if servo.plant.drops_reply(servo.motor):
            return []
        packet = dxl.status_packet(servo.id if reply_id is None else reply_id, error | servo.alert, data)
        return [Reply(packet, servo.get("return_delay_time") * RETURN_DELAY_UNIT)]

    def _answer_each(self, packet: Packet, act: Callable[[_Servo], tuple[int, bytes]]) -> list[Reply]:
        """Run ``act`` on each addressed servo; only a unicast packet is answered (broadcast writes get no status)."""
        replies = []
        for servo in self._listening(packet.id):
            reply_id = servo.id
            error, data = act(servo)
            if packet.id != dxl.BROADCAST_ID:
                replies += self._reply(servo, packet.instruction, error, data, reply_id)
        return replies

    def _ping(self, packet: Packet) -> list[Reply]:
        """Every addressed servo answers model number + firmware version; for broadcast, each in id order."""
        replies = []
        for servo in self._listening(packet.id):
            replies += self._reply(servo, Instruction.PING, 0, bytes(servo.table[0:2]) + bytes(servo.table[6:7]))
        return replies

    def _read(self, packet: Packet) -> list[Reply]:
        if packet.id == dxl.BROADCAST_ID:
            return []  # protocol2.md: no status packet for a broadcast Read
        if len(packet.params) != 4:
            return self._answer_each(packet, lambda s: (ErrorNumber.INSTRUCTION, b""))
        address, length = _words(packet.params)
        return self._answer_each(packet, lambda s: s.read(address, length))

    def _write(self, packet: Packet) -> list[Reply]:
        if len(packet.params) < 3:
            return self._answer_each(packet, lambda s: (ErrorNumber.INSTRUCTION, b""))
        address = int.from_bytes(packet.params[:2], "little")
        return self._answer_each(packet, lambda s: (s.write(address, packet.params[2:]), b""))

    def _reg_write(self, packet: Packet) -> list[Reply]:
        if len(packet.params) < 3:
            return self._answer_each(packet, lambda s: (ErrorNumber.INSTRUCTION, b""))
        address, data = int.from_bytes(packet.params[:2], "little"), packet.params[2:]

        def register(servo: _Servo) -> tuple[int, bytes]:
            error = servo.check_write(address, data)
            if not error:
                servo.registered = (address, data)
                servo.set("registered_instruction", 1)
            return error, b""

        return self._answer_each(packet, register)

    def _action(self, packet: Packet) -> list[Reply]:
        def act(servo: _Servo) -> tuple[int, bytes]:
            if servo.registered is None:
                return ErrorNumber.INSTRUCTION, b""  # Action without Reg Write
            address, data = servo.registered
            servo.registered = None
            servo.set("registered_instruction", 0)
            return servo.write(address, data), b""

        return self._answer_each(packet, act)

    def _reboot(self, packet: Packet) -> list[Reply]:
        """Answer first (protocol2.md shows the status packet), then restart with the EEPROM kept."""
        replies = []
        for servo in self._listening(packet.id):
            if packet.id != dxl.BROADCAST_ID:
                replies += self._reply(servo, Instruction.REBOOT, 0)
            servo.power_on(keep_eeprom=True)
        return replies

    def _sync_read(self, packet: Packet) -> list[Reply]:
        """Each listed servo answers the same item range, in the order listed."""
        if packet.id != dxl.BROADCAST_ID or len(packet.params) < 5:
            return []
        address, length = _words(packet.params[:4])
        replies = []
        for servo_id in packet.params[4:]:
            for servo in self._listening(servo_id):
                error, data = servo.read(address, length)
                replies += self._reply(servo, Instruction.SYNC_READ, error, data)
        return replies

    def _sync_write(self, packet: Packet) -> list[Reply]:
        """Each listed servo takes its own bytes for the same item range; no status. A ragged packet is ignored whole."""
        params = packet.params
        if packet.id != dxl.BROADCAST_ID or len(params) < 4:
            return []
        address, length = _words(params[:4])
        blocks = params[4:]
        if length == 0 or len(blocks) % (length + 1):
            return []
        for at in range(0, len(blocks), length + 1):
            for servo in self._listening(blocks[at]):
                servo.write(address, blocks[at + 1 : at + 1 + length])
        return []

    def _bulk_read(self, packet: Packet) -> list[Reply]:
        """Each listed servo answers its own item range (id, address, length per servo), in the order listed."""
        params = packet.params
        if packet.id != dxl.BROADCAST_ID or not params or len(params) % 5:
            return []
        replies = []
        for at in range(0, len(params), 5):
            address, length = _words(params[at + 1 : at + 5])
            for servo in self._listening(params[at]):
                error, data = servo.read(address, length)
                replies += self._reply(servo, Instruction.BULK_READ, error, data)
        return replies

    def _bulk_write(self, packet: Packet) -> list[Reply]:
        """Each listed servo takes its own item range and bytes; no status. A ragged packet is ignored whole."""
        writes = _bulk_blocks(packet.params)
        if packet.id != dxl.BROADCAST_ID or writes is None:
            return []
        for servo_id, address, data in writes:
            for servo in self._listening(servo_id):
                servo.write(address, data)
        return []

    def _follow_baud(self) -> None:
        """Move the wire to a new rate once every servo holds it."""
        rates = {s.rate for s in self._servos}
        if len(rates) == 1:
            self._wire_baud = rates.pop()


def _words(params: bytes) -> tuple[int, int]:
    """Two little-endian 16-bit words: (address, length)."""
    return int.from_bytes(params[0:2], "little"), int.from_bytes(params[2:4], "little")


def _bulk_blocks(params: bytes) -> list[tuple[int, int, bytes]] | None:
    """Bulk Write blocks (id, address, data), or None when the packet is empty or ends inside a block."""
    blocks, at = [], 0
    while at < len(params):
        if at + 5 > len(params):
            return None
        address, length = _words(params[at + 1 : at + 5])
        if length == 0 or at + 5 + length > len(params):
            return None
        blocks.append((params[at], address, params[at + 5 : at + 5 + length]))
        at += 5 + length
    return blocks or None
