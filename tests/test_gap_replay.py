"""The replay model against the emulated arm: same commands, same motion, to rounding; and the model is training's."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest

from tests.gap_logs import OPENARM_KD, OPENARM_KP, write_reality, write_synthetic_log
from simrl.gap.recording import read_recording
from simrl.gap.replay import Replayer
from simrl.gap.replay_model import MotorValues, build_replay_model
from simrl.robots import Robot, load_robot


@pytest.fixture(scope="module")
def openarm() -> Robot:
    return load_robot("openarm")


def truth_values(replay, damping: float, friction: float, kp: float, joints_damped: int = 4) -> MotorValues:
    nominal = MotorValues.nominal(replay)
    arm = slice(0, 7)
    damping_values = nominal.damping.copy()
    damping_values[:joints_damped] *= damping
    friction_values = nominal.frictionloss.copy()
    friction_values[arm] *= friction
    kp_scale = nominal.kp_scale.copy()
    kp_scale[arm] = kp
    return MotorValues(damping_values, friction_values, nominal.armature, kp_scale, nominal.kv_scale, nominal.torque_limit)


def test_the_replay_model_keeps_the_training_models_options_and_bodies(openarm: Robot) -> None:
    replay = build_replay_model(openarm, list(openarm.config.arm_joints) + list(openarm.config.gripper_joints))
    trained, rebuilt = openarm.model.opt, replay.model.opt
    for field in ("timestep", "integrator", "cone", "solver", "iterations", "ls_iterations", "tolerance", "impratio", "gravity"):
        assert np.all(getattr(rebuilt, field) == getattr(trained, field)), field
    assert replay.model.nbody == openarm.model.nbody and np.allclose(replay.model.body_mass, openarm.model.body_mass)
    assert np.allclose(replay.model.dof_damping, openarm.model.dof_damping)
    assert replay.model.nu == 3 * len(replay.joints)


@pytest.mark.parametrize("latency_steps, latency_substeps", [(0, 0.0), (1, 0.5)])
def test_replaying_a_log_with_the_realitys_values_reproduces_the_emulated_arm(
    tmp_path: Path, openarm: Robot, latency_steps: int, latency_substeps: float
) -> None:
    reality = write_reality(tmp_path / "truth.yaml", noise=0.0, latency_steps=latency_steps, latency_substeps=latency_substeps)
    write_synthetic_log(tmp_path / "log.npz", openarm, reality, OPENARM_KP, OPENARM_KD, duration=4.0)
    recording = read_recording(tmp_path / "log.npz", openarm)
    replay = build_replay_model(openarm, recording.joints)
    latency = (latency_steps + latency_substeps) * openarm.config.control_dt
    with Replayer(replay, recording) as replayer:
        measured, _ = replayer.measured()
        predicted = replayer.predict(
            [replay.with_values(truth_values(replay, 1.8, 1.5, 0.7)), replay.with_values(MotorValues.nominal(replay))],
            # the synthetic log stamps each command INFERENCE_S after the reading the plant's clock saw it at
            [latency - 0.0004, 0.0],
        ).position
    arm = slice(0, 7)
    assert np.abs(predicted[0][:, arm] - measured[:, arm]).max() < 1e-6  # the same physics, bit for bit up to rounding
    assert np.abs(predicted[1][:, arm] - measured[:, arm]).max() > 0.02  # the nominal arm is visibly another arm


def test_a_latency_between_physics_steps_moves_the_replay_continuously(tmp_path: Path, openarm: Robot) -> None:
    reality = write_reality(tmp_path / "truth.yaml", noise=0.0)
    write_synthetic_log(tmp_path / "log.npz", openarm, reality, OPENARM_KP, OPENARM_KD, duration=3.0)
    recording = read_recording(tmp_path / "log.npz", openarm)
    replay = build_replay_model(openarm, recording.joints)
    model = replay.with_values(MotorValues.nominal(replay))
    dt = replay.model.opt.timestep
    latencies = [0.010, 0.010 + 0.25 * dt, 0.010 + 0.5 * dt, 0.010 + dt]
    with Replayer(replay, recording) as replayer:
        q = replayer.predict([model] * len(latencies), latencies).position
    steps = [np.abs(q[i + 1] - q[i]).max() for i in range(3)]
    assert all(step > 0 for step in steps)  # no staircase: a quarter step of latency changes the motion
    assert max(steps) < 3 * min(steps)  # ... by about the same amount each quarter


def test_a_follower_joint_starts_where_its_equality_puts_it(openarm: Robot) -> None:
    replay = build_replay_model(openarm, ["joint1", "finger_joint1"])
    state = replay.initial_state(np.array([0.3, -0.6]), np.array([0.0, 0.2]))
    data = mujoco.MjData(replay.model)
    mujoco.mj_setState(replay.model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    follower = replay.model.joint("finger_joint2")
    assert data.qpos[follower.qposadr[0]] == pytest.approx(-0.6)
    assert data.qvel[follower.dofadr[0]] == pytest.approx(0.2)
