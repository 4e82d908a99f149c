"""The Damiao emulator's firmware behaviour on raw frames, and the socketcand server against python-can's own client."""

from __future__ import annotations

import re
import socket
from typing import Iterator

import can
import numpy as np
import pytest

from simrl.deploy.buses.base import BusError, MotorCommand
from simrl.deploy.buses.damiao.bus import DamiaoBus
from simrl.deploy.buses.damiao.protocol import (
    DamiaoConfigError,
    command_frame,
    pack_mit_command,
    pack_mit_reply,
    unpack_mit_reply,
)
from simrl.deploy.emulation.damiao_firmware import DamiaoEmulator
from simrl.deploy.emulation.socketcand import SocketcandServer
from tests.test_damiao_bus import (  # noqa: F401  (channel and plant are fixtures, shared by import)
    OPENARM_MOTORS,
    FakePlant,
    assert_matches_plant,
    channel,
    plant,
)

TIMEOUT = 2.0  # generous: the test machine is shared; a passing test never waits this long


@pytest.fixture
def wire(plant: FakePlant, channel: str) -> Iterator[can.BusABC]:
    """A raw virtual-bus end facing a running emulator."""
    emulator_end = can.Bus(interface="virtual", channel=channel)
    ours = can.Bus(interface="virtual", channel=channel)
    with DamiaoEmulator(plant, OPENARM_MOTORS, emulator_end):
        yield ours
    ours.shutdown()
    emulator_end.shutdown()


@pytest.fixture
def server(wire: can.BusABC, channel: str) -> Iterator[SocketcandServer]:
    with SocketcandServer(channel) as server:
        yield server


def ask(wire: can.BusABC, arbitration_id: int, data: bytes) -> can.Message | None:
    wire.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False))
    return wire.recv(TIMEOUT)


# ---------------------------------------------------------------- emulator firmware


def test_disabled_motor_replies_status_0_and_ignores_the_command(wire: can.BusABC, plant: FakePlant) -> None:
    lim = OPENARM_MOTORS[3].limits
    reply = ask(wire, 4, pack_mit_command(lim, 1.0, 0, 100, 1, 0))
    assert reply is not None and reply.arbitration_id == 0x14
    motor_id, status, q, *_ = unpack_mit_reply(lim, reply.data)
    assert (motor_id, status) == (4, 0) and plant.commands == []
    assert q == pytest.approx(plant.position[3], abs=4e-4)


def test_enabled_motor_applies_the_command_and_replies_status_1(wire: can.BusABC, plant: FakePlant) -> None:
    lim = OPENARM_MOTORS[0].limits
    enabled = ask(wire, 1, command_frame(0xFC))
    assert enabled is not None and unpack_mit_reply(lim, enabled.data)[:2] == (1, 1) and plant.enabled[0]
    reply = ask(wire, 1, pack_mit_command(lim, 0.5, 0, 100, 1, 0))
    assert reply is not None
    assert len(plant.commands) == 1 and plant.commands[0][1] == pytest.approx(0.5, abs=4e-4)
    # The reply is the plant's state packed exactly as the firmware would.
    sample = plant.sample(0)
    assert bytes(reply.data) == pack_mit_reply(lim, 1, 1, sample.position, sample.velocity, sample.torque, 25, 25)


def test_frames_for_other_ids_get_no_answer(wire: can.BusABC) -> None:
    wire.send(can.Message(arbitration_id=0x9, data=command_frame(0xFC), is_extended_id=False))
    wire.send(can.Message(arbitration_id=0x7FF, data=bytes([9, 0, 0x33, 10, 0, 0, 0, 0]), is_extended_id=False))
    assert wire.recv(0.1) is None


def test_emulator_refuses_a_plant_of_another_size(wire: can.BusABC) -> None:
    with pytest.raises(DamiaoConfigError, match="7 motors for a plant of 3"):
        DamiaoEmulator(FakePlant(3), OPENARM_MOTORS, wire)


# ---------------------------------------------------------------- socketcand


def read_until(sock: socket.socket, count: int) -> list[str]:
    """The next ``count`` ``< ... >`` messages from a raw socketcand connection."""
    text = ""
    while text.count(">") < count:
        chunk = sock.recv(4096).decode("ascii")
        assert chunk, f"server closed after {text!r}"
        text += chunk
    return re.findall(r"<[^>]*>", text)


def test_server_speaks_the_socketcand_text_protocol(server: SocketcandServer, plant: FakePlant) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        assert read_until(sock, 1) == ["< hi >"]
        sock.sendall(b"< open can0 >")
        assert read_until(sock, 1) == ["< ok >"]
        sock.sendall(b"< rawmode >")
        assert read_until(sock, 1) == ["< ok >"]
        sock.sendall(b"< send 7ff 8 3 0 cc 0 0 0 0 0 >")  # refresh motor 3, as python-can writes it
        (frame,) = read_until(sock, 1)
    match = re.fullmatch(r"< frame 013 \d+\.\d{6} ([0-9A-F]{16}) >", frame)
    assert match, frame
    sample = plant.sample(2)
    expected = pack_mit_reply(OPENARM_MOTORS[2].limits, 3, 0, sample.position, sample.velocity, sample.torque, 25, 25)
    assert bytes.fromhex(match.group(1)) == expected


def socketcand_bus(server: SocketcandServer, channel: str = "can0") -> DamiaoBus:
    return DamiaoBus(
        OPENARM_MOTORS,
        interface="socketcand",
        channel=channel,
        host="127.0.0.1",
        port=server.port,
        reply_timeout=TIMEOUT,
        setup_timeout=TIMEOUT,
    )


def test_exchange_through_python_can_socketcand_client(server: SocketcandServer, plant: FakePlant) -> None:
    with socketcand_bus(server) as bus:
        assert bus.enable().enabled.all()
        command = MotorCommand.hold(np.linspace(-1, 1, 7), np.full(7, 30.0), np.full(7, 1.0))
        for _ in range(3):
            readings = bus.exchange(command)
            assert readings.fresh.all()
            assert_matches_plant(readings, plant)
        assert len(plant.commands) == 21
        assert not bus.disable().enabled.any()
    assert plant.enabled == [False] * 7


def test_unknown_socketcand_bus_name_fails_to_open(server: SocketcandServer) -> None:
    with pytest.raises(BusError, match=r"interface 'socketcand' channel 'can9': .*could not open bus 'can9'"):
        socketcand_bus(server, channel="can9").open()


def test_stopped_server_raises_bus_error_on_the_client(server: SocketcandServer) -> None:
    bus = socketcand_bus(server)
    bus.open()
    bus.enable()
    server.stop()
    command = MotorCommand.hold(np.zeros(7), np.zeros(7), np.zeros(7))
    with pytest.raises(BusError, match=r"(send to CAN id 0x\w+|receive) on 'socketcand on can0@127.0.0.1") as error:
        for _ in range(5):  # the first frames may still fit in the dead socket's buffer
            bus.exchange(command)
    assert "\n" not in str(error.value)
    bus.close()


def test_socketcand_never_relays_an_fd_frame(plant: FakePlant, channel: str) -> None:
    """Motors set to CAN FD take socketcand's classic request but answer in FD, which socketcand does not carry."""
    emulator_end = can.Bus(interface="virtual", channel=channel, protocol=can.CanProtocol.CAN_FD)
    try:
        with DamiaoEmulator(plant, OPENARM_MOTORS, emulator_end, fd=True), SocketcandServer(channel) as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
                assert read_until(sock, 1) == ["< hi >"]
                sock.sendall(b"< open can0 >< rawmode >")
                assert read_until(sock, 2) == ["< ok >", "< ok >"]
                sock.sendall(b"< send 4 8 ff ff ff ff ff ff ff fc >")  # enable motor 4, classic
                sock.settimeout(0.3)
                with pytest.raises(socket.timeout):
                    sock.recv(4096)
            assert plant.enabled[3]  # the motor acted on it; its FD reply stayed on the CAN side
    finally:
        emulator_end.shutdown()


def test_python_can_socketcand_client_is_can_2_0_so_an_fd_bus_refuses_it(server: SocketcandServer) -> None:
    bus = DamiaoBus(OPENARM_MOTORS, interface="socketcand", channel="can0", host="127.0.0.1", port=server.port, fd=True)
    with pytest.raises(BusError, match=r"CAN FD asked for \(fd true\) but python-can opened 'socketcand on can0@127.0.0.1:\d+' as CAN_20"):
        bus.open()
