"""FeetechBus (on scservo_sdk) against the emulated SO-101 on a pty: setup, ticks, faults, calibration, a pulled cable."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from simrl.deploy.buses.base import BusError, MotorCommand
from simrl.deploy.buses.feetech.bus import FeetechBus
from simrl.deploy.buses.feetech.protocol import RAD_PER_TICK, REGISTERS, PacketStream, packet_bytes
from simrl.deploy.emulation.feetech_firmware import FeetechFirmware
from simrl.deploy.emulation.serial_link import PtySerialLink, Reply
from simrl.deploy.emulation.reality import RealityPlant
from simrl.deploy.servo_calibration import MotorCalibration
from simrl.errors import SimrlError
from simrl.robots import Robot, load_robot
from tests.feetech_rig import PATIENT_S, SERVO_IDS, Tap, motor_joints, patient_sdk, so101_plant  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def so101() -> Robot:
    return load_robot("so101")


@pytest.fixture
def plant(so101: Robot) -> RealityPlant:
    return so101_plant(so101)


@pytest.fixture
def firmware(plant: RealityPlant) -> FeetechFirmware:
    return FeetechFirmware(plant, SERVO_IDS)


@pytest.fixture
def tap(firmware: FeetechFirmware) -> Tap:
    return Tap(firmware)


@pytest.fixture
def link(tap: Tap) -> Iterator[PtySerialLink]:
    with PtySerialLink(tap) as link:
        yield link


@pytest.fixture
def names(so101: Robot) -> list[str]:
    return motor_joints(so101)


@pytest.fixture
def bus(link: PtySerialLink, names: list[str]) -> Iterator[FeetechBus]:
    with make_bus(names, link.port) as bus:
        yield bus


def register(firmware: FeetechFirmware, motor: int, name: str) -> int:
    """A register as the emulated servo holds it (the emulator's side of the wire)."""
    reg = REGISTERS[name]
    return reg.decode(firmware.control_table(motor)[reg.address : reg.address + reg.size])


def make_bus(names: list[str], port: str, ids: tuple[int, ...] = SERVO_IDS, **settings: object) -> FeetechBus:
    """A bus with patient timeouts (``PATIENT_S``): the emulator shares this loaded machine."""
    settings.setdefault("reply_timeout", PATIENT_S)
    settings.setdefault("setup_timeout", PATIENT_S)
    return FeetechBus(names, ids, port=port, **settings)


def hold(position: np.ndarray, effort: float = 1.0) -> MotorCommand:
    zeros = np.zeros_like(position)
    return MotorCommand.hold(position, zeros, zeros, effort)


# ---------------------------------------------------------------- opening


def test_a_port_that_does_not_exist_is_named(tmp_path: Path, names: list[str]) -> None:
    port = str(tmp_path / "ttyACM9")
    with pytest.raises(BusError, match="ttyACM9"):
        FeetechBus(names, SERVO_IDS, port=port).open()


def test_wrong_model_number_names_the_motor_and_id(plant: RealityPlant, names: list[str]) -> None:
    with PtySerialLink(FeetechFirmware(plant, SERVO_IDS, model_number=1060)) as link:  # an XL430, say
        with pytest.raises(BusError, match=r"motor 'shoulder_pan' \(id 1\) reports model number 1060; allowed: 777"):
            make_bus(names, link.port).open()


def test_missing_id_names_the_motor_and_id(link: PtySerialLink, names: list[str]) -> None:
    with pytest.raises(BusError, match=r"ping: motor 'gripper' \(id 9\) did not answer"):
        make_bus(names, link.port, (1, 2, 3, 4, 5, 9), retries=0).open()


class StrayReplyOnce:
    """Answers the first READ of Model_Number (address 3, 2 bytes) with an empty status packet, as a late reply to
    an earlier ping would arrive; everything else goes to ``inner``."""

    def __init__(self, inner: FeetechFirmware) -> None:
        self.inner, self.sent = inner, False

    def receive(self, data: bytes) -> list[Reply]:
        replies = self.inner.receive(data)
        if not self.sent and data[4:7] == bytes([0x02, 3, 2]):  # FF FF id len READ addr size
            self.sent = True
            return [Reply(packet_bytes(data[2], 0))]
        return replies

    def baud(self) -> int:
        return self.inner.baud()


def test_a_stray_reply_during_the_ping_is_retried_not_raised(firmware: FeetechFirmware, names: list[str]) -> None:
    # scservo_sdk's ping reads the model number and indexes a reply with no data (IndexError) instead of failing the try
    with PtySerialLink(StrayReplyOnce(firmware)) as link:
        bus = make_bus(names, link.port, retries=1)
        bus.open()
        bus.close()


def test_bad_configuration_is_refused_before_any_wire(names: list[str]) -> None:
    with pytest.raises(SimrlError, match="distinct"):
        FeetechBus(names, (1, 1, 2, 3, 4, 5))
    with pytest.raises(SimrlError, match="did you mean 'gripper'"):
        FeetechBus(names, SERVO_IDS, {"griper": MotorCalibration(id=6, drive_mode=0, homing_offset=0, range_min=0, range_max=4095)})
    with pytest.raises(SimrlError, match="calibration of motor 'gripper' is for id 7; allowed: the motor's id 6"):
        FeetechBus(names, SERVO_IDS, {"gripper": MotorCalibration(id=7, drive_mode=0, homing_offset=0, range_min=0, range_max=4095)})
    with pytest.raises(SimrlError, match="P_Coefficient = 300"):
        FeetechBus(names, SERVO_IDS, p_coefficient=300)


# ---------------------------------------------------------------- enable, ticks


def test_enable_configures_like_lerobot_and_holds_the_pose(bus: FeetechBus, firmware: FeetechFirmware, so101: Robot) -> None:
    # servo 4 comes with Phase bit 4 set (multi-turn angle feedback), which LeRobot clears on an STS3215
    firmware.receive(packet_bytes(4, 0x03, bytes([REGISTERS["Lock"].address, 0])))
    firmware.receive(packet_bytes(4, 0x03, bytes([REGISTERS["Phase"].address, 0x14])))
    readings = bus.enable()
    assert [register(firmware, m, "Phase") for m in range(6)] == [0, 0, 0, 0x04, 0, 0]
    expected = {
        "Operating_Mode": 0,
        "P_Coefficient": 16,
        "I_Coefficient": 0,
        "D_Coefficient": 32,
        "Return_Delay_Time": 0,
        "Acceleration": 254,
        "Maximum_Acceleration": 254,
        "Lock": 1,
        "Torque_Enable": 1,
        "Torque_Limit": 1000,
    }
    for motor in range(len(SERVO_IDS)):
        assert {name: register(firmware, motor, name) for name in expected} == expected
        assert register(firmware, motor, "Goal_Position") == register(firmware, motor, "Present_Position")
    assert readings.enabled.all() and readings.fresh.all()
    assert readings.fault == ("",) * 6
    home = np.array([so101.config.home[j] for j in motor_joints(so101)])
    np.testing.assert_allclose(readings.position, home, atol=RAD_PER_TICK)  # encoder zero 2048, no offset: motor = joint


def test_enable_writes_only_what_differs(link: PtySerialLink, names: list[str], tap: Tap) -> None:
    with make_bus(names, link.port) as bus:
        bus.enable()
        first = _instructions(tap)
        bus.disable()
    tap.clear()
    with make_bus(names, link.port) as bus:
        bus.enable()
        second = _instructions(tap)
    assert first.count(0x03) > 6  # the first enable wrote each servo's EEPROM settings ...
    assert 0x03 not in second  # ... the second found them set and only read (0x02) and sync-wrote (0x83)
    assert set(second) == {0x01, 0x02, 0x82, 0x83}


def _instructions(tap: Tap) -> list[int]:
    return [p.code for p in PacketStream(gap_s=1.0).feed(tap.request_bytes, 0.0)]


def test_exchange_moves_the_arm_within_the_calibrated_range(link: PtySerialLink, names: list[str], firmware: FeetechFirmware, plant: RealityPlant) -> None:
    calibration = {"shoulder_pan": MotorCalibration(id=1, drive_mode=0, homing_offset=100, range_min=1900, range_max=2200)}
    with make_bus(names, link.port, calibration=calibration) as bus:
        start = bus.enable()
        assert register(firmware, 0, "Homing_Offset") == 100
        assert (register(firmware, 0, "Min_Position_Limit"), register(firmware, 0, "Max_Position_Limit")) == (1900, 2200)
        assert start.position[0] == pytest.approx(-100 * RAD_PER_TICK, abs=RAD_PER_TICK)  # joint 0, read 100 ticks early
        goal = start.position.copy()
        goal[0] = 1.0  # 2048 + 652 ticks: past range_max
        bus.exchange(hold(goal))
        assert register(firmware, 0, "Goal_Position") == 2200
        plant.advance(1.0)
        moved = bus.read()
    assert moved.position[0] == pytest.approx((2200 - 2048) * RAD_PER_TICK, abs=3 * RAD_PER_TICK)
    assert plant.qpos[0] == pytest.approx((2200 + 100 - 2048) * RAD_PER_TICK, abs=3 * RAD_PER_TICK)


def test_effort_sets_torque_limit_only_when_it_changes(
    link: PtySerialLink, names: list[str], firmware: FeetechFirmware, plant: RealityPlant, tap: Tap
) -> None:
    with make_bus(names, link.port, torque_limits={"gripper": 500}) as bus:
        position = bus.enable().position
        assert [register(firmware, m, "Torque_Limit") for m in range(6)] == [1000] * 5 + [500]
        bus.exchange(hold(position, effort=0.5))
        assert [register(firmware, m, "Torque_Limit") for m in range(6)] == [500] * 5 + [250]
        bus.exchange(hold(position, effort=0.0))
        plant.advance(0.1)
        assert np.all(plant.applied_torque == 0.0)
        tap.clear()
        readings = bus.exchange(hold(position, effort=0.0))
    assert _instructions(tap) == [0x83, 0x82]  # the goals and the state read: no Torque_Limit write for the same effort
    assert readings.enabled.all()  # torque is still on: only its cap is zero


def test_faults_are_decoded_and_an_unloading_fault_clears_enabled(bus: FeetechBus, firmware: FeetechFirmware) -> None:
    bus.enable()
    firmware.inject_error(3, 0x20)
    firmware.inject_error(5, 0x01)
    readings = bus.read()
    assert readings.fault == ("", "", "overload", "", "input voltage", "")
    assert readings.enabled.tolist() == [True, True, False, True, True, True]


def test_a_silent_servo_is_not_fresh(bus: FeetechBus, plant: RealityPlant) -> None:
    first = bus.enable()
    plant.silence(4)
    readings = bus.read()
    assert readings.fresh.tolist() == [True, True, True, True, False, True]
    assert readings.position[4] == first.position[4]  # the last value, repeated


def test_disable_turns_torque_off(bus: FeetechBus, firmware: FeetechFirmware) -> None:
    bus.enable()
    readings = bus.disable()
    assert not readings.enabled.any()
    assert [register(firmware, m, "Torque_Enable") for m in range(6)] == [0] * 6


def test_enable_and_disable_confirm_the_state_whatever_a_ticks_reply_timeout(link: PtySerialLink, names: list[str]) -> None:
    with make_bus(names, link.port, reply_timeout=1e-9) as bus:  # a tick timeout no reply meets (86 bytes take 0.86 ms at 1 Mbaud)
        assert bus.enable().fresh.all()
        assert not bus.read().fresh.any()
        off = bus.disable()
    assert off.fresh.all() and not off.enabled.any()


def test_pulling_the_cable_mid_run_raises_bus_error(bus: FeetechBus, link: PtySerialLink) -> None:
    position = bus.enable().position
    bus.exchange(hold(position))
    link.close()
    with pytest.raises(BusError, match=link.port):
        for _ in range(3):  # the first write may still land in the pty's buffer
            bus.exchange(hold(position))
    bus.close()
    bus.close()


# ---------------------------------------------------------------- calibration primitives


def test_calibration_primitives(bus: FeetechBus, firmware: FeetechFirmware) -> None:
    bus.enable()
    bus.disable_torque()
    assert [register(firmware, m, "Torque_Enable") for m in range(6)] == [0] * 6
    raw = bus.raw_positions()
    assert raw["shoulder_pan"] == 2048 and raw["shoulder_lift"] == 1657  # home: 0 and -0.6 rad
    bus.write_homing_offsets({"shoulder_lift": -391})  # makes the home pose read half a turn, as LeRobot's homing does
    assert bus.raw_positions()["shoulder_lift"] == 2048
    assert register(firmware, 1, "Lock") == 1  # locked again after the write
    bus.write_position_limits({"elbow_flex": (1000, 3000)})
    assert [register(firmware, 2, n) for n in ("Homing_Offset", "Min_Position_Limit", "Max_Position_Limit")] == [0, 1000, 3000]
    with pytest.raises(SimrlError, match="did you mean 'wrist_roll'"):
        bus.write_homing_offsets({"wrist_rol": 0})
    with pytest.raises(SimrlError, match="motor 'gripper': homing_offset = 3000; allowed: -2047..2047"):
        bus.write_homing_offsets({"gripper": 3000})
    with pytest.raises(SimrlError, match="motor 'gripper': position limits 3000..1000"):
        bus.write_position_limits({"gripper": (3000, 1000)})


def test_new_position_limits_clamp_the_goals(bus: FeetechBus, firmware: FeetechFirmware) -> None:
    position = bus.enable().position
    bus.write_position_limits({"elbow_flex": (2100, 2300)})
    goal = position.copy()
    goal[2] = 0.0  # tick 2048, below the new minimum
    bus.exchange(hold(goal))
    assert register(firmware, 2, "Goal_Position") == 2100
