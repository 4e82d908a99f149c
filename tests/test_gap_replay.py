"""The replay model against the emulated arm: same commands, same motion, to rounding; and the model is training's."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest

from tests.gap_logs import OPENARM_KD, OPENARM_KP, SO101_KD, SO101_KP, write_reality, write_synthetic_log
from simrl.deploy.buses.settings import SERVO
from simrl.deploy.excitation import Schedule
from simrl.gap.recording import read_recording
from simrl.gap.replay import Replayer
from simrl.gap.replay_model import MotorValues, build_replay_model
from simrl.robots import Robot, load_robot


@pytest.fixture(scope="module")
def openarm() -> Robot:
    return load_robot("openarm")


def truth_values(replay, damping: float, friction: float, kp: float, joints_damped: int = 4, cap: float = 1.0) -> MotorValues:
    """The nominal values with damping scaled on the first ``joints_damped`` joints, friction, kp and the torque cap on the arm's."""
    nominal = MotorValues.nominal(replay)
    arm = slice(0, len(replay.robot.config.arm_joints))
    damping_values = nominal.damping.copy()
    damping_values[:joints_damped] *= damping
    friction_values = nominal.frictionloss.copy()
    friction_values[arm] *= friction
    kp_scale = nominal.kp_scale.copy()
    kp_scale[arm] = kp
    torque_limit = nominal.torque_limit.copy()
    torque_limit[arm] *= cap
    return MotorValues(damping_values, friction_values, nominal.armature, kp_scale, nominal.kv_scale, torque_limit)


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


@pytest.fixture(scope="module")
def so101() -> Robot:
    return load_robot("so101")


def test_a_servo_is_replayed_with_the_models_gains_not_the_logs_zeros(tmp_path: Path, so101: Robot) -> None:
    """The SO-101's servos take only goals (the log says kp = kd = 0); the replay runs their loop at the MJCF servo's
    kp 998 N·m/rad, kv 2.73 N·m·s/rad (ROBOTS.md, the public SO-101 model). By hand: shoulder_pan turns about the
    vertical, so no gravity acts on it; a 0.02 rad step saturates the servo (998 x 0.02 = 20 N·m > 3.35 N·m), which
    then settles on the goal (kp 998 against inertia ~0.03-0.05 kg m², about 150 rad/s, well damped) to within its
    friction over its stiffness, 0.052 / 998 = 0.05 mrad, long before 1.5 s. Read as an impedance motor with the
    logged 0 gains it would not move toward the goal at all."""
    joints = list(so101.config.arm_joints) + list(so101.config.gripper_joints)
    home = np.array([so101.home_qpos[so101.model.joint(j).qposadr[0]] for j in joints])
    position = np.tile(home, (100, 1))
    position[25:, 0] += 0.02  # shoulder_pan, at 0.5 s
    zeros = np.zeros_like(position)
    step = Schedule(position=position, kp=zeros, kd=zeros, group=np.zeros(100, int), description={"signal": "step"})
    write_synthetic_log(tmp_path / "step.npz", so101, "none", SO101_KP, SO101_KD, law=SERVO, schedule=step)
    recording = read_recording(tmp_path / "step.npz", so101)
    servo = build_replay_model(so101, recording.joints, recording.laws)
    np.testing.assert_allclose(servo.gains(recording.command_kp[:1], recording.command_kd[:1]), [[[998.0] * 6], [[2.73] * 6]])
    limp = build_replay_model(so101, recording.joints)  # every motor an impedance motor: the logged gains, 0
    final = []
    for replay in (servo, limp):
        with Replayer(replay, recording) as replayer:
            predicted = replayer.predict([replay.with_values(MotorValues.nominal(replay))], [0.0]).position[0]
        final.append(predicted[-1, 0])
    goal = home[0] + 0.02
    assert abs(final[0] - goal) < 1e-4
    assert abs(final[1] - home[0]) < 1e-3 and abs(final[1] - goal) > 0.019


def test_replaying_a_servo_arms_log_with_the_realitys_values_reproduces_it(tmp_path: Path, so101: Robot) -> None:
    """deploy/realities/so101-sysid.yaml without its encoder noise: softer, weaker servos (kp x0.8, cap x0.85), damping
    x1.8 on the three base joints, friction x1.5, 30 ms latency; the servos' own loop at the model's gains."""
    truth = tmp_path / "truth.yaml"
    truth.write_text(
        "joint_frictionloss: {distribution: fixed, value: 1.5}\nactuator_kp: {distribution: fixed, value: 0.8}\n"
        "actuator_force_limit: {distribution: fixed, value: 0.85}\nlatency_steps: {distribution: fixed, value: 1}\n"
        "latency_substeps: {distribution: fixed, value: 0.5}\n"
        "joint_damping: {distribution: fixed, value: 1.8, joints: [shoulder_pan, shoulder_lift, elbow_flex]}\n"
    )
    write_synthetic_log(tmp_path / "log.npz", so101, str(truth), SO101_KP, SO101_KD, duration=4.0, law=SERVO)
    recording = read_recording(tmp_path / "log.npz", so101)
    replay = build_replay_model(so101, recording.joints, recording.laws)
    real = truth_values(replay, 1.8, 1.5, 0.8, joints_damped=3, cap=0.85)
    arm = slice(0, 5)
    with Replayer(replay, recording) as replayer:
        measured, _ = replayer.measured()
        # the synthetic log stamps each command 0.4 ms after the reading the plant's clock saw it at
        predicted = replayer.predict([replay.with_values(real), replay.with_values(MotorValues.nominal(replay))], [0.030 - 0.0004, 0.0]).position
    assert np.abs(predicted[0][:, arm] - measured[:, arm]).max() < 1e-6
    assert np.abs(predicted[1][:, arm] - measured[:, arm]).max() > 0.02
