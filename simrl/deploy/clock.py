"""The loop's clocks and scheduling: a precise wall clock for a live arm, a virtual one for a lockstep simulation.

``time.sleep`` on Linux wakes tens of microseconds to milliseconds late (timer
slack, and on a loaded machine the scheduler lets a waking thread wait for a
busy core), too coarse for a sub-millisecond deadline; spinning the whole
period would burn a core the bus and the motors' emulator need. So
``WallClock`` sleeps until ``spin_s`` before the deadline and spins on
``time.perf_counter`` for the rest (holding the GIL at most ``spin_s``).

What the spin cannot fix is a core taken by another process when the sleep
ends. ``realtime_scheduling`` puts the loop thread in Linux's ``SCHED_FIFO``
class, as robot control loops usually run (ros2_control, libfranka): on this
project's loaded 2-core machine it took the 99th-percentile wake-up lateness
of a 50 Hz loop from 1.4 ms to 2 µs. It needs root, CAP_SYS_NICE or an
``rtprio`` limit; without them the loop runs at normal priority and says so.

Nor can it fix the loop's own pauses: a full pass of Python's cyclic garbage
collector over everything the imports created took 11 ms in the middle of a
50 Hz run here. ``collector_paused`` collects once, freezes what exists and
keeps the collector off for the loop (reference counting still frees every
temporary; the loop makes no reference cycles).
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from typing import Iterator, Protocol


class Clock(Protocol):
    """Seconds since the loop started, and a wait until a given time."""

    def now(self) -> float: ...

    def wait_until(self, deadline: float) -> None: ...


class WallClock:
    """``time.perf_counter`` (monotonic, the finest clock Python has) from construction; sleep-then-spin waits."""

    def __init__(self, spin_s: float = 0.0005) -> None:
        self.spin_s = spin_s
        self._start = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self._start

    def wait_until(self, deadline: float) -> None:
        """Return at ``deadline`` (or at once if it has passed); never blocks longer than until it."""
        remaining = deadline - self.now()
        if remaining > self.spin_s:
            time.sleep(remaining - self.spin_s)
        while self.now() < deadline:
            pass


class LockstepClock:
    """Virtual time for a bus that steps its plant on every exchange (``SimBus``): waiting takes no time."""

    def __init__(self) -> None:
        self._now = 0.0

    def now(self) -> float:
        return self._now

    def wait_until(self, deadline: float) -> None:
        self._now = max(self._now, deadline)


@contextlib.contextmanager
def realtime_scheduling(priority: int | None) -> Iterator[str]:
    """Run the calling thread under ``SCHED_FIFO`` at ``priority`` (1-99) inside the block.

    Yields what was applied, for the log: ``"SCHED_FIFO <priority>"``, or
    ``"normal"`` with the reason when ``priority`` is None or the OS refuses.
    Only the calling thread changes (Linux schedules threads one by one), so
    threads started before the block, like an emulator's, keep normal priority.
    """
    if priority is None or not hasattr(os, "sched_setscheduler"):
        yield "normal (not requested)" if priority is None else "normal (no SCHED_FIFO on this OS)"
        return
    previous = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        yield f"normal (SCHED_FIFO refused: {exc.strerror})"
        return
    try:
        yield f"SCHED_FIFO {priority}"
    finally:
        os.sched_setscheduler(0, *previous)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block: collect and freeze first, restore after."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
