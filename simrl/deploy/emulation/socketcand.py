"""A socketcand server: a python-can virtual channel reachable over TCP, for a bus in another process.

This machine has no vcan/AF_CAN, so an emulator on a virtual channel is
reached from another process (``simrl emulate`` -> ``simrl deploy``) the way
a remote CAN adapter is: python-can's ``interface="socketcand"`` client talks
to this server, which relays frames both ways. It knows nothing of the motors
on the channel: any CAN firmware emulator can sit behind it.

Classic CAN only, like socketcand itself: its protocol has no FD frames
(linux-can/socketcand doc/protocol.md: ``< send can_id can_dlc [data]* >`` with
at most 8 bytes, ``< frame ... >`` without flags) and its raw mode reads a
``struct can_frame`` from a socket without ``CAN_RAW_FD_FRAMES`` (src/state_raw.c),
so CAN FD frames on the bus never reach a client. This server drops them too.
"""

from __future__ import annotations

import socket
import threading

import can

from simrl.errors import SimrlError

# How often idle loops look at their stop flag (s); frames and connections themselves wake them at once.
_POLL_S = 0.05


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
            frames = [m for m in burst if m is not None and not (m.is_error_frame or m.is_remote_frame or m.is_fd)]
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
            raise SimrlError("SocketcandServer has no port before start()")
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
