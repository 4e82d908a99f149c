"""Deploy logs made fast for the gap checker's tests: the emulated arm stepped in simulated time.

``simrl deploy --emulate`` runs the arm in real time; a 30 s excitation takes
30 s. Here the same ``RealityPlant`` (the arm under a drawn reality, MIT law per
substep, command latency, encoder noise) is driven tick by tick without a wall
clock, and the rows go into a deploy log exactly as the bridge writes them
(``DeployLog``, the current format): read at the deadline, command out right after.
The motors are impedance motors (the OpenArm's Damiao: the log's gains act) or
position servos (the SO-101's STS3215: their own loop's gains act, the log
records kp = kd = 0, as ``simrl deploy`` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simrl.deploy.buses.settings import IMPEDANCE, SERVO
from simrl.deploy.emulation.emulated_arm import motor_torque_limits
from simrl.deploy.excitation import Schedule
from simrl.deploy.log import DeployLog, Tick
from simrl.deploy.emulation.reality import RealityPlant, load_reality
from simrl.robots import Robot

INFERENCE_S = 0.0004  # from the reading to the command leaving
# deploy/openarm.yaml's MIT gains (the MJCF servo's): joint1-7 then the gripper.
OPENARM_KP = np.array([230, 230, 190, 190, 30, 30, 30, 30.0])
OPENARM_KD = np.array([2.7, 2.7, 2.2, 2.2, 1.5, 1.5, 1.5, 0.2])
# The SO-101's servo loop at LeRobot's P 16 / D 32, which is the MJCF servo (robots/so101/robot.xml and ROBOTS.md:
# kp 998 N·m/rad, kv 2.73 N·m·s/rad; simrl/deploy/emulation/feetech_firmware.py KP_PER_P, KD_PER_D), all six servos.
SO101_KP = np.full(6, 998.0)
SO101_KD = np.full(6, 2.73)


def write_reality(path: Path, noise: float = 0.001, latency_steps: int = 1, latency_substeps: float = 0.5) -> Path:
    """The openarm-sysid truth (damping x1.8 on joints 1-4, friction x1.5, kp x0.7) with a chosen latency and encoder noise."""
    lines = [
        "joint_damping: {distribution: fixed, value: 1.8, joints: [joint1, joint2, joint3, joint4]}",
        "joint_frictionloss: {distribution: fixed, value: 1.5}",
        "actuator_kp: {distribution: fixed, value: 0.7}",
        f"latency_steps: {{distribution: fixed, value: {latency_steps}}}",
        f"latency_substeps: {{distribution: fixed, value: {latency_substeps}}}",
    ]
    if noise:
        lines.append(f"obs_joint_pos_noise: {{distribution: normal, mean: 0.0, std: {noise}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def excitation_targets(robot: Robot, joints: list[str], period: float, duration: float, seed: int) -> tuple[np.ndarray, ...]:
    """A small excitation: each arm joint in turn moves (sines of two amplitudes, a ramp, steps) at two kp and two kd levels.

    Returns targets, kp factors and kd factors per tick (T, n_motors) (a servo takes the targets only).
    """
    rng = np.random.default_rng(seed)
    n_ticks = int(round(duration / period))
    home = np.array([robot.home_qpos[robot.model.joint(j).qposadr[0]] for j in joints])
    targets = np.tile(home, (n_ticks, 1))
    kp_factor, kd_factor = np.ones((n_ticks, len(joints))), np.ones((n_ticks, len(joints)))
    arm = [i for i, j in enumerate(joints) if j in robot.config.arm_joints]
    per_joint = n_ticks // len(arm)
    for slot, motor in enumerate(arm):
        t = np.arange(per_joint) * period
        length = per_joint * period
        fade = np.clip(np.minimum(t, length - t) / 0.3, 0.0, 1.0)
        phase = rng.uniform(0, 2 * np.pi, 3)
        amplitude = np.where(t < length / 2, 0.08, 0.2)
        wave = amplitude * (np.sin(2 * np.pi * 0.7 * t + phase[0]) + 0.5 * np.sin(2 * np.pi * 2.3 * t + phase[1]))
        steps = 0.05 * np.sign(np.sin(2 * np.pi * 0.9 * t + phase[2]))
        rows = slice(slot * per_joint, (slot + 1) * per_joint)
        low, high = robot.model.jnt_range[robot.model.joint(joints[motor]).id]
        targets[rows, motor] = np.clip(home[motor] + fade * (wave + steps), low + 0.05, high - 0.05)
        quarter = (t // (length / 4)).astype(int)
        kp_factor[rows, motor] = np.where(quarter % 2 == 0, 1.0, 0.6)
        kd_factor[rows, motor] = np.where(quarter < 2, 1.0, 2.0)
    return targets, kp_factor, kd_factor


def write_synthetic_log(
    path: Path,
    robot: Robot,
    reality: str,
    kp: np.ndarray,
    kd: np.ndarray,
    duration: float = 8.0,
    seed: int = 0,
    reality_seed: int = 0,
    period: float = 0.02,
    law: str = IMPEDANCE,
    schedule: Schedule | None = None,
) -> dict:
    """Drive the emulated arm through an excitation in simulated time and write a deploy log; returns the truth.

    ``law`` SERVO: every motor is a position servo whose own loop runs ``kp`` /
    ``kd`` at one level (the reality's gain scales act on them as on an MIT
    motor's, as in the Feetech emulator), and the log says so and records the
    0, 0 the bridge sends. ``schedule``: play this one (``simrl deploy
    --excite``'s, its description in the log) instead of ``excitation_targets``.
    """
    joints = list(robot.config.arm_joints) + list(robot.config.gripper_joints)
    drawn = load_reality(reality, robot, reality_seed)
    plant = RealityPlant(robot, drawn, joints, motor_torque_limits(robot, joints))
    if schedule is None:
        targets, kp_factor, kd_factor = excitation_targets(robot, joints, period, duration, seed)
        excitation = {"signal": "test"}
    else:
        targets, kp_factor, kd_factor = schedule.position, schedule.kp / kp, schedule.kd / kd
        excitation = schedule.description
    for motor in range(len(joints)):
        plant.set_enabled(motor, True)
    log = DeployLog(tuple(joints), obs_size=1, action_size=1)
    log.meta.update(
        robot=robot.name, rate_hz=1.0 / period, policy_metadata=None, reality=drawn.describe(), excitation=excitation,
        control_law={joint: law for joint in joints},
    )
    n = len(joints)
    servo = law == SERVO
    for k in range(len(targets)):
        t = k * period
        samples = [plant.sample(m) for m in range(n)]
        acting_kp, acting_kd = (kp, kd) if servo else (kp * kp_factor[k], kd * kd_factor[k])
        for m in range(n):
            plant.set_command(m, targets[k, m], 0.0, acting_kp[m], acting_kd[m], 0.0)
        command_kp, command_kd = (np.zeros(n), np.zeros(n)) if servo else (acting_kp, acting_kd)
        log.add(
            Tick(
                t_deadline=t, t_read_send=t - 0.0002, t_read=t + 0.0002, t_inference=np.nan, t_command=t + INFERENCE_S,
                t_done=t + INFERENCE_S + 0.0004, phase=3, goal=-1, overrun=0, safety=0,
                command_position=targets[k].copy(), command_kp=command_kp, command_kd=command_kd, command_effort=np.ones(n), command_fresh=np.ones(n, bool),
                position=np.array([s.position for s in samples]), velocity=np.array([s.velocity for s in samples]),
                torque=np.array([s.torque for s in samples]), fresh=np.ones(n, bool), enabled=np.ones(n, bool), fault=("",) * n,
                observation=np.full(1, np.nan, np.float32), action=np.full(1, np.nan, np.float32),
            )
        )
        plant.advance(period)
    log.write(path)
    return drawn.describe()
