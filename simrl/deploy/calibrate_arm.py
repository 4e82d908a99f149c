"""``simrl calibrate``: LeRobot's calibration of a servo arm, walked through on a terminal, saved as LeRobot's file.

The procedure itself (``servo_calibration.calibrate``) has no terminal I/O;
this module does the talking: it says what to do, waits for Enter, shows the
live ticks while the user sweeps the joints, and writes the file that
``simrl deploy --calibration`` (and LeRobot) reads.
"""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any, TextIO

from simrl.deploy.buses import make_bus
from simrl.deploy.buses.servo_settings import ServoBusSettings
from simrl.deploy.config import load_deploy_config
from simrl.deploy.servo_calibration import CalibrationPort, MotorCalibration, RangeSnapshot, calibrate, factory_calibrate, save_calibration
from simrl.errors import SimrlError
from simrl.robots import load_robot

POLL_S = 0.1  # the live display's refresh, which paces the position reads too


class Terminal:
    """The user's side: lines out, Enter in (``stdin`` may be a pipe: a test, or a script)."""

    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self._stdin, self._stdout = stdin, stdout

    def say(self, text: str) -> None:
        print(text, file=self._stdout, flush=True)

    def wait_for_enter(self) -> None:
        if not self._stdin.readline():
            raise SimrlError("calibration cancelled: the input closed before Enter")

    def enter_pressed(self, timeout: float) -> bool:
        """Whether a line arrived within ``timeout`` s (consumed); end of input counts as Enter."""
        if not select.select([self._stdin], [], [], timeout)[0]:
            return False
        self._stdin.readline()
        return True


def range_table(snapshot: RangeSnapshot) -> str:
    """One line per joint: min, present, max ticks."""
    width = max(len(joint) for joint in snapshot.positions)
    return "\n".join(
        f"  {joint:<{width}}  min {snapshot.mins[joint]:>4}  now {snapshot.positions[joint]:>4}  max {snapshot.maxes[joint]:>4}"
        for joint in snapshot.positions
    )


def calibrate_arm(robot: str, out: Path, terminal: Terminal, config: Path | None = None, port: str | None = None) -> dict[str, MotorCalibration]:
    """Calibrate ``robot``'s arm on the bus of its deploy config (``port`` replacing the file's) and save it to ``out``."""
    arm = load_robot(robot)
    overrides: dict[str, Any] = {} if port is None else {"bus.port": port}
    deploy = load_deploy_config(arm, config, overrides)
    if not isinstance(deploy.bus, ServoBusSettings):
        raise SimrlError(
            f"{deploy.file}: bus kind '{deploy.bus.kind}' keeps no calibration in its motors; `simrl calibrate` is for servo arms "
            "(kind feetech or dynamixel); set this arm's offset and sign in its deploy file"
        )
    bus = make_bus(deploy)
    assert isinstance(bus, CalibrationPort)  # every servo family's bus is one
    motors = {m.joint: m.id for m in deploy.motors}
    full_turn = deploy.bus.full_turn_motors
    swept = [joint for joint in motors if joint not in full_turn]
    polls = 0

    def middle_pose() -> None:
        terminal.say(
            f"Torque is off on {', '.join(motors)}. Move the arm by hand to the middle of its range of motion "
            "(every joint half way between its stops; the gripper half open) and press Enter."
        )
        terminal.wait_for_enter()

    def watch(snapshot: RangeSnapshot) -> bool:
        nonlocal polls
        polls += 1
        if polls == 1:  # the offsets are written: the pose is recorded, the sweep may start
            but = f" but {', '.join(full_turn)}" if full_turn else ""
            terminal.say(f"Now move every joint{but} through its whole range, stop to stop ({', '.join(swept)}); press Enter when done.")
        if polls % 10 == 1:  # about once a second
            terminal.say(range_table(snapshot))
        return terminal.enter_pressed(POLL_S)

    bus.open()
    try:
        if deploy.bus.factory_calibrated:
            terminal.say(f"{robot} ships calibrated by its maker: writing LeRobot's factory calibration (homing 0, 0..4095) to {', '.join(motors)}.")
            calibration = factory_calibrate(bus, motors)
        else:
            calibration = calibrate(bus, motors, deploy.bus.servos, middle_pose, watch, full_turn)
    finally:
        bus.close()
    save_calibration(out, calibration)
    terminal.say(f"wrote {out} (LeRobot's format; the servos hold it too)\ndeploy with: simrl deploy --robot {robot} --policy POLICY.onnx --calibration {out}")
    return calibration
