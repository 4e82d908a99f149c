"""A serial servo bus on a pseudo-terminal, paced as the real wire would be.

A pty has no baud rate: bytes written on one side appear on the other at once,
so a loop run against an unpaced emulator would measure only Python. This
transport gives the client end (``/dev/pts/N``, opened by any serial client: the
vendor's SDK, pyserial, LeRobot) the timing of a half-duplex UART at ``baud``:
a request of n bytes is on the wire for ``n * 10 / baud`` s (start + 8 data +
stop bits) after its first byte arrives; the firmware then answers after its
return delay, and the reply appears once its own bytes would have crossed the
wire. Whatever the firmware receives, however torn, it gets as raw bytes: the
framing, checksums and registers are the firmware's job (one per vendor, e.g.
``FeetechFirmware``), so this class serves every serial protocol.

Closing the link (``close``) is the emulated cable being pulled: the client's
next read or write fails with an I/O error, as on a vanished USB adapter.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from dataclasses import dataclass
from typing import Protocol

BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
SPIN_S = 0.0003  # sleep until this close to a deadline, then spin: time.sleep overshoots by ~0.1 ms


@dataclass(frozen=True)
class Reply:
    """Bytes a device sends back, and how long after the request's last byte it starts (its Return_Delay_Time)."""

    data: bytes
    delay_s: float = 0.0


class SerialFirmware(Protocol):
    """The devices on one bus, as a byte stream: whatever arrives goes in, whole replies come out."""

    def receive(self, data: bytes) -> list[Reply]:
        """Take bytes as they arrived (any split, any garbage); return the replies the devices send, in order."""

    def baud(self) -> int:
        """The bus rate the devices run at now (a client may change it through a register)."""


def wait_until(deadline: float) -> None:
    """Sleep, then spin, until ``time.monotonic() >= deadline``: pacing to a few microseconds."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if left > SPIN_S:
            time.sleep(left - SPIN_S)


def wire_time(num_bytes: int, baud: int) -> float:
    """Seconds ``num_bytes`` take on a UART at ``baud``."""
    return num_bytes * BITS_PER_BYTE / baud


class PtySerialLink:
    """Serve ``firmware`` on a new pseudo-terminal; clients open ``port`` as they would ``/dev/ttyACM0``."""

    def __init__(self, firmware: SerialFirmware) -> None:
        self.firmware = firmware
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing, no CR/LF translation: a UART passes bytes as they are
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._line_free_at = 0.0  # when the last byte on the wire (request or reply) has gone by

    def start(self) -> "PtySerialLink":
        self._thread = threading.Thread(target=self._serve, name=f"serial-link {self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Pull the cable: stop serving and close both ends; safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if not self._closed:
            self._closed = True
            for fd in (self._master, self._slave):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> "PtySerialLink":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _serve(self) -> None:
        """Read what the client sends, pace it as the wire would, write the replies when they would have arrived."""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            arrived = time.monotonic()
            try:
                data = os.read(self._master, 4096)
            except OSError:  # the client side is gone
                return
            if not data:
                continue
            baud = self.firmware.baud()
            # The request's last byte leaves the client's UART: it could not start before the line was free
            # (a client writing two requests back to back, the second arriving in its own chunk, waits for the first).
            sent_at = max(arrived, self._line_free_at) + wire_time(len(data), baud)
            self._line_free_at = sent_at
            for reply in self.firmware.receive(data):
                ready_at = sent_at + reply.delay_s + wire_time(len(reply.data), baud)
                wait_until(ready_at)
                try:
                    os.write(self._master, reply.data)
                except OSError:
                    return
                sent_at = self._line_free_at = ready_at
