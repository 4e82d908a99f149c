"""The arithmetic behind `simrl bench env`'s randomization cost: paired ratios, flipped order, quartiles."""

from __future__ import annotations

import json

import pytest

from simrl.bench import _alternate, _cost_of
from tests.cli import run_simrl


def test_cost_is_the_median_of_pair_ratios_not_a_ratio_of_medians() -> None:
    # The machine slows down by half between the first and the last pairs; within each pair the randomized env
    # is 10 % slower in rate. A ratio of medians would mix pairs measured at different speeds.
    plain = [1.0, 1.0, 1.5, 1.5, 1.5]
    randomized = [p / 0.9 for p in plain]
    cost, (low, high) = _cost_of(plain, randomized)
    assert cost == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    cost, (low, high) = _cost_of([1.0] * 5, [1.0, 1.25, 1.1, 1.0 / 0.9, 2.0])
    assert cost == pytest.approx(0.1) and low == pytest.approx(1 - 1 / 1.1) and high == pytest.approx(0.2)


def test_alternation_flips_the_order_every_round() -> None:
    calls: list[str] = []
    timers = {name: (lambda name=name: calls.append(name) or 1.0) for name in ("a", "b")}
    times = _alternate(timers, 3, lambda _: None)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert times == {"a": [1.0] * 3, "b": [1.0] * 3}


def test_cli_bench_env_reports_the_randomization_cost_with_its_spread() -> None:
    result = run_simrl(
        "bench", "env", "--robot", "so101", "--envs", "16", "--steps", "5", "--repeats", "3", "--randomization", "default", "--json"
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    low, high = figures["randomization_cost_quartiles"]
    assert low <= figures["randomization_cost"] <= high
    assert figures["randomized_env_steps_per_s"] == pytest.approx(figures["env_steps_per_s"] * (1 - figures["randomization_cost"]))
