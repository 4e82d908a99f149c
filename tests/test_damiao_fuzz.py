"""Random and mutated frames into every Damiao decoder and into the emulated firmware: nothing escapes, nothing torn acts.

Damiao frames carry no checksum, so a mutant of a valid frame is often a valid
frame itself (another id, another op, another value) and the firmware may act
on it, as a real motor would. The properties are therefore: no exception
escapes; a frame that is not an 8-byte data frame on a standard id is counted
(``malformed``) when it is addressed to the motors, and changes nothing; and
whatever the firmware does with any other frame is what that frame says when
read with ``protocol.py``'s decoders (ROBOTS.md, Damiao: which id, which
command, which register), checked against a small model of the motors' state
kept by this test. 10,400 examples in all (decoders 4,400; firmware 3 x 2,000).
"""

from __future__ import annotations

from typing import Iterator

import can
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simrl.deploy.buses.damiao.protocol import (
    CMD_CLEAR_ERROR,
    CMD_DISABLE,
    CMD_ENABLE,
    CMD_SET_ZERO,
    DAMIAO_LIMITS,
    PARAM_CAN_ID,
    PARAM_READ,
    PARAM_REFRESH,
    PARAM_WRITE,
    DamiaoMotor,
    command_code,
    command_frame,
    decode_status,
    pack_mit_command,
    pack_param,
    register_value,
    unpack_mit_command,
    unpack_mit_reply,
    unpack_param,
)
from simrl.deploy.emulation.damiao_firmware import DamiaoEmulator
from simrl.deploy.emulation.emulated_arm import motor_torque_limits
from simrl.deploy.emulation.plant import MotorSample
from simrl.deploy.emulation.reality import RealityPlant, load_reality
from simrl.robots import load_robot

# The OpenArm's motors: ids 1..8 answering on 0x11..0x18 (ROBOTS.md, OpenArm).
MOTORS = tuple(
    DamiaoMotor(f"joint{i + 1}" if i < 7 else "finger_joint1", i + 1, 0x11 + i, model)
    for i, model in enumerate(("DM8009", "DM8009", "DM4340", "DM4340", "DM4310", "DM4310", "DM4310", "DM4310"))
)
# Registers the emulated firmware answers (openarm_can dm_motor_constants.hpp): MST_ID, ESC_ID, CTRL_MODE, PMAX, VMAX, TMAX.
REGISTERS = (7, 8, 10, 21, 22, 23)


def fuzz(examples: int) -> settings:
    """``examples`` per test, no deadline (the machine is shared), no example database (tests write only under tmp_path)."""
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


class RecordingPlant:
    """A real ``RealityPlant`` (OpenArm, reality 'none': no noise, no drops) whose set_enabled / set_command calls are recorded."""

    def __init__(self) -> None:
        robot = load_robot("openarm")
        joints = [m.name for m in MOTORS]
        self.plant = RealityPlant(robot, load_reality("none", robot, 0), joints, motor_torque_limits(robot, joints))
        self.num_motors = self.plant.num_motors
        self.calls: list[tuple] = []

    def set_enabled(self, motor: int, enabled: bool) -> None:
        self.calls.append(("enabled", motor, enabled))
        self.plant.set_enabled(motor, enabled)

    def set_command(self, motor: int, position: float, velocity: float, kp: float, kd: float, torque: float) -> None:
        self.calls.append(("command", motor, position, velocity, kp, kd, torque))
        self.plant.set_command(motor, position, velocity, kp, kd, torque)

    def set_torque_limit(self, motor: int, share: float) -> None:
        self.plant.set_torque_limit(motor, share)

    def set_deadband(self, motor: int, radians: float) -> None:
        self.plant.set_deadband(motor, radians)

    def sample(self, motor: int) -> MotorSample:
        return self.plant.sample(motor)

    def drops_reply(self, motor: int) -> bool:
        return self.plant.drops_reply(motor)


@pytest.fixture(scope="module")
def firmware() -> Iterator[tuple[DamiaoEmulator, RecordingPlant]]:
    """One plant and one emulator for every example (``reset`` between them): a fresh MuJoCo plant per example is slow."""
    plant = RecordingPlant()
    wire = can.Bus(interface="virtual", channel="damiao-fuzz")  # never started: the test feeds ``receive`` itself
    yield DamiaoEmulator(plant, MOTORS, wire), plant
    wire.shutdown()


# ---------------------------------------------------------------- frames


def _valid_frame(draw: st.DrawFn) -> can.Message:
    """A well-formed frame for one of the motors: an MIT command, a command frame or a parameter frame."""
    motor = draw(st.sampled_from(MOTORS))
    kind = draw(st.sampled_from(("mit", "command", "param")))
    if kind == "mit":
        lim = motor.limits
        fields = [draw(st.floats(-1.2 * r, 1.2 * r)) for r in (lim.pmax, lim.vmax)]
        fields += [draw(st.floats(0, 600)), draw(st.floats(0, 6)), draw(st.floats(-1.2 * lim.tmax, 1.2 * lim.tmax))]
        return can.Message(arbitration_id=motor.can_id, data=pack_mit_command(lim, *fields), is_extended_id=False)
    if kind == "command":
        code = draw(st.sampled_from((CMD_ENABLE, CMD_DISABLE, CMD_SET_ZERO, CMD_CLEAR_ERROR)))
        return can.Message(arbitration_id=motor.can_id, data=command_frame(code), is_extended_id=False)
    op = draw(st.sampled_from((PARAM_READ, PARAM_WRITE, PARAM_REFRESH, 0xAA)))
    rid = draw(st.sampled_from(REGISTERS + (99,)))
    value = draw(st.integers(0, 4)) if rid in (7, 8, 10) else draw(st.floats(-100, 100, width=32))
    return can.Message(arbitration_id=PARAM_CAN_ID, data=pack_param(motor.can_id, op, rid, value), is_extended_id=False)


def _mutate(draw: st.DrawFn, msg: can.Message) -> can.Message:
    """Flip bytes, cut, extend, move to another id, or turn into a remote / error / extended frame."""
    data = bytearray(msg.data)
    arbitration_id, extended, remote, error = msg.arbitration_id, False, False, False
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(("flip", "truncate", "extend", "id", "flags")))
        if how == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        elif how == "truncate":
            data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
        elif how == "extend":
            data += draw(st.binary(min_size=1, max_size=8))
        elif how == "id":
            arbitration_id = draw(st.one_of(st.integers(0, 0x7FF), st.sampled_from([m.can_id for m in MOTORS] + [PARAM_CAN_ID, 0x11, 0])))
        else:
            extended, remote, error = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    return can.Message(
        arbitration_id=arbitration_id, data=bytes(data), is_extended_id=extended, is_remote_frame=remote, is_error_frame=error, check=False
    )


@st.composite
def frames(draw: st.DrawFn) -> can.Message:
    """Valid frames, their mutants, and random frames, about a third each."""
    source = draw(st.sampled_from(("valid", "mutant", "random")))
    if source == "random":
        return can.Message(
            arbitration_id=draw(st.integers(0, 0x7FF)), data=draw(st.binary(max_size=12)), is_extended_id=False, check=False
        )
    valid = _valid_frame(draw)
    return valid if source == "valid" else _mutate(draw, valid)


# ---------------------------------------------------------------- (a) decoders


@fuzz(4400)
@given(msg=frames(), model=st.sampled_from(sorted(DAMIAO_LIMITS)))
def test_every_decoder_takes_any_frame_and_answers_none_unless_it_has_8_bytes(msg: can.Message, model: str) -> None:
    data, lim = bytes(msg.data), DAMIAO_LIMITS[model]
    reply, command, param, code = unpack_mit_reply(lim, data), unpack_mit_command(lim, data), unpack_param(data), command_code(data)
    if len(data) != 8:
        assert reply is None and command is None and param is None and code is None
        return
    assert reply is not None and command is not None and param is not None
    motor_id, status, q, dq, tau, t_mos, t_rotor = reply
    assert 0 <= motor_id <= 0xF and 0 <= status <= 0xF and 0 <= t_mos <= 255 and 0 <= t_rotor <= 255
    assert abs(q) <= lim.pmax + 1e-9 and abs(dq) <= lim.vmax + 1e-9 and abs(tau) <= lim.tmax + 1e-9
    enabled, fault = decode_status(status)
    assert not (enabled and fault) and (enabled or fault or status == 0)  # one meaning per nibble: on, off or a fault
    q, dq, kp, kd, tau = command
    assert abs(q) <= lim.pmax + 1e-9 and abs(dq) <= lim.vmax + 1e-9 and abs(tau) <= lim.tmax + 1e-9
    assert 0 <= kp <= lim.kp_max + 1e-9 and 0 <= kd <= lim.kd_max + 1e-9
    assert code in (None, CMD_ENABLE, CMD_DISABLE, CMD_SET_ZERO, CMD_CLEAR_ERROR) and (code is None or data[:7] == b"\xff" * 7)


# ---------------------------------------------------------------- (b) the firmware


class MotorModel:
    """What the test expects of the motors, from ROBOTS.md's rules alone: torque state, latched fault, zero, control mode."""

    def __init__(self) -> None:
        n = len(MOTORS)
        self.enabled, self.fault, self.zero, self.mode = [False] * n, [0] * n, [0.0] * n, [1] * n

    def status(self, i: int) -> int:
        """The state nibble motor ``i`` must report: its latched fault, else 1 enabled / 0 disabled."""
        return self.fault[i] or int(self.enabled[i])


def check_frame(emulator: DamiaoEmulator, plant: RecordingPlant, model: MotorModel, msg: can.Message) -> None:
    """Feed one frame; assert the calls on the plant and the replies are exactly what the frame says."""
    malformed, before = emulator.malformed, [plant.sample(i).position for i in range(len(MOTORS))]
    plant.calls.clear()
    replies = emulator.receive(msg)
    calls = list(plant.calls)
    data = bytes(msg.data)
    by_id = {m.can_id: i for i, m in enumerate(MOTORS)}
    ours = not msg.is_extended_id and (msg.arbitration_id == PARAM_CAN_ID or msg.arbitration_id in by_id)
    torn = msg.is_remote_frame or msg.is_error_frame or len(data) != 8
    assert emulator.malformed == malformed + (ours and torn)  # every torn frame on our ids counted, nothing else
    if not ours or torn:
        assert replies == [] and calls == []
        return
    if msg.arbitration_id == PARAM_CAN_ID:
        can_id, op, rid, value = unpack_param(data)  # type: ignore[misc]
        i = by_id.get(can_id)
        assert calls == []
        if i is None or op not in (PARAM_REFRESH, PARAM_READ, PARAM_WRITE) or (op != PARAM_REFRESH and rid not in REGISTERS):
            assert replies == []
        elif op == PARAM_REFRESH:
            check_state_reply(replies, i, model, before[i])
        else:
            if op == PARAM_WRITE and rid == 10:  # only the control mode is writable
                model.mode[i] = int(value)
            m = MOTORS[i]
            stored = {7: m.master_id, 8: m.can_id, 10: model.mode[i], 21: m.limits.pmax, 22: m.limits.vmax, 23: m.limits.tmax}[rid]
            (reply,) = replies
            assert reply.arbitration_id == m.master_id and unpack_param(bytes(reply.data)) == (can_id, op, rid, register_value(rid, stored))
        return
    i = by_id[msg.arbitration_id]
    expected: list[tuple] = []
    if model.fault[i] and model.enabled[i]:  # a latched fault drops torque at the motor's next frame
        model.enabled[i] = False
        expected.append(("enabled", i, False))
    code = command_code(data)
    if code in (CMD_ENABLE, CMD_DISABLE):
        model.enabled[i] = code == CMD_ENABLE and not model.fault[i]
        expected.append(("enabled", i, model.enabled[i]))
    elif code == CMD_SET_ZERO:
        model.zero[i] = before[i]
    elif code == CMD_CLEAR_ERROR:
        model.fault[i] = 0
    elif model.enabled[i]:
        q, dq, kp, kd, tau = unpack_mit_command(MOTORS[i].limits, data)  # type: ignore[misc]
        expected.append(("command", i, q + model.zero[i], dq, kp, kd, tau))
    assert calls == expected
    check_state_reply(replies, i, model, before[i])


def check_state_reply(replies: list[can.Message], i: int, model: MotorModel, position: float) -> None:
    """One state reply from motor ``i`` on its master id: its id nibble, its state, its position from the set zero."""
    m = MOTORS[i]
    (reply,) = replies
    assert reply.arbitration_id == m.master_id and not reply.is_extended_id
    motor_id, status, q, *_ = unpack_mit_reply(m.limits, bytes(reply.data))  # type: ignore[misc]
    assert (motor_id, status) == (m.can_id & 0xF, model.status(i))
    assert abs(q - (position - model.zero[i])) <= 2 * m.limits.pmax / 65535 + 1e-9  # one 16-bit step over ±PMAX


def run_example(firmware: tuple[DamiaoEmulator, RecordingPlant], stream: list[can.Message], fault: tuple[int, int] | None) -> None:
    """Reset the firmware (power-on), latch ``fault`` if any, then check every frame of ``stream`` in turn."""
    emulator, plant = firmware
    emulator.reset()
    assert plant.calls[-len(MOTORS) :] == [("enabled", i, False) for i in range(len(MOTORS))]  # power-on: every motor off
    model = MotorModel()
    if fault is not None:
        emulator.inject_fault(*fault)
        model.fault[fault[0]] = fault[1]
    for msg in stream:
        check_frame(emulator, plant, model, msg)


FAULTS = st.none() | st.tuples(st.integers(0, len(MOTORS) - 1), st.integers(0x8, 0xE))
ENABLE_ALL = [can.Message(arbitration_id=m.can_id, data=command_frame(CMD_ENABLE), is_extended_id=False) for m in MOTORS]
OWN_IDS = st.sampled_from([m.can_id for m in MOTORS] + [PARAM_CAN_ID])


@fuzz(2000)
@given(stream=st.lists(frames(), min_size=1, max_size=4), fault=FAULTS)
def test_the_firmware_does_what_each_frame_says_and_nothing_for_a_torn_one(
    firmware: tuple[DamiaoEmulator, RecordingPlant], stream: list[can.Message], fault: tuple[int, int] | None
) -> None:
    run_example(firmware, stream, fault)


@fuzz(2000)
@given(stream=st.lists(frames(), min_size=1, max_size=4), fault=FAULTS)
def test_enabled_motors_take_mutated_commands_as_decoded(
    firmware: tuple[DamiaoEmulator, RecordingPlant], stream: list[can.Message], fault: tuple[int, int] | None
) -> None:
    """Every motor enabled first, so mutated MIT frames reach the plant (a disabled motor only answers)."""
    run_example(firmware, ENABLE_ALL + stream, fault)


@fuzz(2000)
@given(stream=st.lists(st.builds(lambda i, data: can.Message(arbitration_id=i, data=data, is_extended_id=False, check=False), OWN_IDS, st.binary(max_size=10)), min_size=1, max_size=4))
def test_random_bytes_on_the_motors_own_ids_act_only_as_decoded(firmware: tuple[DamiaoEmulator, RecordingPlant], stream: list[can.Message]) -> None:
    run_example(firmware, ENABLE_ALL + stream, None)
