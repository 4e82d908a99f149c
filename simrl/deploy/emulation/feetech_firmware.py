"""Feetech STS3215 servos, firmware side: the SO-101's bus as the vendor SDK sees it, backed by a ``MotorPlant``.

``FeetechFirmware`` is a ``SerialFirmware``: serve it with ``PtySerialLink``
and any Feetech client (``scservo_sdk``, LeRobot) opens the pty as it would
``/dev/ttyACM0``. It answers PING, READ, WRITE, REG_WRITE/ACTION, SYNC_READ
and SYNC_WRITE byte for byte (``simrl.deploy.buses.feetech.protocol``), keeps
one control table per servo, and closes each servo's position loop on the
plant, since on this bus the servo, not the host, runs the loop.

The servo loop. With Torque_Enable 1 in position mode (Operating_Mode 0) the
plant motor runs ``kp (q_goal - q) - kd dq`` within its torque cap, where

- ``q_goal`` comes from Goal_Position in the servo's frame: Present_Position =
  actual encoder ticks - Homing_Offset (LeRobot ``feetech.py``
  ``_get_half_turn_homings``), clamped to Min/Max_Position_Limit;
- ``kp, kd`` come from P_Coefficient and D_Coefficient. Feetech does not
  publish the units of its gains, so they are calibrated to the servo the
  policy trained with: LeRobot's SO-101 setting P = 16, D = 32 gives the MJCF
  servo of ``robots/so101/robot.xml`` (kp 998 N·m/rad, kv 2.73 N·m·s/rad), and
  other values scale linearly. The I term is not modelled (LeRobot sets 0);
- the torque cap is Torque_Limit per mille of the rated torque (3.35 N·m,
  the MJCF force limit), through ``plant.set_torque_limit``;
- the dead zone is the mean of CW_/CCW_Dead_Zone ticks (the plant's dead band
  is symmetric), through ``plant.set_deadband``.

Acceleration, Goal_Velocity and Goal_Time are stored but not modelled (the
training servo has no motion profile); another Operating_Mode leaves the motor
limp, so a client that forgets position mode sees it.

EEPROM registers take a write only while Lock is 0 (Feetech ``SMS_STS``
``unLockEprom`` writes Lock 0, ``LockEprom`` 1; LeRobot unlocks before every
configuration write). The sources read do not say what a locked servo does with
such a write; this firmware ignores it (and still acknowledges the packet), so
a client that forgets to unlock sees its value not stick.

Timing: a reply starts Return_Delay_Time x 2 µs after the request (or, in a
sync read, after the previous servo's reply); ``PtySerialLink`` paces the bytes
at ``baud()``. Writing Baud_Rate moves a servo to the new rate after its reply.
Servos on a rate the line is not at hear nothing; once all agree on a new rate,
the line (the client, which must reopen at that rate) is taken to be there.

Wrong checksums and torn packets are counted (``rejected``) and never acted
on (``PacketStream``). Faults are injected with ``inject_error``; an error whose
bit is set in Unloading_Condition switches the servo's torque off, as the
real servo's protection does.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from simrl.deploy.buses.feetech.protocol import (
    BAUD_RATES,
    BROADCAST_ID,
    CENTER_TICK,
    MAX_ID,
    RAD_PER_TICK,
    REGISTERS,
    RETURN_DELAY_UNIT_S,
    STS3215_MODEL,
    TABLE_SIZE,
    TICKS_PER_TURN,
    Instruction,
    Packet,
    PacketStream,
    packet_bytes,
    register_at,
)
from simrl.deploy.emulation.serial_link import Reply
from simrl.deploy.emulation.plant import MotorPlant
from simrl.errors import SimrlError

RATED_TORQUE_NM = 3.35  # STS3215 at 12 V (ROBOTS.md; robots/so101/robot.xml forcerange)
KP_PER_P = 998.0 / 16  # N·m/rad per P_Coefficient unit: LeRobot's P = 16 is the MJCF servo's kp 998
KD_PER_D = 2.73 / 32  # N·m·s/rad per D_Coefficient unit: LeRobot's D = 32 is the MJCF servo's kv 2.73
CURRENT_UNIT_A = 0.0065  # Present_Current counts 6.5 mA (third-party STS driver; unconfirmed by Feetech text)
STALL_CURRENT_A = 2.7  # STS3215 12 V stall current as listed by resellers (unconfirmed); scales Present_Current
FRAME_GAP_S = 0.02  # an unfinished packet is dropped after this idle time (our choice; Feetech documents none)
MODE_POSITION = 0

# Power-on values of the registers this firmware gives meaning to; all others are 0.
POWER_ON: Mapping[str, int] = MappingProxyType(
    {
        "Firmware_Major_Version": 3,  # any version works; LeRobot only checks that all servos agree
        "Firmware_Minor_Version": 10,
        "Model_Number": STS3215_MODEL,
        "Baud_Rate": 0,  # 1 Mbaud (ROBOTS.md)
        "Return_Delay_Time": 250,  # 500 µs: LeRobot feetech.py configure_motors says this is the factory value
        "Response_Status_Level": 1,  # reply to every instruction but broadcasts (Feetech SCS.cpp default Level)
        "Min_Position_Limit": 0,
        "Max_Position_Limit": TICKS_PER_TURN - 1,
        "Max_Temperature_Limit": 70,  # °C (unconfirmed)
        "Max_Voltage_Limit": 140,  # 0.1 V (unconfirmed)
        "Min_Voltage_Limit": 40,
        "Max_Torque_Limit": 1000,  # per mille: all of the rated torque
        "Unloading_Condition": 0x2C,  # overheat, over-current, overload release the torque (unconfirmed)
        "P_Coefficient": 32,  # factory P/D/I and dead zones as read off untouched servos by a third party
        "D_Coefficient": 32,
        "I_Coefficient": 0,
        "CW_Dead_Zone": 1,
        "CCW_Dead_Zone": 1,
        "Operating_Mode": MODE_POSITION,
        "Torque_Limit": 1000,  # RAM copy of Max_Torque_Limit
        "Lock": 1,  # EEPROM locked until a client unlocks it
        "Present_Voltage": 120,  # 12.0 V; the plant models no supply
        "Present_Temperature": 30,  # °C; the plant models no heat
    }
)
_LIVE = ("Present_Position", "Present_Velocity", "Present_Load", "Present_Current", "Moving", "Status")


@dataclass
class _Servo:
    """One servo: its plant motor, control table, and what it last pushed to the plant."""

    motor: int
    encoder_zero: int  # actual encoder ticks at plant joint angle 0
    memory: bytearray = field(default_factory=lambda: bytearray(TABLE_SIZE))
    error: int = 0  # injected status error bits
    pending: tuple[int, bytes] | None = None  # a REG_WRITE waiting for ACTION
    pushed: dict[str, object] = field(default_factory=dict)  # last values sent to the plant, per setter

    def get(self, name: str) -> int:
        reg = REGISTERS[name]
        return reg.decode(bytes(self.memory[reg.address : reg.address + reg.size]))

    def put(self, name: str, value: int) -> None:
        reg = REGISTERS[name]
        self.memory[reg.address : reg.address + reg.size] = reg.encode(value)

    @property
    def servo_id(self) -> int:
        return self.memory[REGISTERS["ID"].address]

    @property
    def rate(self) -> int | None:
        """The servo's baud rate, None for a Baud_Rate value with no rate (the servo then hears nothing)."""
        return BAUD_RATES.get(self.get("Baud_Rate"))


class FeetechFirmware:
    """STS3215 servos ``ids[i]`` on one serial bus, servo ``ids[i]`` driving ``plant`` motor ``i``.

    ``encoder_zero[i]`` is the actual encoder reading (ticks) at plant joint
    angle 0, default half a turn (2048), so with Homing_Offset 0 a servo reads
    2048 at the joint's zero. ``model_number`` is what the servos report
    (777, STS3215, unless a test wants another model). ``clock`` times the idle
    gaps that tear a packet.
    """

    def __init__(
        self,
        plant: MotorPlant,
        ids: Sequence[int],
        *,
        encoder_zero: Sequence[int] | None = None,
        model_number: int = STS3215_MODEL,
        rated_torque: float = RATED_TORQUE_NM,
        clock: Callable[[], float] = time.monotonic,
        gap_s: float = FRAME_GAP_S,
    ) -> None:
        _check_ids(ids, plant.num_motors)
        zeros = [CENTER_TICK] * len(ids) if encoder_zero is None else list(encoder_zero)
        if len(zeros) != len(ids) or any(not 0 <= z < TICKS_PER_TURN for z in zeros):
            raise SimrlError(f"encoder_zero = {zeros}: one tick in [0, {TICKS_PER_TURN - 1}] per servo ({len(ids)} servos)")
        self._plant = plant
        self._ids = tuple(ids)
        self._zeros = tuple(zeros)
        self._model = model_number
        self._rated = rated_torque
        self._clock = clock
        self._stream = PacketStream(gap_s)
        self._lock = threading.Lock()
        self._servos: list[_Servo] = []
        self._line_rate = BAUD_RATES[POWER_ON["Baud_Rate"]]
        self.reset()

    @property
    def rejected(self) -> int:
        """Packets refused since the last reset: wrong checksum or torn."""
        return self._stream.rejected

    @property
    def noise_bytes(self) -> int:
        """Bytes skipped outside any packet since the last reset."""
        return self._stream.noise_bytes

    def reset(self) -> None:
        """Power-cycle every servo: the power-on control table, torque off, goal at the present position."""
        with self._lock:
            self._stream.reset()
            self._line_rate = BAUD_RATES[POWER_ON["Baud_Rate"]]
            self._servos = [_Servo(motor=i, encoder_zero=zero) for i, zero in enumerate(self._zeros)]
            for servo, servo_id in zip(self._servos, self._ids):
                for name, value in POWER_ON.items():
                    servo.put(name, value)
                servo.put("ID", servo_id)
                servo.put("Model_Number", self._model)
                self._refresh(servo)
                servo.put("Goal_Position", servo.get("Present_Position"))
                self._apply(servo)

    def baud(self) -> int:
        """The line's rate: the one all servos last agreed on."""
        with self._lock:
            return self._line_rate

    def control_table(self, motor: int) -> bytes:
        """A copy of the control table of the servo on plant motor ``motor`` (live values as last read)."""
        with self._lock:
            return bytes(self._servos[motor].memory)

    def inject_error(self, servo_id: int, bits: int) -> None:
        """Report status error ``bits`` from servo ``servo_id`` from now on (0 clears); see ``protocol.ERROR_BITS``."""
        if not 0 <= bits <= 0x7F:
            raise SimrlError(f"inject_error: bits = {bits:#x}; allowed: 0..0x7f (bit 7 would make the SDK drop the reply)")
        with self._lock:
            servos = [s for s in self._servos if s.servo_id == servo_id]
            if not servos:
                raise SimrlError(f"inject_error: no servo with id {servo_id}; ids: {sorted(s.servo_id for s in self._servos)}")
            for servo in servos:
                servo.error = bits
                self._apply(servo)

    def receive(self, data: bytes) -> list[Reply]:
        """Bytes off the wire in, the servos' status replies out (``SerialFirmware``)."""
        with self._lock:
            replies: list[Reply] = []
            for packet in self._stream.feed(data, self._clock()):
                replies.extend(self._handle(packet))
                self._settle_line_rate()
            return replies

    # -- instructions

    def _handle(self, packet: Packet) -> list[Reply]:
        """Act on one valid packet; the replies of the servos it addresses."""
        code, params = packet.code, packet.params
        if code in (Instruction.SYNC_READ, Instruction.SYNC_WRITE):
            return self._sync(packet) if packet.servo_id == BROADCAST_ID and len(params) >= 2 else []
        replies = []
        for servo in self._addressed(packet.servo_id):
            data = self._act(servo, code, params)
            if data is not None and self._answers(servo, packet.servo_id, code):
                replies += self._reply(servo, packet.servo_id, data)
        return replies

    def _act(self, servo: _Servo, code: int, params: bytes) -> bytes | None:
        """Carry out one instruction on ``servo``; the reply's data, None for a malformed or unknown instruction (ignored)."""
        if code == Instruction.PING:
            return b""
        if code == Instruction.READ:
            return self._read(servo, params[0], params[1]) if len(params) == 2 else None
        if code in (Instruction.WRITE, Instruction.REG_WRITE) and len(params) >= 2:
            if code == Instruction.WRITE:
                self._write(servo, params[0], params[1:])
            else:
                servo.pending = (params[0], params[1:])
            return b""
        if code == Instruction.ACTION:
            if servo.pending is not None:
                self._write(servo, *servo.pending)
                servo.pending = None
            return b""
        return None

    @staticmethod
    def _answers(servo: _Servo, addressed_id: int, code: int) -> bool:
        """Whether a status reply goes out: not to a broadcast, except ping and read, which ask for one;
        at Response_Status_Level 0 only to ping and read (Feetech SCS.cpp: level 1 answers all but broadcasts)."""
        asks = code in (Instruction.PING, Instruction.READ)
        return (addressed_id != BROADCAST_ID or asks) and (asks or servo.get("Response_Status_Level") != 0)

    def _sync(self, packet: Packet) -> list[Reply]:
        """SYNC_READ ``[addr, n, id...]``: each listed servo replies in list order; SYNC_WRITE ``[addr, n, (id, n bytes)...]``: no reply."""
        address, size, rest = packet.params[0], packet.params[1], packet.params[2:]
        replies = []
        if packet.code == Instruction.SYNC_READ:
            for servo_id in rest:
                for servo in self._addressed(servo_id):
                    data = self._read(servo, address, size)
                    if data is not None:
                        replies += self._reply(servo, servo_id, data)
            return replies
        if size == 0 or len(rest) % (size + 1):
            return []  # the groups do not add up: a garbled sync write is not applied in part
        for start in range(0, len(rest), size + 1):
            for servo in self._addressed(rest[start]):
                self._write(servo, address, rest[start + 1 : start + 1 + size])
        return []

    def _addressed(self, servo_id: int) -> list[_Servo]:
        """The servos that hear a packet for ``servo_id`` (all for broadcast), in id order."""
        listening = [s for s in self._servos if s.rate == self._line_rate]
        if servo_id != BROADCAST_ID:
            listening = [s for s in listening if s.servo_id == servo_id]
        return sorted(listening, key=lambda s: s.servo_id)

    def _reply(self, servo: _Servo, servo_id: int, data: bytes) -> list[Reply]:
        """A status packet from ``servo`` (as ``servo_id``, the id it was asked as), unless the plant loses it."""
        if self._plant.drops_reply(servo.motor):
            return []
        reply_id = servo.servo_id if servo_id == BROADCAST_ID else servo_id
        delay = servo.get("Return_Delay_Time") * RETURN_DELAY_UNIT_S
        return [Reply(packet_bytes(reply_id, servo.error, data), delay)]

    def _read(self, servo: _Servo, address: int, size: int) -> bytes | None:
        """``size`` table bytes from ``address``, live values fresh from the plant; None past the table's end."""
        if size == 0 or address + size > TABLE_SIZE:
            return None
        self._refresh(servo)
        return bytes(servo.memory[address : address + size])

    def _write(self, servo: _Servo, address: int, data: bytes) -> None:
        """Store the writable bytes (EEPROM ones only while unlocked), then drive the plant from the new table."""
        locked = servo.get("Lock") != 0
        for offset, byte in enumerate(data):
            reg = register_at(address + offset)
            if reg is None or not reg.writable or (reg.eeprom and locked):
                continue
            servo.memory[address + offset] = byte
        self._apply(servo)

    def _settle_line_rate(self) -> None:
        """Once every servo runs at one rate, the line is at that rate (the client followed them)."""
        rates = {s.rate for s in self._servos}
        if len(rates) == 1 and None not in rates:
            self._line_rate = rates.pop()

    # -- the servo loop

    def _frame_position(self, servo: _Servo, radians: float) -> float:
        """The Present_Position (unrounded) a joint angle reads in the servo's frame."""
        actual = servo.encoder_zero + radians / RAD_PER_TICK
        return (actual - servo.get("Homing_Offset")) % TICKS_PER_TURN

    def _refresh(self, servo: _Servo) -> None:
        """Write the plant's present state into the Present_* registers."""
        sample = self._plant.sample(servo.motor)
        present = int(round(self._frame_position(servo, sample.position))) % TICKS_PER_TURN
        velocity = int(round(sample.velocity / RAD_PER_TICK))
        share = max(-1.0, min(1.0, sample.torque / self._rated))
        servo.put("Present_Position", present)
        servo.put("Present_Velocity", max(-32767, min(32767, velocity)))
        servo.put("Present_Load", int(round(share * 1000)))
        servo.put("Present_Current", int(round(share * STALL_CURRENT_A / CURRENT_UNIT_A)))
        dead = max(servo.get("CW_Dead_Zone"), servo.get("CCW_Dead_Zone"))
        travelling = self._driving(servo) and abs(servo.get("Goal_Position") - present) > dead
        servo.put("Moving", int(velocity != 0 or travelling))
        servo.put("Status", servo.error)

    def _driving(self, servo: _Servo) -> bool:
        return servo.get("Torque_Enable") == 1 and servo.get("Operating_Mode") == MODE_POSITION

    def _apply(self, servo: _Servo) -> None:
        """Drive the plant motor from the table: torque on/off, cap, dead band, and the position loop's set point."""
        if servo.error & servo.get("Unloading_Condition"):
            servo.put("Torque_Enable", 0)  # the servo's protection releases the torque
        driving = self._driving(servo)
        deadband = (servo.get("CW_Dead_Zone") + servo.get("CCW_Dead_Zone")) / 2 * RAD_PER_TICK
        share = min(servo.get("Torque_Limit"), 1000) / 1000
        self._push(servo, "enabled", driving, self._plant.set_enabled)
        self._push(servo, "torque_limit", share, self._plant.set_torque_limit)
        self._push(servo, "deadband", deadband, self._plant.set_deadband)
        if not driving:
            return
        goal = servo.get("Goal_Position")
        low, high = servo.get("Min_Position_Limit"), servo.get("Max_Position_Limit")
        if low < high:  # both 0 would mean no limits
            goal = min(max(goal, low), high)
        target = self._goal_angle(servo, goal)
        command = (target, 0.0, servo.get("P_Coefficient") * KP_PER_P, servo.get("D_Coefficient") * KD_PER_D, 0.0)
        if servo.pushed.get("command") != command:
            servo.pushed["command"] = command
            self._plant.set_command(servo.motor, *command)

    def _goal_angle(self, servo: _Servo, goal: int) -> float:
        """The joint angle where the servo's frame reads ``goal``, on the turn the joint is on now.

        The frame wraps every turn; the servo moves within it (from its present
        reading to the goal, never across the wrap), so the target is the angle
        of ``goal`` on the present turn: an exact multiple of 2π away from the
        angle where actual ticks = goal + Homing_Offset.
        """
        base = (goal + servo.get("Homing_Offset") - servo.encoder_zero) * RAD_PER_TICK
        here = self._plant.sample(servo.motor).position
        on_this_turn = here + (goal - self._frame_position(servo, here)) * RAD_PER_TICK
        return base + 2 * math.pi * round((on_this_turn - base) / (2 * math.pi))

    def _push(self, servo: _Servo, key: str, value: object, setter: Callable[[int, object], None]) -> None:
        """Call ``setter`` only when the value changed: a plant queues every command it is given."""
        if servo.pushed.get(key) != value:
            servo.pushed[key] = value
            setter(servo.motor, value)


def _check_ids(ids: Sequence[int], num_motors: int) -> None:
    if len(ids) != num_motors:
        raise SimrlError(f"FeetechFirmware: {len(ids)} servo ids for a plant with {num_motors} motors; allowed: one id per motor")
    if len(set(ids)) != len(ids) or any(not 0 <= i <= MAX_ID for i in ids):
        raise SimrlError(f"FeetechFirmware: servo ids {list(ids)}; allowed: distinct ids in 0..{MAX_ID}")

