"""The pty serial link: a client sees the timing of a UART at the firmware's baud rate, and a pulled cable."""

from __future__ import annotations

import time

import pytest
import serial

from simrl.deploy.emulation.serial_link import PtySerialLink, Reply

BAUD = 115_200  # slow enough that the wire time (87 µs per byte) dwarfs the pty's own latency


class Echo:
    """Answers every chunk with the same bytes after ``delay_s``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def receive(self, data: bytes) -> list[Reply]:
        return [Reply(bytes(data), self.delay_s)]

    def baud(self) -> int:
        return BAUD


def round_trip(client: serial.Serial, payload: bytes) -> float:
    start = time.monotonic()
    client.write(payload)
    assert client.read(len(payload)) == payload
    return time.monotonic() - start


def test_a_reply_arrives_no_sooner_than_both_ways_on_the_wire_plus_the_return_delay():
    with PtySerialLink(Echo(delay_s=0.004)) as link, serial.Serial(link.port, BAUD, timeout=1.0) as client:
        # 100 bytes out and 100 back at 10 bits a byte: 2 * 100 * 10 / 115200 = 17.4 ms, plus the 4 ms delay
        assert round_trip(client, bytes(range(100))) >= 0.0174 + 0.004


class SilentWrites:
    """50-byte packets in any split: one starting with 0 is a write (no reply), any other is echoed."""

    def __init__(self) -> None:
        self.pending = b""

    def receive(self, data: bytes) -> list[Reply]:
        self.pending += data
        replies = []
        while len(self.pending) >= 50:
            packet, self.pending = self.pending[:50], self.pending[50:]
            if packet[0] != 0:
                replies.append(Reply(packet))
        return replies

    def baud(self) -> int:
        return BAUD


def test_a_request_sent_while_the_line_is_busy_waits_for_it():
    with PtySerialLink(SilentWrites()) as link, serial.Serial(link.port, BAUD, timeout=1.0) as client:
        start = time.monotonic()
        client.write(bytes(50))  # a write nobody answers: 4.34 ms on the wire
        client.write(bytes([1] * 50))  # sent at once, so it can only start when the first has gone by
        assert client.read(50) == bytes([1] * 50)
        # both requests and the one reply cross the half-duplex line one after the other: 3 x 50 x 10 / 115200 s
        assert time.monotonic() - start >= 3 * 50 * 10 / BAUD


def test_closing_the_link_is_a_pulled_cable():
    link = PtySerialLink(Echo()).start()
    client = serial.Serial(link.port, BAUD, timeout=0.2)
    round_trip(client, b"ping")
    link.close()
    with pytest.raises(serial.SerialException):
        client.write(b"ping")
        client.read(4)
    client.close()
    link.close()  # twice is fine
