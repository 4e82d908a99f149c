"""``DynamixelBus`` on ROBOTIS' SDK against the emulated arm on a paced pty: setup errors, the servo loop, effort, faults, a pulled cable."""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np
import pytest

from simrl.deploy.buses.base import BusError, MotorCommand
from simrl.deploy.buses.dynamixel.bus import DynamixelBus, DynamixelConfigError, DynamixelMotor
from simrl.deploy.emulation.dynamixel_firmware import DynamixelFirmware
from simrl.deploy.emulation.serial_link import PtySerialLink
from simrl.deploy.emulation.reality import RealityPlant
from tests.dynamixel_wire import BAUD, SERVOS, make_firmware, make_plant

MOTORS = [DynamixelMotor(name, servo_id, model) for name, servo_id, model in SERVOS]
TICK = 2 * np.pi / 4096  # one encoder tick in rad
PERIOD = 0.02  # s: the SO-101's 50 Hz control period
REPLY_TIMEOUT = 0.05  # s: generous, the test machine is shared; only a silent motor ever waits this long


@pytest.fixture
def plant() -> RealityPlant:
    return make_plant()


@pytest.fixture
def firmware(plant: RealityPlant) -> DynamixelFirmware:
    return make_firmware(plant)


@pytest.fixture
def link(firmware: DynamixelFirmware) -> Iterator[PtySerialLink]:
    with PtySerialLink(firmware) as link:
        yield link


@pytest.fixture
def bus(link: PtySerialLink) -> Iterator[DynamixelBus]:
    bus = DynamixelBus(link.port, MOTORS, baud=BAUD, reply_timeout=REPLY_TIMEOUT)
    bus.open()
    yield bus
    bus.close()


def joint_angles(plant: RealityPlant) -> np.ndarray:
    """The plant's true motor-joint angles (the SO-101's six joints come first in qpos)."""
    return plant.qpos[: len(SERVOS)]


def test_a_missing_port_names_the_port(tmp_path) -> None:
    missing = str(tmp_path / "ttyACM9")
    with pytest.raises(BusError, match="ttyACM9"):
        DynamixelBus(missing, MOTORS).open()


def test_a_missing_id_is_named_with_its_motor(link: PtySerialLink) -> None:
    motors = MOTORS[:5] + [DynamixelMotor("gripper", 9, "xl330-m288")]
    with pytest.raises(BusError, match=r"'gripper' \(id 9\).*ping got no valid answer"):
        DynamixelBus(link.port, motors, retries=0).open()


def test_a_wrong_model_is_named_with_its_id_and_both_models(link: PtySerialLink) -> None:
    motors = list(MOTORS)
    motors[3] = DynamixelMotor("wrist_flex", 4, "xl330-m288")  # the arm has an XL430-W250 there
    with pytest.raises(BusError, match=r"'wrist_flex' \(id 4\).*model number 1060 \(xl430-w250\), expected 1200 \(xl330-m288\)"):
        DynamixelBus(link.port, motors).open()


def test_config_errors_name_the_field() -> None:
    with pytest.raises(DynamixelConfigError, match="xl430-w250"):
        DynamixelMotor("shoulder_pan", 1, "xl430-w25")
    with pytest.raises(DynamixelConfigError, match="share the same id"):
        DynamixelBus("/dev/null", [DynamixelMotor("a", 1, "xl430-w250"), DynamixelMotor("b", 1, "xl430-w250")])
    with pytest.raises(DynamixelConfigError, match=r"mode 'torque'; allowed on the xl330-m288: position, extended_position, current_position"):
        DynamixelMotor("gripper", 6, "xl330-m288", mode="torque")
    with pytest.raises(DynamixelConfigError, match=r"'wrist_flex': mode 'current_position' \(the xl430-w250 has no such mode\); allowed on the xl430-w250: position, extended_position$"):
        DynamixelMotor("wrist_flex", 4, "xl430-w250", mode="current_position")  # the XL430 senses no current (modes 1, 3, 4, 16)


def test_enable_configures_the_servos_and_reads_the_arm_in_motor_space(bus: DynamixelBus, plant: RealityPlant, firmware) -> None:
    readings = bus.enable()
    assert readings.fresh.all() and readings.enabled.all() and readings.fault == ("",) * 6
    np.testing.assert_allclose(readings.position, joint_angles(plant), atol=TICK)
    tables = firmware.tables()
    assert [tables[m][9] for m in range(6)] == [0] * 6  # Return Delay Time 0
    assert [tables[m][11] for m in range(6)] == [4] * 6  # extended position mode, LeRobot's for arm joints
    assert [tables[m][64] for m in range(6)] == [1] * 6  # torque on


def test_each_motor_runs_in_its_own_mode(link: PtySerialLink, firmware) -> None:
    modes = ["position", "extended_position", "current_position", "position", "extended_position", "current_position"]
    motors = [DynamixelMotor(m.name, m.id, m.model, mode) for m, mode in zip(MOTORS, modes)]
    with DynamixelBus(link.port, motors, reply_timeout=REPLY_TIMEOUT) as bus:
        bus.enable()
    tables = firmware.tables()
    assert [tables[m][11] for m in range(6)] == [3, 4, 5, 3, 4, 5]
    # current-based position: Goal Current (102) = Current Limit (38), the XL330's 1,750 mA (0x06D6) as shipped
    assert tables[5][102:104] == b"\xd6\x06"


def test_the_servo_loop_drives_the_plant_joint_to_the_goal(bus: DynamixelBus, plant: RealityPlant) -> None:
    start = bus.enable().position
    goal = start.copy()
    goal[0] += 0.3  # shoulder_pan: a vertical axis, so no gravity load on an XM430-W350
    command = MotorCommand.hold(goal, np.zeros(6), np.zeros(6))
    for _ in range(100):  # 2 s of 50 Hz ticks
        readings = bus.exchange(command)
        plant.advance(PERIOD)
    readings = bus.read()
    assert abs(joint_angles(plant)[0] - goal[0]) < 0.01
    assert abs(readings.position[0] - joint_angles(plant)[0]) <= TICK
    assert readings.fresh.all()


def test_effort_zero_sets_goal_pwm_zero_and_the_motors_give_no_torque(bus: DynamixelBus, plant: RealityPlant, firmware) -> None:
    start = bus.enable().position
    bus.exchange(MotorCommand.hold(start, np.zeros(6), np.zeros(6), effort=1.0))
    plant.advance(0.2)
    assert np.any(plant.applied_torque != 0.0)  # holding the arm against gravity
    bus.exchange(MotorCommand.hold(start, np.zeros(6), np.zeros(6), effort=0.0))
    plant.advance(0.2)
    assert np.all(plant.applied_torque == 0.0)
    assert [firmware.tables()[m][100:102] for m in range(6)] == [b"\x00\x00"] * 6  # Goal PWM (100) = 0
    assert bus.read().enabled.all()  # torque is still on: only its share is zero


def test_a_hardware_fault_is_reported_with_its_reason(bus: DynamixelBus, firmware) -> None:
    bus.enable()
    firmware.fault(3, 0x20 | 0x04)  # overload and overheating on elbow_flex
    readings = bus.read()
    assert readings.enabled.tolist() == [True, True, False, True, True, True]
    assert readings.fault[2] == "overheating, overload" and readings.fault[:2] == ("", "")


def test_a_silent_motor_is_not_fresh_and_the_others_still_are(bus: DynamixelBus, plant: RealityPlant) -> None:
    bus.enable()
    plant.silence(1)  # shoulder_lift's reply is lost on the wire
    readings = bus.read()
    assert readings.fresh.tolist() == [True, False, True, True, True, True]
    for motor in range(6):
        plant.silence(motor)
    assert not bus.read().fresh.any()  # a tick with no reply at all ...
    for motor in range(6):
        plant.silence(motor, False)
    assert bus.read().fresh.all()  # ... leaves the bus usable


def test_disable_switches_every_torque_off(bus: DynamixelBus, plant: RealityPlant) -> None:
    bus.enable()
    readings = bus.disable()
    assert not readings.enabled.any()
    plant.advance(0.1)
    assert np.all(plant.applied_torque == 0.0)


def test_pulling_the_cable_mid_run_raises_bus_error(bus: DynamixelBus, link: PtySerialLink) -> None:
    readings = bus.enable()
    link.close()
    with pytest.raises(BusError, match="Dynamixel .* failed"):
        bus.exchange(MotorCommand.hold(readings.position, np.zeros(6), np.zeros(6)))
    with pytest.raises(BusError):
        bus.read()
    bus.close()
    bus.close()


def test_one_tick_takes_at_least_its_wire_time(bus: DynamixelBus) -> None:
    """A sync write of 6 goals + a sync read of 6 x 10 bytes is 190 bytes: 1.9 ms at 1 Mbaud. Faster means no pacing."""
    hold = MotorCommand.hold(bus.enable().position, np.zeros(6), np.zeros(6))
    times = []
    for _ in range(200):
        start = time.perf_counter()
        readings = bus.exchange(hold)
        times.append(time.perf_counter() - start)
        assert readings.fresh.all()
    wire = (14 + 6 * 5 + 14 + 6 + 6 * (11 + 10)) * 10 / BAUD
    median, p99 = np.median(times), np.percentile(times, 99)
    print(f"sync write + sync read of 6 servos at 1 Mbaud: median {median * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, wire {wire * 1e3:.2f} ms")
    assert median >= wire
