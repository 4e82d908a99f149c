"""The SO-101 on its Feetech bus as a user deploys it: deploy/so101.yaml, its calibration file, the emulated arm on a pty.

Expected ticks are worked out by hand in the comments (2 pi / 4096 rad a tick,
LeRobot's homing at 2047), never with the code under test. The vendor SDK
(scservo_sdk) talks to the emulated servos over a real pseudo-terminal.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from simrl.deploy import session
from simrl.deploy.buses import make_bus
from simrl.deploy.buses.feetech.bus import FeetechBus
from simrl.deploy.buses.feetech.settings import FEETECH_SERVOS
from simrl.deploy.config import load_deploy_config
from simrl.deploy.emulation.emulated_arm import EmulatedArm
from simrl.deploy.emulation.feetech_firmware import FeetechFirmware
from simrl.deploy.emulation.reality import RealityPlant
from simrl.deploy.emulation.serial_link import PtySerialLink
from simrl.deploy.emulation.serial_wire import assembly_calibration
from simrl.deploy.goals import GoalSpec
from simrl.deploy.log import PHASE_POLICY, DeployLog, read_log
from simrl.deploy.servo_calibration import RangeSnapshot, apply_calibration, calibrate, joint_mapping, load_calibration
from simrl.deploy.session import DeployRequest, prepare, run_deploy
from simrl.deploy.stop import StopRequest
from simrl.errors import SimrlError
from simrl.robots import Robot, load_robot
from tests.cli import assert_one_line_error, run_simrl, simrl_command
from tests.feetech_rig import PATIENT_S, SERVO_IDS, motor_joints, patient_sdk, so101_plant  # noqa: F401 (fixture)
from tests.servo_arm import place, walk_through_calibrate
from tests.test_deploy import FAST, TIMEOUT, read_line, write_policy

TICK = 2 * math.pi / 4096
SHIPPED = Path(__file__).parents[1] / "deploy" / "so101.yaml"

# An emulated arm whose servos read these ticks at the model's joint zero (assembly left its magnets there).
ZEROS = (3100, 1000, 2547, 600, 3900, 1500)
# The LeRobot file a user records on that arm, typed by hand. homing_offset = zero - 2047 (the middle pose, the
# model's zero, then reads 2047): 3100 - 2047 = 1053, 1000 - 2047 = -1047, 500, 600 - 2047 = -1447, 1853, -547.
# Ranges: the MJCF range in ticks about 2047 (one tick 2 pi / 4096 rad): shoulder_pan 1.91986 rad = 1251.55 ticks,
# 2047 -+ 1252 = 795 .. 3299; shoulder_lift 1.74533 = 1137.78: 909 .. 3185; elbow_flex 1.69 = 1101.71: 945 .. 3149;
# wrist_flex 1.65806 = 1080.89: 966 .. 3128; wrist_roll 0 .. 4095 (LeRobot's full turn); gripper -0.17453 = -113.78
# and 1.74533 = 1137.78: 1933 .. 3185.
HAND_FILE = """{
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": 1053, "range_min": 795, "range_max": 3299},
    "shoulder_lift": {"id": 2, "drive_mode": 0, "homing_offset": -1047, "range_min": 909, "range_max": 3185},
    "elbow_flex": {"id": 3, "drive_mode": 0, "homing_offset": 500, "range_min": 945, "range_max": 3149},
    "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": -1447, "range_min": 966, "range_max": 3128},
    "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": 1853, "range_min": 0, "range_max": 4095},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": -547, "range_min": 1933, "range_max": 3185}
}"""


@pytest.fixture(scope="module")
def so101() -> Robot:
    return load_robot("so101")


@pytest.fixture
def hand_file(tmp_path: Path) -> Path:
    path = tmp_path / "follower.json"
    path.write_text(HAND_FILE)
    return path


def edited_config(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text()
    assert old in text
    path = tmp_path / "so101.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


# ---------------------------------------------------------------- deploy/so101.yaml and its calibration file


def test_the_shipped_file_with_a_lerobot_calibration_builds_the_feetech_bus_and_the_joint_calibration(so101: Robot, hand_file: Path) -> None:
    config = load_deploy_config(so101, overrides={"bus.calibration": str(hand_file)})
    assert [m.joint for m in config.motors] == motor_joints(so101) and [m.id for m in config.motors] == list(SERVO_IDS)
    assert config.rate_hz == 1 / so101.config.control_dt == 50
    bus = make_bus(config)
    assert isinstance(bus, FeetechBus) and bus.motor_names == tuple(motor_joints(so101))
    plan_calibration = session.Calibration.from_config(config, so101)
    # shoulder_pan's zero is the middle of 795..3299 = 2047: one tick short of half a turn, -2 pi / 4096 rad
    assert plan_calibration.offset[0] == pytest.approx(-TICK, abs=1e-12) and plan_calibration.gain[0] == 1.0
    # the gripper's 1252 ticks span the model's 1.91986 rad: gain 1.91986 / (1252 * 2 pi / 4096) = 0.999643
    assert plan_calibration.gain[5] == pytest.approx(0.999643, abs=1e-6)


def config_error(so101: Robot, path: Path | None = None, **overrides: Any) -> str:
    with pytest.raises(SimrlError) as error:
        load_deploy_config(so101, path, overrides)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_config_errors_name_file_field_value_and_what_is_allowed(tmp_path: Path, so101: Robot, hand_file: Path) -> None:
    path = edited_config(tmp_path, "id: 3, model: sts3215", "id: 3, model: sts3251")
    assert config_error(so101, path) == f"{path}: field 'motors.2.model' = 'sts3251': unknown model (did you mean 'sts3215'?); allowed: sts3215"
    path = edited_config(tmp_path, "id: 4,", "id: 3,")
    assert config_error(so101, path) == f"{path}: field 'motors.3.id' = 3 repeats motors.2; allowed: one motor per id"
    path = edited_config(tmp_path, "id: 6,", "id: 254,")
    assert config_error(so101, path).startswith(f"{path}: field 'motors.5.id' = 254: Input should be less than or equal to 253")
    path = edited_config(tmp_path, "{joint: elbow_flex, id: 3, model: sts3215}", "{joint: elbow_flex, id: 3, model: sts3215, sign: -1}")
    assert "field 'motors.2' = " in config_error(so101, path) and "come from its calibration file (bus.calibration)" in config_error(so101, path)
    path = edited_config(tmp_path, "baud: 1000000", "baud: 9600")
    assert config_error(so101, path).startswith(f"{path}: field 'bus.baud' = 9600: not a Feetech rate; allowed: 1000000, 500000")


def test_a_calibration_file_that_is_missing_or_for_another_arm_is_refused(tmp_path: Path, so101: Robot, hand_file: Path) -> None:
    where = f"{SHIPPED}: field 'bus.calibration'"
    missing = tmp_path / "nowhere.json"
    assert config_error(so101, **{"bus.calibration": str(missing)}) == f"{where} = '{missing}': calibration file not found"
    koch = tmp_path / "koch.json"  # motor names of another arm
    koch.write_text(HAND_FILE.replace('"wrist_flex"', '"wrist_pitch"'))
    message = config_error(so101, **{"bus.calibration": str(koch)})
    assert message.startswith(f"{where} = '{koch}': motor 'wrist_pitch' is not a joint of this robot")
    other_ids = tmp_path / "other-ids.json"
    other_ids.write_text(HAND_FILE.replace('"id": 6', '"id": 16'))
    message = config_error(so101, **{"bus.calibration": str(other_ids)})
    assert message == f"{where} = '{other_ids}': motor 'gripper' has id 16 there but motors.5.id = 6; allowed: the same id (is it another arm's file?)"


def test_a_deploy_without_a_calibration_file_is_refused_before_the_bus_is_opened(tmp_path: Path, so101: Robot) -> None:
    policy = write_policy(tmp_path / "policy.onnx", so101, 0.0)
    result = run_simrl("deploy", "--robot", "so101", "--policy", str(policy), "--port", str(tmp_path / "ttyACM7"), "--log", str(tmp_path / "log.npz"))
    assert_one_line_error(result, "field 'bus.calibration' is not set; a Feetech arm needs its calibration: pass LeRobot's file with --calibration FILE")
    assert "`simrl calibrate --robot so101`" in result.stderr and not (tmp_path / "log.npz").exists()


def test_can_flags_on_a_serial_arm_and_bus_flags_with_emulate_are_refused(tmp_path: Path, so101: Robot, hand_file: Path) -> None:
    policy = write_policy(tmp_path / "policy.onnx", so101, 0.0)
    can_flag = DeployRequest(robot="so101", policy=policy, overrides={"bus.channel": "can0", "bus.calibration": hand_file})
    with pytest.raises(SimrlError, match=r"^--channel = 'can0': the so101 bus in .*so101.yaml is kind 'feetech', which has no 'channel'; allowed flags for it: --port, --calibration$"):
        prepare(can_flag)
    emulated = DeployRequest(robot="so101", policy=policy, overrides={"bus.port": "/dev/ttyACM0"}, emulate=True)
    with pytest.raises(SimrlError, match=r"^--port and --emulate both given"):
        prepare(emulated)


# ---------------------------------------------------------------- LeRobot's file against our calibrate() on the same emulated arm


@pytest.fixture
def emulated(so101: Robot) -> Iterator[tuple[RealityPlant, FeetechBus]]:
    """The SO-101 whose servos read ``ZEROS`` at joint zero, never calibrated (Homing_Offset 0), on a pty; the bus open."""
    plant = so101_plant(so101)
    with PtySerialLink(FeetechFirmware(plant, SERVO_IDS, encoder_zero=ZEROS)) as link:
        bus = FeetechBus(motor_joints(so101), SERVO_IDS, port=link.port, reply_timeout=PATIENT_S, setup_timeout=PATIENT_S)
        with bus:
            yield plant, bus


def joint_angles(bus: FeetechBus, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return gain * (bus.read().position - offset)


def test_the_emulated_arm_writes_the_file_a_user_would_record(so101: Robot, hand_file: Path) -> None:
    joints = motor_joints(so101)
    config = load_deploy_config(so101)
    assert assembly_calibration(so101, config, ZEROS, FEETECH_SERVOS) == load_calibration(hand_file, joints, FEETECH_SERVOS)


def test_a_lerobot_file_gives_the_same_joint_angles_as_our_calibration_of_the_same_emulated_arm(
    so101: Robot, hand_file: Path, emulated: tuple[RealityPlant, FeetechBus]
) -> None:
    plant, bus = emulated
    joints = motor_joints(so101)
    ranges = so101.model.jnt_range[[so101.model.joint(j).id for j in joints]]
    middle = {i: 0.0 for i in range(5)} | {5: 0.78540}  # the arm joints' zero is their travel's middle; the gripper's middle
    sweep = [{i: ranges[i, end]} for i in (0, 1, 2, 3, 5) for end in (0, 1)]  # each joint to both stops by hand
    moves = iter(sweep)

    def watch(snapshot: RangeSnapshot) -> bool:
        pose = next(moves, None)
        if pose is not None:
            place(plant, pose)
        return pose is None

    ours = calibrate(bus, dict(zip(joints, SERVO_IDS)), FEETECH_SERVOS, lambda: place(plant, middle), watch, full_turn=("wrist_roll",))
    # the gripper was held at 0.78540 rad = 512 ticks past its zero tick 1500: homing 2012 - 2047 = -35;
    # its stops are -0.95993 rad = -625.78 ticks and +625.78 ticks from there: 2047 -+ 625.78 = 1421.2 and 2672.8
    assert (ours["gripper"].homing_offset, ours["gripper"].range_min, ours["gripper"].range_max) == (-35, 1421, 2673)
    theirs = load_calibration(hand_file, joints, FEETECH_SERVOS)
    assert {j: ours[j].homing_offset for j in joints[:5]} == {j: theirs[j].homing_offset for j in joints[:5]}

    poses = [dict(enumerate(so101.config.home[j] for j in joints)), {0: 1.2, 1: -1.0, 2: 1.5, 3: -0.7, 4: 2.5, 5: 1.7}, {0: -1.9, 5: -0.1}]
    for pose in poses:
        place(plant, pose)
        truth = np.array([plant.sample(i).position for i in range(6)])
        by_ours = joint_angles(bus, *joint_mapping(ours, so101, FEETECH_SERVOS))  # the servos hold our calibration (calibrate wrote it)
        apply_calibration(bus, theirs)
        by_theirs = joint_angles(bus, *joint_mapping(theirs, so101, FEETECH_SERVOS))
        apply_calibration(bus, ours)
        np.testing.assert_allclose(by_theirs, by_ours, atol=TICK)
        np.testing.assert_allclose(by_ours, truth, atol=TICK)


# ---------------------------------------------------------------- the emulated SO-101 through simrl deploy


def so101_request(tmp_path: Path, so101: Robot, ticks: int, **fields: Any) -> DeployRequest:
    policy = write_policy(tmp_path / "policy.onnx", so101, 0.05)
    overrides = {**FAST, **fields.pop("overrides", {})}
    return DeployRequest(robot="so101", policy=policy, goals=GoalSpec(random=1, seed=0), duration=ticks * 0.02, overrides=overrides, **fields)


def test_deploy_emulate_drives_the_so101_through_its_calibration_file_and_leaves_it_resting(tmp_path: Path, so101: Robot) -> None:
    path = tmp_path / "log.npz"
    result = run_simrl("deploy", "--robot", "so101", "--policy", str(write_policy(tmp_path / "policy.onnx", so101, 0.0)), "--emulate",
                       "--goal", "0.25,0.0,0.12", "--duration", "0.2", "--log", str(path), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stop_reason"] == "completed" and summary["final_enabled"] == [False] * 6  # (timing: the slow e2e test)
    arrays, meta = read_log(path)
    assert meta["reality"]["reality"] == "so101-test" and meta["deploy_config"]["bus"]["port"].startswith("/dev/pts/")
    home = [so101.config.home[j] for j in motor_joints(so101)]
    reached_home = arrays["position"][np.flatnonzero(arrays["phase"] == PHASE_POLICY)[0]]
    np.testing.assert_allclose(reached_home, home, atol=0.02)  # the encoder zeros are random: only the calibration makes this true
    rest = meta["deploy_config"]["shutdown"]["rest"]
    # folded on the shoulder_lift stop with the jaws on the table (where they touch decides the last 0.15 rad of the wrist)
    np.testing.assert_allclose([arrays["position"][-1][i] for i in range(5)], [rest[j] for j in motor_joints(so101)[:5]], atol=0.2)
    assert arrays["position"][-1][1] == pytest.approx(rest["shoulder_lift"], abs=0.01)


def test_pulling_the_pty_mid_run_stops_safely_and_keeps_the_log(tmp_path: Path, so101: Robot, monkeypatch: pytest.MonkeyPatch) -> None:
    arms: list[EmulatedArm] = []
    logs: list[DeployLog] = []
    new_log = session.Plan.new_log
    # the arm in this process (--emulate serves a serial arm from a process of its own), so the test can pull its pty
    monkeypatch.setattr(session, "EmulatorProcess", lambda *args: arms.append(EmulatedArm(*args)) or arms[-1])
    monkeypatch.setattr(session.Plan, "new_log", lambda plan: logs.append(new_log(plan)) or logs[-1])
    pulled: list[int] = []

    def pull_once_the_policy_runs() -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ticks = logs[0].ticks if logs else []
            if sum(t.phase == PHASE_POLICY for t in ticks) >= 5:
                port = arms[0].wire.link.port  # type: ignore[attr-defined]
                arms[0].wire.link.close()  # type: ignore[attr-defined]  # the USB cable comes out
                pulled.append(len(ticks))
                pulled.append(port)  # type: ignore[arg-type]
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=pull_once_the_policy_runs, daemon=True)
    watcher.start()
    path = tmp_path / "log.npz"
    request = so101_request(tmp_path, so101, 100, emulate=True, log=path)
    summary = run_deploy(request, prepare(request), StopRequest())
    watcher.join(TIMEOUT)
    assert pulled, "the policy phase never started"
    ticks_before, port = pulled
    assert summary.stop_reason == "fault" and summary.exit_code == 1 and f"Feetech bus on '{port}' failed" in summary.detail
    arrays, meta = read_log(path)
    assert len(arrays["phase"]) >= ticks_before and meta["summary"]["stop_reason"] == "fault"
    # the shutdown tried (its first exchange and the disable failed on the same port) and the log says so
    assert [e["event"] for e in meta["events"]][-4:] == ["bus_error", "bus_error", "disable_failed", "stopped"]
    assert summary.final_enabled == [None] * 6  # no servo could confirm: the summary does not pretend it did


def test_emulate_prints_the_pty_for_a_deploy_in_another_process(tmp_path: Path, so101: Robot) -> None:
    with subprocess.Popen(simrl_command("emulate", "--robot", "so101", "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as server:
        try:
            where = json.loads(read_line(server.stdout, TIMEOUT))
            assert where["port"].startswith("/dev/pts/") and where["reality"]["reality"] == "so101-test"
            assert where["deploy_flags"] == ["--port", where["port"], "--calibration", where["calibration"]]
            overrides = {"bus.port": where["port"], "bus.calibration": where["calibration"]}
            request = so101_request(tmp_path, so101, 5, log=tmp_path / "log.npz", overrides=overrides)
            summary = run_deploy(request, prepare(request), StopRequest())
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=TIMEOUT)
    assert summary.stop_reason == "completed" and summary.final_enabled == [False] * 6 and summary.policy_ticks == 6
    assert server.returncode == 130


def test_simrl_calibrate_walks_a_user_through_lerobots_procedure_on_the_emulated_arm(tmp_path: Path, so101: Robot) -> None:
    plant = so101_plant(so101)
    ranges = so101.model.jnt_range[[so101.model.joint(j).id for j in motor_joints(so101)]]
    out = tmp_path / "my-so101.json"
    with PtySerialLink(FeetechFirmware(plant, SERVO_IDS, encoder_zero=ZEROS)) as link:
        command = simrl_command("calibrate", "--robot", "so101", "--port", link.port, "--out", str(out))
        returncode, out_text, err = walk_through_calibrate(command, plant, ranges)
    assert returncode == 0, err
    assert f"deploy with: simrl deploy --robot so101 --policy POLICY.onnx --calibration {out}" in out_text
    # the arm joints as in the hand-written file (the pose was the model's zero, the sweep reached the MJCF stops);
    # the gripper as in test_a_lerobot_file_gives_...: held at 0.78540 rad, homing -35, stops 1421 and 2673
    expected = json.loads(HAND_FILE)
    expected["gripper"].update(homing_offset=-35, range_min=1421, range_max=2673)
    assert json.loads(out.read_text()) == expected


def test_simrl_calibrate_refuses_an_arm_whose_motors_keep_no_calibration(tmp_path: Path) -> None:
    result = run_simrl("calibrate", "--robot", "openarm", "--out", str(tmp_path / "openarm.json"))
    assert_one_line_error(result, "openarm.yaml: bus kind 'damiao' keeps no calibration in its motors; `simrl calibrate` is for servo arms")
    assert not (tmp_path / "openarm.json").exists()
