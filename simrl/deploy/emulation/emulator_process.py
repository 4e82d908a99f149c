"""An emulated arm in a process of its own: ``simrl emulate`` as a child, reached as another process reaches it.

Real servos answer from their own hardware whatever the loop's computer is
doing; in the loop's process, an emulator's threads share the interpreter and
the cores with the loop (see ``wire.EMULATED_WIRES`` for what that cost). This
runs the very command a user would (``simrl emulate --robot R --json``) and
hands the deploy the settings it printed, so ``simrl deploy --emulate`` and a
deploy against ``simrl emulate`` in another terminal are the same path.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from simrl.deploy.config import DeployConfig
from simrl.errors import SimrlError
from simrl.robots import Robot

START_TIMEOUT_S = 120.0  # the child imports MuJoCo and builds the arm: seconds on a loaded 2-core machine
STOP_TIMEOUT_S = 10.0


class EmulatorProcess:
    """The arm ``EmulatedArm(robot, config, reality, seed)`` would be, served by a ``simrl emulate`` child process."""

    def __init__(self, robot: Robot, config: DeployConfig, reality: str | Path | None = None, seed: int = 0) -> None:
        self.robot = robot.name
        self.command = [sys.executable, "-m", "simrl", "emulate", "--robot", robot.name, "--config", str(config.file)]
        self.command += ["--reality-seed", str(seed), "--json"] + ([] if reality is None else ["--reality", str(reality)])
        self.process: subprocess.Popen[str] | None = None
        self._where: dict[str, Any] = {}

    def overrides(self) -> dict[str, Any]:
        """The deploy settings the child printed (its pty and calibration file, or its socketcand server)."""
        return dict(self._where["overrides"])

    def describe_reality(self) -> dict[str, Any]:
        return dict(self._where["reality"])

    @contextlib.contextmanager
    def started(self, realtime_priority: int | None = None) -> Iterator["EmulatorProcess"]:
        """The child running inside the block (its threads take the config's priority themselves); stopped as Ctrl-C stops it."""
        with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a child that writes much cannot block on it
            self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=errors, text=True)
            try:
                self._where = self._first_line(self.process, errors)
                yield self
            finally:
                self._stop(self.process)

    def _first_line(self, process: subprocess.Popen[str], errors: Any) -> dict[str, Any]:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line:
            process.kill()
            process.wait()
            errors.seek(0)
            lines = errors.read().strip().splitlines()
            why = lines[-1] if lines else f"no answer within {START_TIMEOUT_S:g} s"
            raise SimrlError(f"the emulated arm (simrl emulate --robot {self.robot}) did not start: {why}")
        return json.loads(line)

    @staticmethod
    def _stop(process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
