"""Damiao motor firmware, emulated: real CAN frames in, a ``MotorPlant`` behind them, real replies out.

Every bus is tested against an emulator that speaks the motors' own protocol,
so the bus code that runs on hardware is the code under test; the plant behind
the emulator is where the simulated arm and its hidden "reality" live.

Two ways to reach a Damiao emulator:
- in-process: python-can's ``interface="virtual"`` with a shared channel name;
  the emulator holds one end, ``DamiaoBus`` another (CAN FD or classic);
- from another process: ``SocketcandServer`` (``socketcand.py``) speaks the
  socketcand TCP protocol (this machine has no vcan/AF_CAN), so
  ``DamiaoBus(interface="socketcand", host=..., port=..., channel="can0")``
  runs unchanged against it, on classic CAN (socketcand carries no FD frames).

The firmware itself is ``receive``: one frame in, the reply frames out, no
thread and no wire, so a test (the fuzz test) can feed it frames directly and
``reset`` it between examples without building a new plant.
"""

from __future__ import annotations

import threading
from typing import Sequence

import can

from simrl.deploy.buses.damiao.protocol import (
    CMD_CLEAR_ERROR,
    CMD_DISABLE,
    CMD_ENABLE,
    CMD_SET_ZERO,
    CTRL_MODE_MIT,
    FRAME_BYTES,
    PARAM_CAN_ID,
    PARAM_READ,
    PARAM_REFRESH,
    PARAM_WRITE,
    RID_CTRL_MODE,
    STATUS_DISABLED,
    STATUS_ENABLED,
    DamiaoConfigError,
    DamiaoMotor,
    command_code,
    pack_mit_reply,
    pack_param,
    unpack_mit_command,
    unpack_param,
)
from simrl.deploy.emulation.plant import MotorPlant

# The plant models no heat, so both temperature bytes report a room-temperature constant (°C).
_TEMPERATURE_C = 25
# How often the idle loop looks at its stop flag (s); frames themselves wake it at once.
_POLL_S = 0.05
# Registers (RIDs, openarm_can dm_motor_constants.hpp) the emulated firmware answers.
_RID_MST_ID, _RID_ESC_ID, _RID_PMAX, _RID_VMAX, _RID_TMAX = 7, 8, 21, 22, 23
# Only the control mode may be written: changing PMAX/VMAX/TMAX would silently change
# the MIT mapping, so those writes are refused by echoing the unchanged value.
_WRITABLE = frozenset({RID_CTRL_MODE})


class DamiaoEmulator:
    """Damiao motors (firmware side) on ``bus``, backed by ``plant`` motor ``i`` for ``motors[i]``.

    A disabled motor ignores MIT commands but still answers them, like the real
    one; every reply, parameter replies included, is subject to ``plant.drops_reply``.
    ``inject_fault`` latches a fault code the way the firmware does (torque off,
    enable refused, status = the code) until a clear-error frame. A frame on a
    motor's id or the parameter id that is not a data frame of 8 bytes (torn,
    remote, an error frame) is counted in ``malformed`` and not acted on.

    ``fd``: the motors' baud register is set to a CAN FD rate (above 1 Mbit/s,
    ``protocol.FD_DATA_BITRATES``). Damiao's manual says what follows: such a
    motor still receives CAN 2.0B frames but answers in CAN FD only, so every
    reply goes out as an FD frame (bit rate switch on: its payload runs at the
    data rate), 8 data bytes; FD frames are taken with or without the switch
    (LeRobot's bus sends them without it). Without ``fd`` the motors speak
    CAN 2.0B, whose controller cannot decode an FD frame: any FD frame is
    counted in ``malformed`` and never reaches the firmware.
    """

    def __init__(self, plant: MotorPlant, motors: Sequence[DamiaoMotor], bus: can.BusABC, fd: bool = False) -> None:
        if plant.num_motors != len(motors):
            raise DamiaoConfigError(
                f"Damiao emulator got {len(motors)} motors for a plant of {plant.num_motors}; allowed: equal counts"
            )
        self._plant = plant
        self._motors = tuple(motors)
        self._bus = bus
        self._fd = fd
        self._by_can_id = {m.can_id: i for i, m in enumerate(motors)}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Power-on state: torque off (the plant's motors too), no fault, no zero offset, registers as configured."""
        n = len(self._motors)
        self._enabled = [False] * n
        self._faults = [0] * n  # latched fault code (protocol.FAULTS), 0 = none
        self._zero = [0.0] * n  # plant angle at the last set-zero (the firmware's offset)
        self._registers = [
            {
                _RID_MST_ID: m.master_id,
                _RID_ESC_ID: m.can_id,
                RID_CTRL_MODE: CTRL_MODE_MIT,
                _RID_PMAX: m.limits.pmax,
                _RID_VMAX: m.limits.vmax,
                _RID_TMAX: m.limits.tmax,
            }
            for m in self._motors
        ]
        self.malformed = 0
        for i in range(n):
            self._plant.set_enabled(i, False)

    def start(self) -> "DamiaoEmulator":
        """Answer frames on a background thread until ``stop()``."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="damiao-emulator", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (the bus stays open: it belongs to the caller)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def inject_fault(self, motor: int, code: int) -> None:
        """Latch fault ``code`` (0x8..0xE, see ``protocol.FAULTS``) on ``motor``; it takes effect at its next frame."""
        if not 0x8 <= code <= 0xF:
            raise DamiaoConfigError(f"Damiao fault code {code:#x} is not a fault; allowed: 0x8..0xf")
        self._faults[motor] = code

    def __enter__(self) -> "DamiaoEmulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def receive(self, msg: can.Message) -> list[can.Message]:
        """Act on one frame as the motors would; return the replies they send (none for another device's frame)."""
        if msg.is_fd and not self._fd:
            self.malformed += 1  # a CAN 2.0B controller answers an FD frame with an error frame
            return []
        if msg.is_extended_id:
            return []  # the motors listen on 11-bit ids only
        if msg.arbitration_id == PARAM_CAN_ID:
            return self._on_param(bytes(msg.data)) if self._well_formed(msg) else []
        i = self._by_can_id.get(msg.arbitration_id)
        if i is None or not self._well_formed(msg):
            return []
        if self._faults[i] and self._enabled[i]:  # a fault drops torque, on this thread so the plant sees one caller
            self._enabled[i] = False
            self._plant.set_enabled(i, False)
        data = bytes(msg.data)
        code = command_code(data)
        if code is None:
            return self._on_mit(i, data)
        return self._on_command(i, code)

    def _well_formed(self, msg: can.Message) -> bool:
        """A data frame of 8 bytes; anything else on our ids is counted and dropped."""
        if msg.is_error_frame or msg.is_remote_frame or len(msg.data) != FRAME_BYTES:
            self.malformed += 1
            return False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._bus.recv(_POLL_S)
            except (can.CanError, OSError):
                return  # our end of the bus was shut down: nothing left to answer
            if msg is None:
                continue
            for reply in self.receive(msg):
                try:
                    self._bus.send(reply)
                except (can.CanError, OSError):
                    return  # our end of the bus is gone

    def _on_command(self, i: int, code: int) -> list[can.Message]:
        if code in (CMD_ENABLE, CMD_DISABLE):
            self._enabled[i] = code == CMD_ENABLE and not self._faults[i]
            self._plant.set_enabled(i, self._enabled[i])
        elif code == CMD_SET_ZERO:
            self._zero[i] = self._plant.sample(i).position
        elif code == CMD_CLEAR_ERROR:
            self._faults[i] = 0
        return self._state_reply(i)

    def _on_mit(self, i: int, data: bytes) -> list[can.Message]:
        if self._enabled[i]:
            decoded = unpack_mit_command(self._motors[i].limits, data)
            assert decoded is not None  # ``receive`` let only 8-byte frames through
            q, dq, kp, kd, tau = decoded
            self._plant.set_command(i, q + self._zero[i], dq, kp, kd, tau)
        return self._state_reply(i)

    def _on_param(self, data: bytes) -> list[can.Message]:
        decoded = unpack_param(data)
        assert decoded is not None  # ``receive`` let only 8-byte frames through
        can_id, op, rid, value = decoded
        i = self._by_can_id.get(can_id)
        if i is None:
            return []
        if op == PARAM_REFRESH:
            return self._state_reply(i)
        registers = self._registers[i]
        if op not in (PARAM_READ, PARAM_WRITE) or rid not in registers:
            return []  # unknown register or op (e.g. save, 0xAA): the emulated firmware stays silent
        if op == PARAM_WRITE and rid in _WRITABLE:
            registers[rid] = value
        return self._reply(i, pack_param(can_id, op, rid, registers[rid]))

    def _state_reply(self, i: int) -> list[can.Message]:
        m = self._motors[i]
        sample = self._plant.sample(i)
        status = self._faults[i] or (STATUS_ENABLED if self._enabled[i] else STATUS_DISABLED)
        position = sample.position - self._zero[i]
        data = pack_mit_reply(
            m.limits, m.can_id, status, position, sample.velocity, sample.torque, _TEMPERATURE_C, _TEMPERATURE_C
        )
        return self._reply(i, data)

    def _reply(self, i: int, data: bytes) -> list[can.Message]:
        if self._plant.drops_reply(i):
            return []
        return [can.Message(arbitration_id=self._motors[i].master_id, data=data, is_extended_id=False, is_fd=self._fd, bitrate_switch=self._fd)]
