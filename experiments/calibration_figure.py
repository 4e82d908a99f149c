"""Draw deploy/calibration.png: how a LeRobot calibration maps an SO-101 servo's ticks onto the model's joint angles.

Left: an arm joint. The servo reports Present_Position = shaft position -
Homing_Offset; calibration chose the offset so the pose the user held reads
2047 (half a turn), then recorded the range the joint swept. The middle of
that range is the model's zero; one tick is 2 pi / 4096 rad. Right: the
gripper, whose recorded range is stretched linearly onto the model's gripper
range (LeRobot's 0..100 %). The lines come from ``joint_mapping``, the code the
bridge uses, applied to example calibrations.

    python experiments/calibration_figure.py    # writes deploy/calibration.png (~1 s)
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from simrl.deploy.buses.feetech.protocol import ticks_to_radians  # noqa: E402
from simrl.deploy.buses.feetech.settings import FEETECH_SERVOS  # noqa: E402
from simrl.deploy.servo_calibration import HALF_TURN, MAX_TICK, MotorCalibration, joint_mapping  # noqa: E402
from simrl.robots import load_robot  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "deploy" / "calibration.png"
# An example arm joint: posed at shaft 1800, so Homing_Offset = 1800 - 2047 = -247; then swept over 1000..3000.
ARM = MotorCalibration(id=1, drive_mode=0, homing_offset=-247, range_min=1000, range_max=3000)
# The gripper of a typical SO-101 file (closed 2012, open 3434).
GRIPPER = MotorCalibration(id=6, drive_mode=0, homing_offset=1410, range_min=2012, range_max=3434)
FILLER = MotorCalibration(id=9, drive_mode=0, homing_offset=0, range_min=0, range_max=MAX_TICK)


def main() -> None:
    robot = load_robot("so101")
    joints = list(robot.config.arm_joints) + list(robot.config.gripper_joints)
    calibration = {joint: FILLER.model_copy(update={"id": i + 1}) for i, joint in enumerate(joints)}
    calibration["shoulder_pan"] = ARM
    calibration["gripper"] = GRIPPER
    gain, offset = joint_mapping(calibration, robot, FEETECH_SERVOS)
    reversed_gain, reversed_offset = joint_mapping({**calibration, "shoulder_pan": ARM.model_copy(update={"drive_mode": 1})}, robot, FEETECH_SERVOS)
    pan, grip = joints.index("shoulder_pan"), joints.index("gripper")

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    ticks = np.linspace(300, MAX_TICK, 200)
    left.axvspan(ARM.range_min, ARM.range_max, color="0.9")
    left.plot(ticks, gain[pan] * (ticks_to_radians(ticks) - offset[pan]), color="C0")
    left.plot(ticks, reversed_gain[pan] * (ticks_to_radians(ticks) - reversed_offset[pan]), color="C0", linestyle="--")
    left.text(3350, 1.75, "drive_mode 0", color="C0", fontsize=8.5, ha="right")
    left.text(330, 2.85, "drive_mode 1 (reversed)", color="C0", fontsize=8.5)
    left.text(ARM.range_min + 30, -3.3, "recorded range", color="0.35", fontsize=8.5)
    left.axhline(0.0, color="0.5", linewidth=0.8)
    left.axvline(ARM.middle, color="C3", linewidth=1.2)
    left.text(
        ARM.middle + 60,
        2.2,
        f"middle of range\n({ARM.range_min} + {ARM.range_max}) / 2 = {ARM.middle:.0f}\n= model zero (0 rad)",
        color="C3",
        fontsize=8.5,
    )
    held = gain[pan] * (ticks_to_radians(HALF_TURN) - offset[pan])
    left.plot([HALF_TURN], [held], "o", color="C2")
    left.annotate(
        f"pose held at calibration: shaft 1800,\nHoming_Offset = 1800 - 2047 = {ARM.homing_offset},\nso it reads {HALF_TURN} (half a turn)",
        xy=(HALF_TURN, held),
        xytext=(1250, -2.5),
        arrowprops={"arrowstyle": "->", "color": "C2"},
        color="C2",
        fontsize=8.5,
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85},
    )
    left.plot([2512], [np.pi / 4], "s", color="C0")
    left.annotate("2512: +512 ticks = +\u03c0/4 rad", xy=(2512, np.pi / 4), xytext=(2620, 0.45), fontsize=8.5)
    left.set_xlim(300, MAX_TICK)
    left.set_ylim(-3.5, 3.5)
    left.set_xlabel("Present_Position (ticks) = shaft position - Homing_Offset")
    left.set_ylabel("model joint angle (rad)")
    left.set_title("arm joint: joint = gain (ticks 2\u03c0/4096 - offset), gain = \u00b11", fontsize=10)
    shaft = left.secondary_xaxis("top", functions=(lambda t: t + ARM.homing_offset, lambda s: s - ARM.homing_offset))
    shaft.set_xlabel("shaft position (ticks, before the servo subtracts Homing_Offset)", fontsize=8.5)

    low, high = robot.model.jnt_range[robot.model.joint("gripper").id]
    span = np.linspace(GRIPPER.range_min - 300, GRIPPER.range_max + 300, 200)
    right.axvspan(GRIPPER.range_min, GRIPPER.range_max, color="0.9", label="recorded range")
    right.plot(span, gain[grip] * (ticks_to_radians(span) - offset[grip]), color="C1", label="model gripper angle")
    ends = ((GRIPPER.range_min, low, "range_min: closed, 0 %", (8, -6), "left"), (GRIPPER.range_max, high, "range_max: open, 100 %", (-8, 6), "right"))
    for tick, angle, words, shift, align in ends:
        right.plot([tick], [angle], "o", color="C1")
        right.annotate(f"{words}\n{tick} ticks -> {angle:+.3f} rad", xy=(tick, angle), xytext=shift, textcoords="offset points", ha=align, fontsize=8.5)
    right.axhspan(low, high, color="C1", alpha=0.08, label="model joint range")
    right.set_xlabel("Present_Position (ticks)")
    right.set_ylabel("model joint angle (rad)")
    right.set_title(f"gripper: LeRobot's 0..100 % onto the model range, gain = {gain[grip]:.3f}", fontsize=10)
    percent = right.secondary_yaxis(
        "right",
        functions=(lambda a: 100 * (a - low) / (high - low), lambda p: low + p / 100 * (high - low)),
    )
    percent.set_ylabel("LeRobot gripper value (%)")
    right.legend(loc="upper left", fontsize=8)

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    Image.open(buffer).convert("RGB").quantize(colors=64).save(OUT, optimize=True)  # a 64-colour palette: < 100 KB
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
