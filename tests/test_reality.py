"""The emulator's "reality": drawn without JAX like training draws it, and an arm that obeys Damiao MIT-law physics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from simrl.deploy.emulation.reality import RealityPlant, Reality, RealTimeStepper, load_reality
from simrl.errors import SimrlError
from simrl.randomization import apply
from simrl.randomization.profile import ParameterSpec
from simrl.randomization.sampler import KeySource
from simrl.robots import Robot, load_robot

ARM_LIMITS = [40.0, 40.0, 27.0, 27.0, 7.0, 7.0, 7.0]  # N·m, DM8009 x2, DM4340 x2, DM4310 x3 (ROBOTS.md, OpenArm)
HOLD_KP = [240.0, 240.0, 240.0, 240.0, 24.0, 31.0, 25.0]  # the maker's typical MIT gains (ROBOTS.md, OpenArm)
HOLD_KD = [5.0, 5.0, 3.0, 5.0, 0.3, 0.3, 0.3]
WRIST_ROLL = 6  # joint7: its load sits almost on its axis, so gravity barely biases a low-gain test


@pytest.fixture(scope="module")
def openarm() -> Robot:
    return load_robot("openarm")


def _reality(tmp_path: Path, robot: Robot, text: str, seed: int = 0) -> Reality:
    path = tmp_path / "reality.yaml"
    path.write_text(text)
    return load_reality(path, robot, seed)


def _plant(robot: Robot, reality: Reality) -> RealityPlant:
    return RealityPlant(robot, reality, list(robot.config.arm_joints), ARM_LIMITS)


def _hold_home(plant: RealityPlant, kp: list[float] = HOLD_KP, kd: list[float] = HOLD_KD) -> np.ndarray:
    """Enable every motor, holding the home pose; returns the home joint positions."""
    home = plant.robot.home_qpos[plant.robot.arm_qpos_adr]
    for motor in range(plant.num_motors):
        plant.set_enabled(motor, True)
        plant.set_command(motor, float(home[motor]), 0.0, kp[motor], kd[motor], 0.0)
    return home


def _arm(plant: RealityPlant) -> np.ndarray:
    return plant.qpos[plant.robot.arm_qpos_adr]


def test_importing_the_reality_does_not_import_jax() -> None:
    code = "import sys, simrl.deploy.emulation.reality; assert 'jax' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "spec",
    [
        {"distribution": "uniform", "low": -1.0, "high": 3.0},
        {"distribution": "loguniform", "low": 0.5, "high": 2.0},
        {"distribution": "normal", "mean": 0.0, "std": 1.0, "low": -0.5, "high": 0.8},
    ],
)
def test_numpy_and_jax_draws_share_their_bounds(spec: dict) -> None:
    spec = ParameterSpec(**spec)
    low, high = spec.bounds()
    numpy_draw = apply.draw(np, apply.GeneratorSource(np.random.default_rng(0)), spec, (20_000,))
    jax_draw = np.asarray(apply.draw(jax.numpy, KeySource(jax.random.key(0)), spec, (20_000,)))
    for values in (numpy_draw, jax_draw):
        assert values.dtype == np.float32
        assert low - 1e-6 <= values.min() and values.max() <= high + 1e-6
    # both fill the range alike: extremes within 0.2 % of the width, means within 5 standard errors
    width = high - low
    assert abs(numpy_draw.min() - jax_draw.min()) < 0.002 * width and abs(numpy_draw.max() - jax_draw.max()) < 0.002 * width
    assert abs(numpy_draw.mean() - jax_draw.mean()) < 5 * np.sqrt(2 / 20_000) * jax_draw.std()


def test_fixed_values_are_identical_in_numpy_and_jax(openarm: Robot) -> None:
    spec = ParameterSpec(distribution="fixed", value=1.15)
    numpy_draw = apply.draw(np, apply.GeneratorSource(np.random.default_rng(0)), spec, (5,))
    assert np.array_equal(numpy_draw, np.asarray(apply.draw(jax.numpy, KeySource(jax.random.key(0)), spec, (5,))))
    reality = load_reality("openarm-test", openarm, seed=0)
    np.testing.assert_allclose(reality.model["body_mass"][1:], openarm.model.body_mass[1:] * 1.15, rtol=1e-6)
    assert reality.command_latency == pytest.approx(openarm.config.control_dt)


def test_strong_profile_loads_as_a_reality_and_describes_itself(openarm: Robot) -> None:
    reality = load_reality("strong", openarm, seed=7)
    report = json.loads(json.dumps(reality.describe()))
    assert report["reality"] == "strong" and report["seed"] == 7
    assert {"link_mass", "joint_damping", "kp_scale", "force_limit_scale", "obs_joint_pos_noise"} <= set(report)
    assert all(0.7 * 0.999 <= row["reality"] / row["nominal"] <= 1.3 * 1.001 for row in report["link_mass"].values())
    assert load_reality("strong", openarm, seed=7).describe() == report  # the same seed gives the same arm
    assert load_reality("none", openarm, seed=7).describe() == {"reality": "none", "seed": 7}


def test_an_unknown_reality_names_what_exists(openarm: Robot) -> None:
    with pytest.raises(SimrlError, match="unknown reality 'openarm-tset'.*did you mean 'openarm-test'"):
        load_reality("openarm-tset", openarm, seed=0)


def test_mit_law_settles_on_a_target(openarm: Robot) -> None:
    """kp 50, kd 2 toward a target 0.2 rad away: within 0.01 rad (2 mm at the 0.2 m the gripper reaches) in 1 s."""
    plant = _plant(openarm, load_reality("none", openarm, seed=0))
    home = _hold_home(plant)
    target = home[WRIST_ROLL] + 0.2
    plant.set_command(WRIST_ROLL, target, 0.0, 50.0, 2.0, 0.0)
    plant.advance(1.0)
    assert abs(_arm(plant)[WRIST_ROLL] - target) < 0.01
    assert plant.time == pytest.approx(1.0)


def test_a_disabled_motor_lets_its_joint_fall(openarm: Robot) -> None:
    elbow = 3
    held, free = (_plant(openarm, load_reality("none", openarm, seed=0)) for _ in range(2))
    home = _hold_home(held)
    _hold_home(free)
    free.set_enabled(elbow, False)
    for plant in (held, free):
        plant.advance(0.5)
    assert abs(_arm(held)[elbow] - home[elbow]) < 0.05
    assert _arm(free)[elbow] < home[elbow] - 0.3  # the forearm swings down (joint4 + bends it up, ROBOTS.md)
    assert free.sample(elbow).torque == 0.0


def test_a_heavier_arm_sags_more_under_the_same_gains(tmp_path: Path, openarm: Robot) -> None:
    soft_kp, soft_kd = [60.0] * 4 + [10.0] * 3, [2.0] * 4 + [0.3] * 3
    sags = []
    for reality in (load_reality("none", openarm, 0), _reality(tmp_path, openarm, "link_mass: {distribution: fixed, value: 1.5}")):
        plant = _plant(openarm, reality)
        home = _hold_home(plant, soft_kp, soft_kd)
        plant.advance(1.0)
        sags.append(np.abs(_arm(plant) - home)[:4].sum())
    assert sags[1] > 1.3 * sags[0] > 0.01


def _torque_onset(plant: RealityPlant, motor: int, max_s: float = 0.1) -> float:
    """Sim seconds from now until the motor applies a torque above 1 N·m (stepping one substep at a time)."""
    start, dt = plant.time, plant.model.opt.timestep
    while plant.time - start < max_s:
        plant.advance(dt)
        if abs(plant.sample(motor).torque) > 1.0:
            return plant.time - start
    raise AssertionError("no torque onset")


def test_command_latency_delays_the_response_by_one_control_step(tmp_path: Path, openarm: Robot) -> None:
    onsets = []
    for reality in (load_reality("none", openarm, 0), _reality(tmp_path, openarm, "latency_steps: {distribution: fixed, value: 1}")):
        plant = _plant(openarm, reality)
        plant.set_enabled(WRIST_ROLL, True)
        plant.set_command(WRIST_ROLL, 0.0, 0.0, 0.0, 0.0, 3.0)  # a torque step
        onsets.append(_torque_onset(plant, WRIST_ROLL))
    assert onsets[1] - onsets[0] == pytest.approx(openarm.config.control_dt, abs=1e-9)


def test_torque_clamps_at_the_motor_limit_times_the_force_limit_scale(tmp_path: Path, openarm: Robot) -> None:
    for reality, limit in ((load_reality("none", openarm, 0), 7.0), (load_reality("openarm-test", openarm, 0), 6.3)):
        plant = _plant(openarm, reality)
        home = _hold_home(plant)
        plant.set_command(WRIST_ROLL, home[WRIST_ROLL] + 1.0, 0.0, 500.0, 0.0, 0.0)  # asks for 500 N·m
        plant.advance(reality.command_latency + 0.005)
        assert plant.applied_torque[WRIST_ROLL] == pytest.approx(limit)
        assert plant.sample(WRIST_ROLL).torque == pytest.approx(7.0)  # the firmware reports its rated limit: it cannot see the weakness


def test_the_reported_torque_is_what_the_firmware_believes_before_the_realitys_gain_errors(tmp_path: Path, openarm: Robot) -> None:
    """A motor's torque is kt x its measured current: the MIT law with the commanded gains, blind to a kp / kv / kt error."""
    reality = _reality(tmp_path, openarm, "actuator_kp: {distribution: fixed, value: 0.5}\nactuator_kv: {distribution: fixed, value: 2.0}")
    plant = _plant(openarm, reality)
    home = _hold_home(plant)
    kp, kd = 20.0, 0.5
    plant.set_command(WRIST_ROLL, home[WRIST_ROLL] + 0.1, 0.0, kp, kd, 0.0)
    dt = plant.model.opt.timestep
    plant.advance(20 * dt)  # moving: both the kp and the kd term are non-zero
    q, dq = _arm(plant)[WRIST_ROLL], plant.qvel[plant.robot.arm_dof_adr][WRIST_ROLL]
    plant.advance(dt)  # one substep whose torques come from exactly (q, dq)
    error, rate = home[WRIST_ROLL] + 0.1 - q, -dq
    assert abs(kd * rate) > 1e-3 and abs(kp * error) > 0.1
    assert plant.sample(WRIST_ROLL).torque == pytest.approx(kp * error + kd * rate, rel=1e-9)
    assert plant.applied_torque[WRIST_ROLL] == pytest.approx(0.5 * kp * error + 2.0 * kd * rate, rel=1e-9)


def test_encoder_resolution_quantizes_the_position(tmp_path: Path, openarm: Robot) -> None:
    reality = _reality(tmp_path, openarm, f"encoder_resolution: {{distribution: fixed, value: {2 * np.pi / 16384}}}")  # 14 bits
    step = float(reality.joint_values("encoder_resolution")[0])  # as drawn: float32, like training's
    assert step == pytest.approx(2 * np.pi / 16384)
    plant = _plant(openarm, reality)
    plant.advance(0.1)  # disabled: the arm moves, so the positions are arbitrary
    for motor in range(plant.num_motors):
        ticks = plant.sample(motor).position / step
        assert ticks == pytest.approx(round(ticks), abs=1e-6)
        assert abs(plant.sample(motor).position - _arm(plant)[motor]) <= step / 2 + 1e-12


def test_replies_drop_at_the_drop_rate_and_a_silenced_motor_never_answers(tmp_path: Path, openarm: Robot) -> None:
    plant = _plant(openarm, _reality(tmp_path, openarm, "reply_drop_rate: {distribution: fixed, value: 0.3}"))
    dropped = sum(plant.drops_reply(0) for _ in range(2000))
    assert abs(dropped - 600) < 5 * np.sqrt(2000 * 0.3 * 0.7)  # binomial(2000, 0.3): mean 600, std 20.5
    plant.silence(1)
    assert all(plant.drops_reply(1) for _ in range(100))
    plant.silence(1, False)
    assert not all(plant.drops_reply(1) for _ in range(100))


def test_a_drop_rate_above_one_is_refused(tmp_path: Path, openarm: Robot) -> None:
    with pytest.raises(SimrlError, match="reply_drop_rate.*a probability must be at most 1, got high = 1.5"):
        _reality(tmp_path, openarm, "reply_drop_rate: {distribution: uniform, low: 0.0, high: 1.5}")


def test_advance_is_deterministic_for_a_seed(openarm: Robot) -> None:
    runs = []
    for _ in range(2):
        plant = _plant(openarm, load_reality("strong", openarm, seed=3))
        _hold_home(plant)
        for seconds in (0.013, 0.2, 0.0011, 0.3):  # uneven slices: the remainder carries over
            plant.advance(seconds)
        runs.append((plant.time, plant.qpos, [plant.sample(m) for m in range(plant.num_motors)]))
    assert runs[0][0] == runs[1][0] == pytest.approx(0.5125)  # 0.5141 s holds 205 whole substeps of 2.5 ms
    assert np.array_equal(runs[0][1], runs[1][1]) and runs[0][2] == runs[1][2]


def test_the_stepper_keeps_sim_time_level_with_the_wall_clock(openarm: Robot) -> None:
    plant = _plant(openarm, load_reality("none", openarm, 0))
    start = time.monotonic()
    with RealTimeStepper(plant):
        _hold_home(plant)  # setters work while the thread steps
        time.sleep(0.3)
    elapsed = time.monotonic() - start
    assert 0.15 < plant.time <= elapsed + plant.model.opt.timestep  # never ahead of the clock; behind by a slice or a busy CPU


def test_motor_joints_must_be_actuated_joints(openarm: Robot) -> None:
    reality = load_reality("none", openarm, 0)
    with pytest.raises(SimrlError, match="motor 1: joint 'joint9' is not an actuated joint of openarm"):
        RealityPlant(openarm, reality, ["joint1", "joint9"], [40.0, 40.0])


def test_the_sysid_reality_describes_exactly_what_it_changes(openarm: Robot) -> None:
    """deploy/realities/openarm-sysid.yaml: damping x1.8 on joints 1-4 only, friction x1.5 and kp x0.7 on every arm joint, 30 ms, 1 mrad."""
    report = load_reality("openarm-sysid", openarm, seed=0).describe()
    assert set(report) == {"reality", "seed", "joint_damping", "joint_frictionloss", "kp_scale", "command_latency_s", "obs_joint_pos_noise"}
    arm = list(openarm.config.arm_joints)
    dofs = openarm.model.jnt_dofadr[openarm.arm_joint_ids]
    assert list(report["joint_damping"]) == arm[:4]  # the wrist keeps its nominal damping
    for joint, dof in zip(arm[:4], dofs[:4]):
        assert report["joint_damping"][joint] == {"nominal": pytest.approx(openarm.model.dof_damping[dof]), "reality": pytest.approx(1.8 * openarm.model.dof_damping[dof])}
    assert list(report["joint_frictionloss"]) == arm
    for joint, dof in zip(arm, dofs):
        assert report["joint_frictionloss"][joint]["reality"] == pytest.approx(1.5 * openarm.model.dof_frictionloss[dof])
    assert report["kp_scale"] == {joint: {"nominal": 1.0, "reality": pytest.approx(0.7)} for joint in arm}
    assert report["command_latency_s"] == pytest.approx(0.03)  # 1.5 periods at 50 Hz
    assert report["obs_joint_pos_noise"] == {"distribution": "normal 0 ± 0.001, per step", "joints": arm}
