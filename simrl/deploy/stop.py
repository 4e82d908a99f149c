"""How a deploy run is asked to stop from outside the loop: a signal (Ctrl-C, SIGTERM) or another thread.

The request only sets a flag; the bridge looks at it once per tick and takes
its one safe-stop path, so a signal never lands in the middle of an exchange.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class StopRequest:
    """Set from a signal handler or another thread; the loop looks at it once per tick."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM request a stop instead of raising mid-exchange; the old handlers come back after."""
    reasons = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
    previous = {sig: signal.signal(sig, lambda number, _frame: stop.request(reasons[number])) for sig in reasons}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
