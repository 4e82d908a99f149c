"""Damiao wire codecs against hand-computed bytes, and DamiaoBus against the emulator on python-can's virtual bus."""

from __future__ import annotations

import time
import uuid
from typing import Iterator

import can
import numpy as np
import pytest

from simrl.deploy.buses.base import BusError, MotorCommand
from simrl.deploy.buses.damiao.bus import DamiaoBus
from simrl.deploy.buses.damiao.protocol import (
    DAMIAO_LIMITS,
    DamiaoConfigError,
    DamiaoMotor,
    pack_mit_command,
    pack_mit_reply,
    decode_status,
    pack_param,
    unpack_mit_command,
    unpack_mit_reply,
    unpack_param,
)
from simrl.deploy.emulation.damiao_firmware import DamiaoEmulator
from simrl.deploy.emulation.plant import MotorSample

# The right OpenArm: ids 1..7 answering on 0x11..0x17 (ROBOTS.md, lerobot OPENARMS_ARM_MOTOR_IDS).
OPENARM_MOTORS = tuple(
    DamiaoMotor(f"joint{i + 1}", i + 1, 0x11 + i, model)
    for i, model in enumerate(("DM8009", "DM8009", "DM4340", "DM4340", "DM4310", "DM4310", "DM4310"))
)


class FakePlant:
    """A ``MotorPlant`` double: each accepted command moves the motor halfway to its target.

    Velocity and torque are distinct per motor so a reply routed to the wrong slot
    shows up; ``silent`` motors have every reply dropped.
    """

    def __init__(self, num_motors: int) -> None:
        self.num_motors = num_motors
        self.enabled = [False] * num_motors
        self.position = [0.3 * i - 0.9 for i in range(num_motors)]
        self.commands: list[tuple[int, float, float, float, float, float]] = []
        self.silent: set[int] = set()

    def set_enabled(self, motor: int, enabled: bool) -> None:
        self.enabled[motor] = enabled

    def set_command(self, motor: int, position: float, velocity: float, kp: float, kd: float, torque: float) -> None:
        self.commands.append((motor, position, velocity, kp, kd, torque))
        self.position[motor] += 0.5 * (position - self.position[motor])

    def sample(self, motor: int) -> MotorSample:
        return MotorSample(position=self.position[motor], velocity=0.7 * motor - 2.0, torque=1.5 - 0.4 * motor)

    def drops_reply(self, motor: int) -> bool:
        return motor in self.silent


def steps(model: str) -> dict[str, float]:
    """One quantization step of each MIT field for ``model``."""
    lim = DAMIAO_LIMITS[model]
    return {
        "q": 2 * lim.pmax / 65535,
        "dq": 2 * lim.vmax / 4095,
        "kp": lim.kp_max / 4095,
        "kd": lim.kd_max / 4095,
        "tau": 2 * lim.tmax / 4095,
    }


# ---------------------------------------------------------------- codecs


@pytest.mark.parametrize("model", sorted(DAMIAO_LIMITS))
@pytest.mark.parametrize("fraction", [-1.0, -0.37, 0.0, 0.5, 0.999, 1.0])
def test_mit_command_round_trip_within_one_step(model: str, fraction: float) -> None:
    lim = DAMIAO_LIMITS[model]
    step = steps(model)
    sent = (fraction * lim.pmax, fraction * lim.vmax, abs(fraction) * 500, abs(fraction) * 5, fraction * lim.tmax)
    got = unpack_mit_command(lim, pack_mit_command(lim, *sent))
    for name, x, y in zip(("q", "dq", "kp", "kd", "tau"), sent, got):
        assert abs(x - y) <= step[name], (name, x, y)


@pytest.mark.parametrize("model", sorted(DAMIAO_LIMITS))
def test_mit_command_clamps_to_ranges(model: str) -> None:
    lim = DAMIAO_LIMITS[model]
    high = unpack_mit_command(lim, pack_mit_command(lim, 3 * lim.pmax, 3 * lim.vmax, 900, 9, 3 * lim.tmax))
    low = unpack_mit_command(lim, pack_mit_command(lim, -3 * lim.pmax, -3 * lim.vmax, -1, -1, -3 * lim.tmax))
    assert high == pytest.approx((lim.pmax, lim.vmax, 500.0, 5.0, lim.tmax), abs=1e-12)
    assert low == pytest.approx((-lim.pmax, -lim.vmax, 0.0, 0.0, -lim.tmax), abs=1e-12)


@pytest.mark.parametrize("model", sorted(DAMIAO_LIMITS))
@pytest.mark.parametrize("fraction", [-1.0, -0.2, 0.0, 0.61, 1.0])
def test_mit_reply_round_trip(model: str, fraction: float) -> None:
    lim = DAMIAO_LIMITS[model]
    step = steps(model)
    data = pack_mit_reply(lim, 0x25, 1, fraction * lim.pmax, fraction * lim.vmax, fraction * lim.tmax, 41, 300)
    motor_id, status, q, dq, tau, t_mos, t_rotor = unpack_mit_reply(lim, data)
    assert (motor_id, status, t_mos, t_rotor) == (0x5, 1, 41, 255)  # id low nibble; temperature byte saturates
    assert abs(q - fraction * lim.pmax) <= step["q"]
    assert abs(dq - fraction * lim.vmax) <= step["dq"]
    assert abs(tau - fraction * lim.tmax) <= step["tau"]


@pytest.mark.parametrize(
    ("model", "values", "expected"),
    [
        # DM4310, all zero: q (12.5/25)*65535 = 32767.5 -> 32767 = 0x7FFF (truncated, as openarm_can);
        # dq, tau 0.5*4095 = 2047.5 -> 0x7FF; kp = kd = 0.
        # B2 = dq>>4 = 7F, B3 = (dq&F)<<4 | kp>>8 = F0, B6 = (kd&F)<<4 | tau>>8 = 07, B7 = FF.
        ("DM4310", (0.0, 0.0, 0.0, 0.0, 0.0), "7F FF 7F F0 00 00 07 FF"),
        # DM8009: q 1.0 -> 13.5/25*65535 = 35388.9 -> 35388 = 0x8A3C; dq -4.5 -> 40.5/90*4095 = 1842.75
        # -> 0x732; kp 240 -> 0.48*4095 = 1965.6 -> 0x7AD; kd 5 -> 0xFFF; tau -20 -> 34/108*4095 = 1289.2 -> 0x509.
        # B2 = 73, B3 = 2<<4 | 7 = 27, B4 = AD, B5 = FF, B6 = F<<4 | 5 = F5, B7 = 09.
        ("DM8009", (1.0, -4.5, 240.0, 5.0, -20.0), "8A 3C 73 27 AD FF F5 09"),
        # DM4340 with clamping: q 20 -> 12.5 -> 0xFFFF; dq -3 -> 7/20*4095 = 1433.25 -> 0x599;
        # kp 600 -> 500 -> 0xFFF; kd 0.3 -> 0.06*4095 = 245.7 -> 0x0F5; tau -30 -> -28 -> 0x000.
        # B2 = 59, B3 = 9<<4 | F = 9F, B4 = FF, B5 = 0F, B6 = 5<<4 | 0 = 50, B7 = 00.
        ("DM4340", (20.0, -3.0, 600.0, 0.3, -30.0), "FF FF 59 9F FF 0F 50 00"),
    ],
)
def test_mit_command_matches_hand_computed_bytes(model: str, values: tuple[float, ...], expected: str) -> None:
    assert pack_mit_command(DAMIAO_LIMITS[model], *values) == bytes.fromhex(expected)


@pytest.mark.parametrize(
    ("effort", "expected"),
    [
        (1.0, "8A 3C 73 27 AD FF F5 09"),  # the plain command above: kp 240 -> 0x7AD
        # kp 240 * 0.5 = 120 -> 0.24*4095 = 982.8 -> 0x3D6: B3 = 2<<4 | 3 = 23, B4 = D6; kd (B5, B6 high nibble) kept.
        (0.5, "8A 3C 73 23 D6 FF F5 09"),
        (0.0, "8A 3C 73 20 00 FF F5 09"),  # kp 0: damping only
    ],
)
def test_the_bus_sends_kp_times_effort_and_keeps_kd(channel: str, effort: float, expected: str) -> None:
    wire, listener = can.Bus(interface="virtual", channel=channel), can.Bus(interface="virtual", channel=channel)
    try:
        bus = DamiaoBus([DamiaoMotor("j", 1, 0x11, "DM8009")], can_bus=wire, reply_timeout=0.001)
        bus.open()
        command = MotorCommand(*(np.array([v]) for v in (1.0, -4.5, 240.0, 5.0, -20.0, effort)))
        assert not bus.exchange(command).fresh.any()  # nobody answers: the frame is all this test wants
        frame = listener.recv(1.0)
    finally:
        listener.shutdown()
        wire.shutdown()
    assert frame is not None and frame.arbitration_id == 1 and bytes(frame.data) == bytes.fromhex(expected)


def test_mit_reply_unpacks_hand_written_bytes() -> None:
    lim = DAMIAO_LIMITS["DM4310"]
    # B0 0x13: status 1 (enabled), motor 3; q 0x8000; dq 0x800 (B3 0x80, B4 high nibble 0);
    # tau 0x7FF (B4 low nibble 7, B5 FF); MOSFET 0x28 = 40 °C; rotor 0x2D = 45 °C.
    got = unpack_mit_reply(lim, bytes.fromhex("13 80 00 80 07 FF 28 2D"))
    assert got[:2] == (3, 1) and got[5:] == (40, 45)
    assert got[2:5] == pytest.approx((32768 / 65535 * 25 - 12.5, 2048 / 4095 * 60 - 30, 2047 / 4095 * 20 - 10))
    # B0 0xE5: overload (0xE) on motor 5; all-ones fields decode to the range tops.
    fault = unpack_mit_reply(DAMIAO_LIMITS["DM8009"], bytes.fromhex("E5 FF FF FF FF FF 00 00"))
    assert fault[:2] == (5, 0xE)
    assert fault[2:5] == pytest.approx((12.5, 45.0, 54.0))


@pytest.mark.parametrize(
    ("status", "decoded"),
    # ROBOTS.md (Damiao): 0 disabled, 1 enabled, 9 under-voltage, 0xD lost communication; 3 is not a documented state.
    [(0x0, (False, "")), (0x1, (True, "")), (0x9, (False, "under-voltage")), (0xD, (False, "lost communication")), (0x3, (False, "unknown state 0x3"))],
)
def test_the_state_nibble_decodes_to_enabled_and_a_fault_reason(status: int, decoded: tuple[bool, str]) -> None:
    assert decode_status(status) == decoded


def test_param_frames_match_hand_computed_bytes() -> None:
    # write RID 10 (uint32) = 1 to motor 3: [03, 00, 55, 0A, 01 00 00 00]
    assert pack_param(3, 0x55, 10, 1) == bytes.fromhex("03 00 55 0A 01 00 00 00")
    # read reply of RID 21 (PMAX, float32) = 12.5 = 0x41480000, little-endian
    assert unpack_param(bytes.fromhex("02 01 33 15 00 00 48 41")) == (0x102, 0x33, 21, 12.5)


def test_nan_command_is_refused() -> None:
    with pytest.raises(DamiaoConfigError, match="NaN"):
        pack_mit_command(DAMIAO_LIMITS["DM4310"], float("nan"), 0, 0, 0, 0)


def test_motor_list_errors_name_the_problem() -> None:
    with pytest.raises(DamiaoConfigError, match="did you mean 'DM4310'"):
        DamiaoMotor("j", 1, 0x11, "DM431")
    with pytest.raises(DamiaoConfigError, match="can_id 0x7ff"):
        DamiaoMotor("j", 0x7FF, 0x11, "DM4310")
    with pytest.raises(DamiaoConfigError, match="'a' and 'b' share the same can_id"):
        DamiaoBus([DamiaoMotor("a", 1, 0x11, "DM4310"), DamiaoMotor("b", 1, 0x12, "DM4310")])
    with pytest.raises(DamiaoConfigError, match="also motor command ids"):
        DamiaoBus([DamiaoMotor("a", 1, 2, "DM4310"), DamiaoMotor("b", 2, 0x12, "DM4310")])


# ---------------------------------------------------------------- bus <-> emulator


@pytest.fixture
def channel() -> str:
    """A virtual channel of the test's own, so tests never hear each other's frames."""
    return f"damiao-{uuid.uuid4().hex}"


@pytest.fixture
def plant() -> FakePlant:
    return FakePlant(len(OPENARM_MOTORS))


@pytest.fixture
def emulator(plant: FakePlant, channel: str) -> Iterator[DamiaoEmulator]:
    wire = can.Bus(interface="virtual", channel=channel)
    with DamiaoEmulator(plant, OPENARM_MOTORS, wire) as emulator:
        yield emulator
    wire.shutdown()


def make_bus(channel: str, **options: float) -> tuple[DamiaoBus, can.BusABC]:
    """A DamiaoBus on its own virtual end (timeouts generous: the test machine is shared)."""
    wire = can.Bus(interface="virtual", channel=channel)
    settings = {"reply_timeout": 0.5, "setup_timeout": 0.2, **options}
    bus = DamiaoBus(OPENARM_MOTORS, can_bus=wire, **settings)  # type: ignore[arg-type]
    bus.open()
    return bus, wire


@pytest.fixture
def bus(channel: str, emulator: DamiaoEmulator) -> Iterator[DamiaoBus]:
    bus, wire = make_bus(channel)
    yield bus
    wire.shutdown()


def assert_matches_plant(readings: object, plant: FakePlant, skip: frozenset[int] = frozenset()) -> None:
    for i, m in enumerate(OPENARM_MOTORS):
        if i in skip:
            continue
        sample, step = plant.sample(i), steps(m.model)
        assert abs(readings.position[i] - sample.position) <= step["q"]  # type: ignore[attr-defined]
        assert abs(readings.velocity[i] - sample.velocity) <= step["dq"]  # type: ignore[attr-defined]
        assert abs(readings.torque[i] - sample.torque) <= step["tau"]  # type: ignore[attr-defined]


def test_enable_puts_motors_in_mit_mode_and_reports_them_enabled(bus: DamiaoBus, plant: FakePlant) -> None:
    bus.write_param("joint2", 10, 2)  # leave one motor in position-velocity mode
    assert bus.read_param("joint2", 10) == 2
    readings = bus.enable()
    assert readings.enabled.all() and readings.fault == ("",) * 7 and readings.fresh.all()
    assert plant.enabled == [True] * 7
    assert bus.read_param("joint2", 10) == 1
    assert bus.read_param("joint5", 21) == 12.5  # PMAX, a float register
    assert_matches_plant(readings, plant)


def test_exchange_delivers_commands_and_returns_plant_state(bus: DamiaoBus, plant: FakePlant) -> None:
    bus.enable()
    target = np.array([0.5, -0.4, 0.3, 1.2, -1.0, 0.2, 0.7])
    command = MotorCommand(
        position=target,
        velocity=np.linspace(-2, 2, 7),
        kp=np.array([240, 240, 240, 240, 24, 31, 25.0]),
        kd=np.array([5, 5, 3, 5, 0.3, 0.3, 0.3]),
        torque=np.linspace(3, -3, 7),
        effort=np.ones(7),
    )
    readings = bus.exchange(command)
    assert readings.fresh.all() and readings.enabled.all()
    assert_matches_plant(readings, plant)
    assert sorted(c[0] for c in plant.commands) == list(range(7))
    for motor, q, dq, kp, kd, tau in plant.commands:
        step = steps(OPENARM_MOTORS[motor].model)
        assert abs(q - command.position[motor]) <= step["q"]
        assert abs(dq - command.velocity[motor]) <= step["dq"]
        assert abs(kp - command.kp[motor]) <= step["kp"]
        assert abs(kd - command.kd[motor]) <= step["kd"]
        assert abs(tau - command.torque[motor]) <= step["tau"]
    # The plant moved halfway toward the target; the next exchange reports the new state.
    assert_matches_plant(bus.exchange(command), plant)


def test_disabled_motors_answer_but_ignore_mit_commands(bus: DamiaoBus, plant: FakePlant) -> None:
    readings = bus.exchange(MotorCommand.hold(np.ones(7), np.full(7, 50.0), np.ones(7)))
    assert readings.fresh.all() and not readings.enabled.any()
    assert plant.commands == []


def test_dropped_replies_are_stale_and_the_exchange_ends_at_the_timeout(
    channel: str, emulator: object, plant: FakePlant
) -> None:
    bus, wire = make_bus(channel, reply_timeout=0.05)
    try:
        before = bus.enable()
        plant.silent = {2}
        start = time.monotonic()
        readings = bus.exchange(MotorCommand.hold(np.zeros(7), np.full(7, 10.0), np.ones(7)))
        elapsed = time.monotonic() - start
    finally:
        wire.shutdown()
    assert readings.fresh.tolist() == [True, True, False, True, True, True, True]
    assert 0.05 <= elapsed < 0.5  # waited out the timeout for motor 3, and no longer
    assert readings.position[2] == before.position[2]  # the last reply, kept
    assert plant.position[2] != pytest.approx(before.position[2])  # the command still reached motor 3


def test_a_late_reply_is_not_taken_for_this_exchange(channel: str, emulator: object, plant: FakePlant) -> None:
    bus, wire = make_bus(channel, reply_timeout=0.05)
    stray = can.Bus(interface="virtual", channel=channel)
    try:
        bus.enable()
        plant.silent = {2}
        # Motor 3's reply to an earlier exchange, arriving after that exchange gave up on it.
        late = pack_mit_reply(OPENARM_MOTORS[2].limits, 3, 1, 0.25, 0.0, 0.0, 25, 25)
        stray.send(can.Message(arbitration_id=0x13, data=late, is_extended_id=False))
        readings = bus.exchange(MotorCommand.hold(np.zeros(7), np.full(7, 10.0), np.ones(7)))
    finally:
        stray.shutdown()
        wire.shutdown()
    assert readings.fresh.tolist() == [True, True, False, True, True, True, True]


def test_a_fault_blocks_enable_until_cleared(channel: str, emulator: DamiaoEmulator, plant: FakePlant) -> None:
    bus, wire = make_bus(channel, setup_timeout=0.05, retries=1)
    try:
        bus.enable()
        emulator.inject_fault(3, 0xA)
        readings = bus.exchange(MotorCommand.hold(np.zeros(7), np.full(7, 10.0), np.ones(7)))
        assert readings.enabled.tolist() == [True] * 3 + [False] + [True] * 3 and not plant.enabled[3]
        assert readings.fault == ("",) * 3 + ("over-current",) + ("",) * 3  # status 0xA, decoded at the bus
        fault = r"enable failed after 2 tries: motor 'joint4' .* answered status 0xa \(over-current\)$"
        with pytest.raises(BusError, match=fault):
            bus.enable()
        cleared = bus.clear_errors()
        assert cleared.enabled.tolist() == [True] * 3 + [False] + [True] * 3 and cleared.fault == ("",) * 7
        assert bus.enable().enabled.all() and plant.enabled[3]
    finally:
        wire.shutdown()


def test_disable_reports_torque_off_and_frees_the_plant(bus: DamiaoBus, plant: FakePlant) -> None:
    bus.enable()
    readings = bus.disable()
    assert not readings.enabled.any() and readings.fault == ("",) * 7 and readings.fresh.all()
    assert plant.enabled == [False] * 7


def test_set_zero_offsets_reported_and_commanded_positions(bus: DamiaoBus, plant: FakePlant) -> None:
    raw = list(plant.position)
    assert np.abs(bus.set_zero().position).max() <= steps("DM4310")["q"]
    bus.enable()
    bus.exchange(MotorCommand.hold(np.zeros(7), np.full(7, 10.0), np.ones(7)))
    for motor, q, *_ in plant.commands:  # "hold 0" is the old raw angle in the plant's frame
        assert abs(q - raw[motor]) <= 2 * steps(OPENARM_MOTORS[motor].model)["q"]


def test_refresh_reads_state_without_commanding(bus: DamiaoBus, plant: FakePlant) -> None:
    readings = bus.refresh()
    assert readings.fresh.all() and plant.commands == []
    assert_matches_plant(readings, plant)
    assert not bus.clear_errors().enabled.any()


def test_read_asks_for_state_once_within_the_reply_timeout(channel: str, emulator: object, plant: FakePlant) -> None:
    """The per-tick read: no set point sent, one try bounded by the reply timeout (a setup-style retry would take 4 s here)."""
    bus, wire = make_bus(channel, reply_timeout=0.05, setup_timeout=1.0, retries=3)
    try:
        bus.enable()
        plant.silent = {2}
        start = time.monotonic()
        readings = bus.read()
        elapsed = time.monotonic() - start
    finally:
        wire.shutdown()
    assert plant.commands == []  # a refresh request, never an MIT command
    assert readings.fresh.tolist() == [True, True, False, True, True, True, True]
    assert readings.enabled.all()  # the state reply, torque state included (joint3's is its last, from enable)
    assert 0.045 < elapsed < 0.9  # waited the reply timeout for joint3, once
    assert_matches_plant(readings, plant, skip=frozenset({2}))


def test_parameter_errors_name_motor_and_register(channel: str, emulator: object) -> None:
    bus, wire = make_bus(channel, setup_timeout=0.02, retries=1)
    try:
        with pytest.raises(BusError, match=r"register 21 failed after 2 tries: motor 'joint1' .* kept it at 12.5"):
            bus.write_param("joint1", 21, 20.0)  # PMAX is read-only in the emulated firmware
        with pytest.raises(BusError, match=r"register 99 .* motor 'joint4' .* never answered"):
            bus.read_param("joint4", 99)
        with pytest.raises(DamiaoConfigError, match="did you mean 'joint4'"):
            bus.read_param("joint44", 10)
    finally:
        wire.shutdown()


def test_enable_names_the_motor_that_never_answers(channel: str, emulator: object, plant: FakePlant) -> None:
    plant.silent = {2, 6}
    bus, wire = make_bus(channel, setup_timeout=0.02, retries=1)
    try:
        with pytest.raises(BusError) as error:
            bus.enable()
    finally:
        wire.shutdown()
    message = str(error.value)
    assert "\n" not in message
    assert "'joint3' (id 0x03, replies on 0x13) never answered" in message
    assert "'joint7'" in message and "'joint1'" not in message


def test_vanished_bus_raises_a_one_line_bus_error(channel: str, emulator: object) -> None:
    bus, wire = make_bus(channel)
    bus.enable()
    wire.shutdown()  # the adapter disappears under the bus
    with pytest.raises(BusError) as error:
        bus.exchange(MotorCommand.hold(np.zeros(7), np.zeros(7), np.zeros(7)))
    assert "\n" not in str(error.value) and "Virtual bus channel" in str(error.value)


def test_open_failure_names_interface_and_channel() -> None:
    bus = DamiaoBus(OPENARM_MOTORS, interface="no_such_adapter", channel="can7")
    with pytest.raises(BusError, match=r"cannot open CAN interface 'no_such_adapter' channel 'can7': ") as error:
        bus.open()
    assert "\n" not in str(error.value)
    with pytest.raises(BusError, match="not open; call open"):
        bus.exchange(MotorCommand.hold(np.zeros(7), np.zeros(7), np.zeros(7)))


def test_command_of_wrong_length_is_refused(bus: DamiaoBus) -> None:
    with pytest.raises(DamiaoConfigError, match=r"allowed: 7 \(one per motor\)"):
        bus.exchange(MotorCommand.hold(np.zeros(6), np.zeros(6), np.zeros(6)))


def test_close_leaves_a_passed_in_bus_to_its_owner(channel: str, emulator: object) -> None:
    bus, wire = make_bus(channel)
    try:
        bus.close()
        bus.close()
        with pytest.raises(BusError, match="not open"):
            bus.refresh()
        bus.open()  # the same passed-in bus again, still usable
        assert bus.refresh().fresh.all()
    finally:
        wire.shutdown()


# ---------------------------------------------------------------- CAN FD

# One DM8009 on id 1 answering on 0x11: the first OpenArm motor (ROBOTS.md).
J1 = (DamiaoMotor("joint1", 1, 0x11, "DM8009"),)


def fd_end(channel: str) -> can.BusABC:
    """A virtual-bus end that reports CAN FD, as python-can's socketcan bus does when opened with fd=True."""
    return can.Bus(interface="virtual", channel=channel, protocol=can.CanProtocol.CAN_FD)


def socketcan_bytes(msg: can.Message) -> bytes:
    """``msg`` as python-can's socketcan interface writes it to the kernel: a struct canfd_frame (72 bytes) or can_frame (16)."""
    from can.interfaces.socketcan.socketcan import build_can_frame

    return build_can_frame(msg)


def test_fd_frames_on_the_wire_match_hand_computed_bytes(channel: str) -> None:
    """Enable, then one MIT command, over CAN FD: every frame both ways, seen by a third node on the wire."""
    plant = FakePlant(1)
    sniffer, emulator_end, bus_end = can.Bus(interface="virtual", channel=channel), fd_end(channel), fd_end(channel)
    try:
        with DamiaoEmulator(plant, J1, emulator_end, fd=True):
            bus = DamiaoBus(J1, can_bus=bus_end, fd=True, reply_timeout=0.5, setup_timeout=0.5)
            bus.open()
            assert bus.enable().enabled.all()
            bus.exchange(MotorCommand(*(np.array([v]) for v in (1.0, -4.5, 240.0, 5.0, -20.0, 1.0))))
        frames = []
        while (msg := sniffer.recv(0.1)) is not None:
            frames.append(msg)
    finally:
        for end in (sniffer, emulator_end, bus_end):
            end.shutdown()
    expected = [
        # write RID 10 (control mode, uint32) = 1 (MIT) to motor 1 on 0x7FF: [01 00 55 0A 01 00 00 00]; the motor echoes it on 0x11.
        (0x7FF, "01 00 55 0A 01 00 00 00"),
        (0x011, "01 00 55 0A 01 00 00 00"),
        # enable FF x7 FC; the state reply of the FakePlant's motor 0 (q -0.9, dq -2.0, tau 1.5, 25 C), DM8009 (12.5, 45, 54):
        # q (11.6/25)*65535 = 30408.2 -> 0x76C8; dq (43/90)*4095 = 1956.5 -> 0x7A4; tau (55.5/108)*4095 = 2104.4 -> 0x838;
        # B0 = status 1 << 4 | id 1 = 11, B3 = 7A, B4 = 4 << 4 | 8 = 48, B5 = 38, temperatures 0x19 0x19.
        (0x001, "FF FF FF FF FF FF FF FC"),
        (0x011, "11 76 C8 7A 48 38 19 19"),
        # the MIT command of test_mit_command_matches_hand_computed_bytes (DM8009, q 1, dq -4.5, kp 240, kd 5, tau -20);
        # the motor moved halfway to q = 35388/65535*25 - 12.5 = 0.99966: q -0.9 + 0.94983 = 0.04983 -> (12.54983/25)*65535
        # = 32898.1 -> 0x8082; dq and tau as before.
        (0x001, "8A 3C 73 27 AD FF F5 09"),
        (0x011, "11 80 82 7A 48 38 19 19"),
    ]
    assert [(m.arbitration_id, bytes(m.data)) for m in frames] == [(i, bytes.fromhex(d)) for i, d in expected]
    for msg, (arbitration_id, data) in zip(frames, expected):
        # struct canfd_frame: can_id 32-bit little-endian (11-bit id, no flags), len 8, flags FDF 0x04 | BRS 0x01 = 0x05,
        # two reserved bytes (python-can writes its dlc, 8, in the second), the 8 data bytes, zeros up to 64 data bytes.
        header = arbitration_id.to_bytes(4, "little") + bytes([8, 0x05, 0, 8])
        assert not msg.is_extended_id and msg.is_fd and msg.bitrate_switch and msg.dlc == 8
        assert socketcan_bytes(msg) == header + bytes.fromhex(data) + bytes(56)


def test_a_classic_bus_never_hears_fd_motors_though_they_act_on_its_frames(channel: str) -> None:
    """Damiao's manual: a motor set to CAN FD receives CAN 2.0B frames but answers in CAN FD, which a classic controller never takes."""
    plant = FakePlant(1)
    raw, emulator_end, classic_end = fd_end(channel), fd_end(channel), can.Bus(interface="virtual", channel=channel)
    try:
        with DamiaoEmulator(plant, J1, emulator_end, fd=True):
            raw.send(can.Message(arbitration_id=1, data=bytes.fromhex("FF FF FF FF FF FF FF FC"), is_extended_id=False))
            reply = raw.recv(1.0)
            assert plant.enabled == [True]  # the classic enable frame was acted on
            assert reply is not None and reply.arbitration_id == 0x11 and reply.is_fd and reply.bitrate_switch
            classic = DamiaoBus(J1, can_bus=classic_end, setup_timeout=0.05, retries=1)
            classic.open()
            with pytest.raises(BusError, match=r"never answered; no motor answered: check power, the channel, and that fd \(false\) matches"):
                classic.enable()
    finally:
        for end in (raw, emulator_end, classic_end):
            end.shutdown()


def test_fd_frames_reach_no_classic_motor(channel: str) -> None:
    """A CAN 2.0B controller cannot decode an FD frame: the motors neither act nor answer, and count it."""
    plant = FakePlant(len(OPENARM_MOTORS))
    emulator_end, bus_end = can.Bus(interface="virtual", channel=channel), fd_end(channel)
    try:
        with DamiaoEmulator(plant, OPENARM_MOTORS, emulator_end) as emulator:
            bus = DamiaoBus(OPENARM_MOTORS, can_bus=bus_end, fd=True, reply_timeout=0.05, setup_timeout=0.05, retries=0)
            bus.open()
            assert not bus.read().fresh.any()
            with pytest.raises(BusError, match=r"no motor answered: check power, the channel, and that fd \(true\) matches"):
                bus.enable()
            assert emulator.malformed == 7 + 7  # seven refresh requests, seven control-mode writes
    finally:
        bus_end.shutdown()
        emulator_end.shutdown()
    assert plant.enabled == [False] * 7 and plant.commands == []


def test_fd_motors_take_fd_frames_without_the_bit_rate_switch_and_refuse_longer_ones(channel: str) -> None:
    """LeRobot sends FD frames without the bit rate switch; any frame is still 8 data bytes: 12 (DLC 9) is not a Damiao frame."""
    plant = FakePlant(1)
    raw, emulator_end = fd_end(channel), fd_end(channel)
    try:
        with DamiaoEmulator(plant, J1, emulator_end, fd=True) as emulator:
            raw.send(can.Message(arbitration_id=1, data=bytes.fromhex("FF FF FF FF FF FF FF FC"), is_extended_id=False, is_fd=True))
            reply = raw.recv(1.0)
            assert reply is not None and reply.is_fd and reply.bitrate_switch and plant.enabled == [True]
            raw.send(can.Message(arbitration_id=1, data=bytes.fromhex("FF FF FF FF FF FF FF FD 00 00 00 00"), is_extended_id=False, is_fd=True, bitrate_switch=True))
            assert raw.recv(0.2) is None
            assert emulator.malformed == 1 and plant.enabled == [True]  # the 12-byte disable was not acted on
    finally:
        raw.shutdown()
        emulator_end.shutdown()


def test_an_fd_bus_refuses_an_interface_python_can_opened_as_can_2_0(channel: str) -> None:
    wire = can.Bus(interface="virtual", channel=channel)  # python-can's default protocol: CAN 2.0
    try:
        bus = DamiaoBus(J1, can_bus=wire, fd=True)
        with pytest.raises(BusError, match=r"CAN FD asked for \(fd true\) but python-can opened 'Virtual bus channel .*' as CAN_20; allowed: fd false"):
            bus.open()
    finally:
        wire.shutdown()
