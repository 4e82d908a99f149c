"""Bus emulators: real wire frames in, a ``MotorPlant`` behind them, real replies out.

Every bus is tested against an emulator that speaks the motors' own protocol,
so the bus code that runs on hardware is the code under test; the plant behind
the emulator is where the simulated arm and its hidden "reality" live.

Two ways to reach a Damiao emulator:
- in-process: python-can's ``interface="virtual"`` with a shared channel name;
  the emulator holds one end, ``DamiaoBus`` another;
- from another process: ``SocketcandServer`` speaks the socketcand TCP protocol
  (this machine has no vcan/AF_CAN), so ``DamiaoBus(interface="socketcand",
  host=..., port=..., channel="can0")`` runs unchanged against it.
"""

from __future__ import annotations

import socket
import threading
from typing import Sequence

import can

from simrl.deploy.buses.damiao import (
    CMD_CLEAR_ERROR,
    CMD_DISABLE,
    CMD_ENABLE,
    CMD_SET_ZERO,
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
from simrl.deploy.plant import MotorPlant

# The plant models no heat, so both temperature bytes report a room-temperature constant (°C).
_TEMPERATURE_C = 25
# How often idle loops look at their stop flag (s); frames themselves wake them at once.
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
    enable refused, status = the code) until a clear-error frame.
    """

    def __init__(self, plant: MotorPlant, motors: Sequence[DamiaoMotor], bus: can.BusABC) -> None:
        if plant.num_motors != len(motors):
            raise DamiaoConfigError(
                f"Damiao emulator got {len(motors)} motors for a plant of {plant.num_motors}; allowed: equal counts"
            )
        self._plant = plant
        self._motors = tuple(motors)
        self._bus = bus
        self._by_can_id = {m.can_id: i for i, m in enumerate(motors)}
        self._enabled = [False] * len(motors)
        self._faults = [0] * len(motors)  # latched fault code (STATUS_TEXT), 0 = none
        self._zero = [0.0] * len(motors)  # plant angle at the last set-zero (the firmware's offset)
        self._registers = [
            {
                _RID_MST_ID: m.master_id,
                _RID_ESC_ID: m.can_id,
                RID_CTRL_MODE: 1,
                _RID_PMAX: m.limits.pmax,
                _RID_VMAX: m.limits.vmax,
                _RID_TMAX: m.limits.tmax,
            }
            for m in motors
        ]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        """Latch fault ``code`` (0x8..0xE, see ``STATUS_TEXT``) on ``motor``; it takes effect at its next frame."""
        if not 0x8 <= code <= 0xF:
            raise DamiaoConfigError(f"Damiao fault code {code:#x} is not a fault; allowed: 0x8..0xf")
        self._faults[motor] = code

    def __enter__(self) -> "DamiaoEmulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._bus.recv(_POLL_S)
            except (can.CanError, OSError):
                return  # our end of the bus was shut down: nothing left to answer
            if msg is not None:
                self._handle(msg)

    def _handle(self, msg: can.Message) -> None:
        if msg.is_error_frame or msg.is_remote_frame or len(msg.data) != 8:
            return
        if msg.arbitration_id == PARAM_CAN_ID:
            self._on_param(bytes(msg.data))
            return
        i = self._by_can_id.get(msg.arbitration_id)
        if i is None:
            return
        if self._faults[i] and self._enabled[i]:  # a fault drops torque, on this thread so the plant sees one caller
            self._enabled[i] = False
            self._plant.set_enabled(i, False)
        code = command_code(msg.data)
        if code is None:
            self._on_mit(i, msg.data)
        else:
            self._on_command(i, code)

    def _on_command(self, i: int, code: int) -> None:
        if code in (CMD_ENABLE, CMD_DISABLE):
            self._enabled[i] = code == CMD_ENABLE and not self._faults[i]
            self._plant.set_enabled(i, self._enabled[i])
        elif code == CMD_SET_ZERO:
            self._zero[i] = self._plant.sample(i).position
        elif code == CMD_CLEAR_ERROR:
            self._faults[i] = 0
        self._reply_state(i)

    def _on_mit(self, i: int, data: bytearray) -> None:
        if self._enabled[i]:
            q, dq, kp, kd, tau = unpack_mit_command(self._motors[i].limits, data)
            self._plant.set_command(i, q + self._zero[i], dq, kp, kd, tau)
        self._reply_state(i)

    def _on_param(self, data: bytes) -> None:
        can_id, op, rid, value = unpack_param(data)
        i = self._by_can_id.get(can_id)
        if i is None:
            return
        if op == PARAM_REFRESH:
            self._reply_state(i)
            return
        registers = self._registers[i]
        if op not in (PARAM_READ, PARAM_WRITE) or rid not in registers:
            return  # unknown register or op (e.g. save, 0xAA): the emulated firmware stays silent
        if op == PARAM_WRITE and rid in _WRITABLE:
            registers[rid] = value
        self._reply(i, pack_param(can_id, op, rid, registers[rid]))

    def _reply_state(self, i: int) -> None:
        m = self._motors[i]
        sample = self._plant.sample(i)
        status = self._faults[i] or (STATUS_ENABLED if self._enabled[i] else STATUS_DISABLED)
        position = sample.position - self._zero[i]
        data = pack_mit_reply(
            m.limits, m.can_id, status, position, sample.velocity, sample.torque, _TEMPERATURE_C, _TEMPERATURE_C
        )
        self._reply(i, data)

    def _reply(self, i: int, data: bytes) -> None:
        if self._plant.drops_reply(i):
            return
        try:
            self._bus.send(can.Message(arbitration_id=self._motors[i].master_id, data=data, is_extended_id=False))
        except (can.CanError, OSError):
            self._stop.set()  # our end of the bus is gone; _run exits on its next turn


def _frame_text(msg: can.Message) -> bytes:
    """A received frame as socketcand sends it: ``< frame ID SECS.USECS HEXDATA >``.

    python-can's client takes a standard id from exactly 3 hex digits and the data
    as one unspaced hex word (socketcand.py convert_ascii_message_to_can_message).
    """
    can_id = f"{msg.arbitration_id:08X}" if msg.is_extended_id else f"{msg.arbitration_id:03X}"
    return f"< frame {can_id} {msg.timestamp:.6f} {msg.data.hex().upper()} >".encode("ascii")


def _parse_send(words: list[str]) -> can.Message | None:
    """``send ID LEN B0 B1 ...`` (hex, bytes unpadded, as python-can writes it) -> a frame; None if malformed."""
    try:
        can_id, length = int(words[1], 16), int(words[2], 16)
        data = bytes(int(word, 16) for word in words[3 : 3 + length])
    except (IndexError, ValueError):
        return None
    if len(data) != length or length > 8:
        return None
    return can.Message(arbitration_id=can_id, data=data, is_extended_id=len(words[1]) > 3)


class _ClientSession:
    """One TCP client of ``SocketcandServer``: handshake, then raw frames both ways.

    The reading thread writes to the socket only before raw mode starts and the
    forwarding thread only after, so the two never interleave a message.
    """

    def __init__(self, sock: socket.socket, virtual_channel: str, bus_name: str) -> None:
        self._sock = sock
        self._virtual_channel = virtual_channel
        self._bus_name = bus_name
        self._opened = False
        self._virtual: can.BusABC | None = None
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._serve, name="socketcand-client", daemon=True)
        self._forwarder: threading.Thread | None = None

    def start(self) -> None:
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._reader.is_alive()

    def close(self) -> None:
        """End both threads: shutting the socket down wakes the reader's ``recv``."""
        self._closed.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client already hung up
        self._reader.join()

    def _serve(self) -> None:
        buffer = b""
        try:
            self._sock.sendall(b"< hi >")
            while not self._closed.is_set():
                chunk = self._sock.recv(4096)
                if not chunk:
                    break
                buffer += chunk
                buffer = self._consume(buffer)
        except OSError:
            pass  # the client vanished; clean up below
        finally:
            self._closed.set()
            if self._forwarder is not None:
                self._forwarder.join()
            if self._virtual is not None:
                self._virtual.shutdown()
            self._sock.close()

    def _consume(self, buffer: bytes) -> bytes:
        """Act on every complete ``< ... >`` message in ``buffer``; return the incomplete rest."""
        while True:
            start = buffer.find(b"<")
            end = buffer.find(b">", start + 1)
            if start < 0 or end < 0:
                return buffer[start:] if start >= 0 else b""
            self._on_message(buffer[start + 1 : end].decode("ascii", "replace").split())
            buffer = buffer[end + 1 :]

    def _on_message(self, words: list[str]) -> None:
        if words == ["open", self._bus_name]:
            self._opened = True
            self._sock.sendall(b"< ok >")
        elif words == ["rawmode"] and self._opened and self._virtual is None:
            self._sock.sendall(b"< ok >")
            self._virtual = can.Bus(interface="virtual", channel=self._virtual_channel)
            self._forwarder = threading.Thread(target=self._forward, name="socketcand-forward", daemon=True)
            self._forwarder.start()
        elif words[:1] == ["send"] and self._virtual is not None:
            msg = _parse_send(words)
            if msg is not None:
                self._virtual.send(msg)
        elif words[:1] == ["open"]:
            self._sock.sendall(f"< error could not open bus '{' '.join(words[1:])}' >".encode("ascii"))
        # anything else (bcmmode, echo, ...) is not served: ignored, as the client expects no answer

    def _forward(self) -> None:
        """Frames on the virtual channel -> the TCP client.

        Frames already queued go out in one ``sendall`` (TCP_NODELAY is on): one
        syscall and one segment for a burst of replies instead of one per motor.
        """
        virtual = self._virtual
        assert virtual is not None
        while not self._closed.is_set():
            try:
                burst = [virtual.recv(_POLL_S)]
                while burst[-1] is not None:
                    burst.append(virtual.recv(0.0))
            except can.CanError:
                return
            frames = [m for m in burst if m is not None and not (m.is_error_frame or m.is_remote_frame)]
            text = b"".join(_frame_text(m) for m in frames)
            if not text:
                continue
            try:
                self._sock.sendall(text)
            except OSError:
                return


class SocketcandServer:
    """A socketcand-protocol TCP server bridging each client to python-can virtual channel ``virtual_channel``.

    Speaks what python-can's ``interface="socketcand"`` client needs: ``< hi >``,
    ``< open BUS >`` / ``< rawmode >`` answered ``< ok >``, ``< send ... >`` from the
    client, ``< frame ... >`` to it. Clients see each other's frames, as on a wire.
    """

    def __init__(self, virtual_channel: str, host: str = "127.0.0.1", port: int = 0, bus_name: str = "can0") -> None:
        self._virtual_channel = virtual_channel
        self._address = (host, port)
        self._bus_name = bus_name
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._sessions: list[_ClientSession] = []
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with ``port=0``)."""
        if self._listener is None:
            raise DamiaoConfigError("SocketcandServer has no port before start()")
        return self._listener.getsockname()[1]

    def start(self) -> "SocketcandServer":
        """Bind, listen and accept clients on a background thread."""
        if self._listener is not None:
            return self
        listener = socket.create_server(self._address)
        listener.settimeout(_POLL_S)
        self._listener = listener
        self._stop.clear()
        self._acceptor = threading.Thread(target=self._accept, name="socketcand-accept", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Close the listener and every client connection."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join()
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for session in self._sessions:
            session.close()
        self._sessions.clear()

    def __enter__(self) -> "SocketcandServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = _ClientSession(sock, self._virtual_channel, self._bus_name)
            self._sessions = [s for s in self._sessions if s.alive] + [session]
            session.start()
