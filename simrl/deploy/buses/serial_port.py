"""What the Feetech and Dynamixel buses share about a vendor SDK's serial port (both SDKs drive pyserial alike).

scservo_sdk and dynamixel_sdk (the first a fork of the second) open the port
non-blocking (timeout 0) and poll it in a loop until a reply is whole. At the
deploy loop's real-time priority that spin holds a core for a whole reply
timeout, starving whatever answers: an emulator in another process, the USB
driver's thread. So the buses give the port a short read timeout (the SDK's
loops then sleep in the kernel) and wait for a reply's first byte in ``select``.
"""

from __future__ import annotations

import select
import termios
import time
from typing import Any

import serial

READ_WAIT_S = 0.001  # a read waits up to this for the bytes it asks for, sleeping
# What pyserial and the OS raise when the port fails or vanishes (a pulled USB adapter, a closed pty).
WIRE_ERRORS = (OSError, serial.SerialException, termios.error)


def sleep_in_reads(port: Any) -> None:
    """Give an opened SDK ``PortHandler``'s device the read timeout that turns the SDK's spin into sleeps."""
    port.ser.timeout = READ_WAIT_S


def wait_readable(port: Any, deadline: float) -> bool:
    """Block without spinning until ``port`` has bytes to read or the ``time.monotonic()`` ``deadline`` passes."""
    left = deadline - time.monotonic()
    return left > 0 and bool(select.select([port.ser.fileno()], [], [], left)[0])


def one_line(exc: BaseException) -> str:
    """A wire error as one line for a ``BusError``: its type and text, termios' ``(errno, text)`` as OSError shows it."""
    if isinstance(exc, termios.error) and len(exc.args) == 2:  # termios.error is no OSError
        return f"[Errno {exc.args[0]}] {exc.args[1]}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
