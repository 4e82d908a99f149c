"""The bus registry: one entry per motor family, keyed on the deploy file's ``bus.kind``, builds that family's bus."""

from __future__ import annotations

import typing

from simrl.deploy.buses import BUS_KINDS, make_bus
from simrl.deploy.buses.damiao.bus import DamiaoBus
from simrl.deploy.config import load_deploy_config
from simrl.robots import load_robot


def test_each_entry_is_keyed_on_the_kind_its_models_accept() -> None:
    for kind, entry in BUS_KINDS.items():
        assert typing.get_args(entry.bus.model_fields["kind"].annotation) == (kind,)
        assert typing.get_args(entry.motor.model_fields["kind"].annotation) == (kind,)


def test_make_bus_builds_the_family_bus_kind_names_with_the_files_motors() -> None:
    openarm = load_robot("openarm")
    config = load_deploy_config(openarm, overrides={"rate_hz": 200.0})
    bus = make_bus(config, interface="virtual", channel="registry-test")
    assert isinstance(bus, DamiaoBus) and bus.motor_names == tuple(m.joint for m in config.motors)
    assert config.reply_timeout == 0.4 * 0.005  # capped at 40 % of the 5 ms period, below the file's 8 ms
