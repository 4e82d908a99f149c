"""`simrl deploy` / `simrl emulate`: the bridge's checks, safety, fault handling, log, and its parity with the env.

Policies here are tiny hand-made ONNX graphs (a constant action, or NaN) with
the metadata `simrl export` writes, so no training is needed; the trained
end-to-end run is tests/test_deploy_arm_e2e.py (slow).
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import can
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from simrl.deploy import session
from simrl.deploy.bridge import Bridge, BridgeOutcome, LoopSettings, observe
from simrl.deploy.buses.base import BusError, MotorBus, MotorCommand, MotorReadings
from simrl.deploy.buses.sim import SimBus
from simrl.deploy.calibration import Calibration
from simrl.deploy.clock import Clock, LockstepClock
from simrl.deploy.config import load_deploy_config
from simrl.deploy.emulation.emulated_arm import EmulatedArm, motor_torque_limits
from simrl.deploy.goals import GoalSpec
from simrl.deploy.log import FORMAT_VERSION, PHASE_HOME, PHASE_POLICY, PHASE_SHUTDOWN, DeployLog, read_log
from simrl.deploy.metadata import encode_metadata, task_metadata
from simrl.deploy.policy_runtime import PolicyRuntime
from simrl.deploy.emulation.reality import RealityPlant, load_reality
from simrl.deploy.report import timing
from simrl.deploy.safety import SafetyEvent
from simrl.deploy.session import DeployRequest, Plan, prepare, run_deploy
from simrl.deploy.stop import StopRequest
from simrl.errors import SimrlError
from simrl.robots import Robot, load_robot
from simrl.tasks.reach import ReachState, ReachTask, load_reach_config
from tests.cli import assert_one_line_error, run_simrl, simrl_command

# Short phases so a run is a few dozen ticks: settle 0.1 s, hold 0.04 s, effort ramp 0.1 s.
FAST = {"startup.settle_s": 0.1, "shutdown.hold_s": 0.04, "shutdown.effort_ramp_s": 0.1}
TIMEOUT = 60.0  # generous: the test machine is shared; a passing test never waits this long


@pytest.fixture(scope="module")
def openarm() -> Robot:
    return load_robot("openarm")


def write_policy(path: Path, robot: Robot, action: float, changes: dict[str, Any] | None = None) -> Path:
    """An ONNX policy whose action is ``action`` on every joint whatever it observes (obs @ 0 + action), metadata ``changes`` applied."""
    meta = {**task_metadata(robot, ReachTask.for_robot(robot, load_reach_config()), "reach"), **(changes or {})}
    n_obs, n_act = meta["obs_size"], meta["action_size"]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["obs", "w"], ["product"]),
            helper.make_node("Add", ["product", "b"], ["action"]),
        ],
        "constant_policy",
        inputs=[helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", n_obs])],
        outputs=[helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", n_act])],
        initializer=[
            numpy_helper.from_array(np.zeros((n_obs, n_act), np.float32), "w"),
            numpy_helper.from_array(np.full(n_act, action, np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, encode_metadata(meta))
    path.write_bytes(model.SerializeToString())
    return path


def fast_request(policy: Path, ticks: int = 8, goals: int = 1, **fields: Any) -> DeployRequest:
    overrides = {**FAST, **fields.pop("overrides", {})}
    return DeployRequest(robot="openarm", policy=policy, goals=GoalSpec(random=goals, seed=0), duration=ticks * 0.02, overrides=overrides, **fields)


def sim_run(
    plan: Plan, reality: str = "none", wrap: Callable[[SimBus], MotorBus] = lambda bus: bus, clock: Clock | None = None
) -> tuple[BridgeOutcome, dict[str, np.ndarray], DeployLog]:
    """The bridge on a lockstep ``SimBus`` (the arm starts at home, motors off) under ``reality``."""
    joints = [m.joint for m in plan.config.motors]
    plant = RealityPlant(plan.robot, load_reality(reality, plan.robot, 0), joints, motor_torque_limits(plan.robot, joints))
    log = plan.new_log()
    bus = wrap(SimBus(plant, tuple(joints), plan.config.period))
    outcome = plan.drive(bus, clock or LockstepClock(), log, StopRequest())
    return outcome, log.arrays(), log


def events(meta_or_log: dict[str, Any] | DeployLog) -> list[str]:
    entries = meta_or_log.events if isinstance(meta_or_log, DeployLog) else meta_or_log["events"]
    return [e["event"] for e in entries]


# ---------------------------------------------------------------- policy and config checks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"robot": "so101"}, "policy robot so101 does not match the arm's openarm; refusing to deploy"),
        ({"control_dt": 0.05}, "policy control_dt 0.05 does not match the arm's 0.02; refusing to deploy"),
        (
            {"arm_joints": ["joint2", "joint1", "joint3", "joint4", "joint5", "joint6", "joint7"]},
            "policy arm_joints ['joint2', 'joint1', 'joint3', 'joint4', 'joint5', 'joint6', 'joint7'] does not match the arm's ['joint1', 'joint2'",
        ),
        ({"action_space": "ee_delta"}, "policy action_scale 0.08 does not match the arm's 0.02"),
    ],
)
def test_a_policy_for_another_arm_is_refused_in_one_line(tmp_path: Path, openarm: Robot, change: dict, message: str) -> None:
    policy = PolicyRuntime(write_policy(tmp_path / "policy.onnx", openarm, 0.0, change))
    with pytest.raises(SimrlError) as error:
        policy.task_for(openarm, load_reach_config())
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_cli_refuses_a_mismatched_policy_before_touching_a_bus(tmp_path: Path, openarm: Robot) -> None:
    policy = write_policy(tmp_path / "policy.onnx", openarm, 0.0, {"robot": "so101"})
    result = run_simrl("deploy", "--robot", "openarm", "--policy", str(policy), "--goal", "0.2,-0.15,0.4", "--log", str(tmp_path / "log.npz"))
    assert_one_line_error(result, "policy robot so101 does not match the arm's openarm; refusing to deploy")
    assert not (tmp_path / "log.npz").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("max_step_rad:", "max_stepp_rad:"), "unknown field 'safety.max_stepp_rad'; did you mean 'max_step_rad'?"),
        (("model: DM4340", "model: DM434"), "field 'motors.2.model' = 'DM434': unknown model (did you mean 'DM4340'?); allowed: DM4310, DM4340, DM8009"),
        (("joint: joint4,", "joint: jiont4,"), "field 'motors.3.joint' = 'jiont4' is not an actuated joint of openarm; did you mean 'joint4'?"),
        (("joint6: [-0.7854, 0.7854]", "joint6: [-0.7854, 0.9]"), "field 'joint_limits.joint6' = [-0.7854, 0.9] is outside the joint's range; allowed: within [-0.7854, 0.7854]"),
        (("kp: 230", "kp: 900"), "field 'motors.0.kp' = 900: Input should be less than or equal to 500"),
        (("effort_ramp_s: 1.0", "gain_ramp_s: 1.0"), "field 'shutdown.gain_ramp_s' = 1.0 is now 'shutdown.effort_ramp_s'"),
        (("rest: {}", "rest: {joint4: 3.0}"), "field 'shutdown.rest.joint4' = 3.0 is outside the joint limits; allowed: [0, 2.4435]"),
        (("kind: damiao", "kind: damio"), "field 'bus.kind' = 'damio': unknown kind (did you mean 'damiao'?); allowed: damiao, feetech, dynamixel"),
        (("  kind: damiao\n", ""), "missing required field 'bus.kind'"),
        (("channel: can0", "chanel: can0"), "unknown field 'bus.chanel'; did you mean 'channel'? (allowed: bitrate, channel, data_bitrate, fd, host, interface, kind, port, reply_timeout_s, retries, setup_timeout_s)"),
        (("data_bitrate: 5000000", "data_bitrate: 8000000"), "field 'bus.data_bitrate' = 8000000: not a CAN FD data rate of Damiao motors; allowed: 2000000, 2500000, 3200000, 4000000, 5000000"),
        (("fd: true", "fd: maybe"), "field 'bus.fd' = 'maybe': Input should be a valid boolean"),
        (
            ("interface: socketcan ", "interface: socketcand"),
            "field 'bus.fd' = True: interface 'socketcand' carries classic CAN frames only (no FD flags, at most 8 data bytes); allowed with it: false (flag --no-fd)",
        ),
        (("kp: 190,", "kpp: 190,"), "unknown field 'motors.2.kpp'; did you mean 'kp'? (allowed: can_id, joint, kd, kp, master_id, model, offset, sign)"),
        (("can_id: 0x04", "can_id: 0x03"), "field 'motors.3.can_id' = 3 repeats motors.2; allowed: one motor per can_id"),
        (("rest: {}", "rest: {jiont4: 1.0}"), "field 'shutdown.rest.jiont4' = 'jiont4' is not a joint with a motor; did you mean 'joint4'?"),
    ],
)
def test_deploy_config_errors_name_file_field_value_and_what_is_allowed(tmp_path: Path, openarm: Robot, edit: tuple[str, str], message: str) -> None:
    text = (Path(__file__).parents[1] / "deploy" / "openarm.yaml").read_text()
    assert edit[0] in text
    path = tmp_path / "openarm.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(SimrlError) as error:
        load_deploy_config(openarm, path)
    assert str(error.value) == f"{path}: {message}" or (str(error.value).startswith(f"{path}: {message}") and "\n" not in str(error.value))


def test_goals_outside_the_workspace_are_refused(tmp_path: Path, openarm: Robot) -> None:
    policy = write_policy(tmp_path / "policy.onnx", openarm, 0.0)
    with pytest.raises(SimrlError, match=r"--goal: goal 0 \(0.9, -0.15, 0.4\) is outside the goal workspace; allowed: within \[0.12, -0.265, 0.33\]"):
        prepare(DeployRequest(robot="openarm", policy=policy, goals=GoalSpec(goal="0.9,-0.15,0.4")))
    with pytest.raises(SimrlError, match="give one of --goal, --goals, --random-goals, not --goal and --random-goals"):
        prepare(DeployRequest(robot="openarm", policy=policy, goals=GoalSpec(goal="0.2,-0.15,0.4", random=3)))


# ---------------------------------------------------------------- same code as the env


def test_the_bridge_observation_and_targets_are_the_envs(tmp_path: Path, openarm: Robot) -> None:
    import jax  # the env side only; the bridge never imports it (test_deploy_imports_neither_jax_nor_torch)

    from simrl.envs import ReachEnv

    env = ReachEnv(openarm, num_envs=1, backend="cpu", auto_reset=False)
    task = PolicyRuntime(write_policy(tmp_path / "policy.onnx", openarm, 0.0)).task_for(openarm, load_reach_config())
    state = env.reset(jax.random.key(3))
    action = np.linspace(-1.0, 1.0, task.action_size, dtype=np.float32)
    for _ in range(3):  # the start of an episode, then states after real steps (velocities, last action, moved targets)
        qpos, qvel = np.asarray(state.physics.qpos[0]), np.asarray(state.physics.qvel[0])
        task_state = ReachState(*(np.asarray(x[0]) for x in state.task))
        bridge_obs = observe(task, qpos[openarm.arm_qpos_adr], qvel[openarm.arm_dof_adr], task_state)
        np.testing.assert_allclose(bridge_obs, np.asarray(state.obs[0]), rtol=0, atol=2e-6)  # float32 rounding of the FK
        assert bridge_obs.dtype == np.float32 and bridge_obs.shape == (task.observation_size,)
        state = env.step(state, action[None])
        np.testing.assert_allclose(task.next_target(np, action, task_state.target), np.asarray(state.task.target[0]), rtol=0, atol=1e-6)


def test_the_sim_bus_steps_the_arm_like_the_env(openarm: Robot) -> None:
    """Lockstep: the same targets through the sim bus (MIT law, reality 'none') and the env (MJCF servos) move the arm alike."""
    import jax

    from simrl.envs import ReachEnv

    still = load_reach_config().model_copy(update={"init_joint_noise": 0.0})  # both start at home, at rest
    env = ReachEnv(openarm, num_envs=1, backend="cpu", task_config=still, auto_reset=False)
    config = load_deploy_config(openarm)
    joints = [m.joint for m in config.motors]
    bus = SimBus(RealityPlant(openarm, load_reality("none", openarm, 0), joints, motor_torque_limits(openarm, joints)), tuple(joints), config.period)
    bus.open()
    bus.enable()
    kp, kd = np.array([m.kp for m in config.motors]), np.array([m.kd for m in config.motors])
    state = env.reset(jax.random.key(0))
    home = np.array([openarm.config.home[j] for j in joints])
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 7)).astype(np.float32)
    for action in actions:
        state = env.step(state, action[None])
        target = np.concatenate([np.asarray(state.task.target[0], np.float64), home[7:]])
        readings = bus.exchange(MotorCommand.hold(target, kp, kd))
        np.testing.assert_allclose(readings.position[:7], np.asarray(state.physics.qpos[0])[openarm.arm_qpos_adr], atol=1e-5)


def test_deploy_imports_neither_jax_nor_torch(tmp_path: Path, openarm: Robot) -> None:
    policy = write_policy(tmp_path / "policy.onnx", openarm, 0.2)
    args = ["deploy", "--robot", "openarm", "--policy", str(policy), "--emulate", "--goal", "0.2,-0.15,0.4", "--duration", "0.1", "--log", str(tmp_path / "log.npz")]
    code = (
        "import sys\nfrom simrl.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "loaded = [m for m in ('jax', 'torch', 'simrl.train', 'simrl.envs') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    _, meta = read_log(tmp_path / "log.npz")
    assert meta["summary"]["stop_reason"] == "completed" and meta["summary"]["policy_ticks"] == 6


@pytest.mark.parametrize(
    ("randomization", "warned"),
    [
        ({"randomization": {"name": "none", "content": {"description": "no randomization"}}}, True),
        ({"randomization": {"name": "default", "content": {"joint_damping": {"distribution": "uniform", "low": 0.5, "high": 2.0}}}}, False),
    ],
)
def test_deploy_warns_once_about_a_policy_trained_without_randomization(tmp_path: Path, openarm: Robot, randomization: dict, warned: bool) -> None:
    policy = write_policy(tmp_path / "policy.onnx", openarm, 0.0, randomization)
    args = ("deploy", "--robot", "openarm", "--policy", str(policy), "--emulate", "--goal", "0.2,-0.15,0.4", "--duration", "0.1", "--log", str(tmp_path / "log.npz"), "--json")
    result = run_simrl(*args, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    summary = json.loads(result.stdout)
    if warned:
        assert len(warnings) == 1 and "trained without domain randomization (profile 'none')" in warnings[0]
        assert summary["warnings"] == [warnings[0].removeprefix("warning: ")]
    else:
        assert warnings == [] and summary["warnings"] == []


# ---------------------------------------------------------------- safety on the sim bus


def test_a_nan_action_holds_the_targets_and_the_arm(tmp_path: Path, openarm: Robot) -> None:
    runs = {
        name: sim_run(prepare(fast_request(write_policy(tmp_path / f"{name}.onnx", openarm, action), ticks=10)))
        for name, action in (("nan", float("nan")), ("zero", 0.0), ("push", 0.5))
    }
    nan, zero, push = (runs[name][1] for name in ("nan", "zero", "push"))
    policy = nan["phase"] == PHASE_POLICY
    acted = policy & np.isfinite(nan["t_inference"])
    assert acted.sum() == 10 and np.isnan(nan["action"][acted]).all()
    assert (nan["safety"][acted] & SafetyEvent.NAN_ACTION).all()
    assert (nan["command_position"][policy] == nan["command_position"][policy][0]).all()  # held, not moved
    # A NaN action does exactly what "stay" does: same commands, same physics, same measurements.
    np.testing.assert_array_equal(nan["command_position"], zero["command_position"])
    np.testing.assert_array_equal(nan["position"], zero["position"])
    # ... while a real action moves the targets (0.5 x 0.08 rad per tick), so the test can tell the difference.
    moved = push["command_position"][push["phase"] == PHASE_POLICY]
    assert np.abs(moved[-1] - moved[0])[:7].max() > 0.3
    assert runs["nan"][0].stop_reason == "completed" and events(runs["nan"][2])[-2:] == ["disabled", "stopped"]


def test_joint_targets_are_clamped_to_max_step_and_limits(tmp_path: Path, openarm: Robot) -> None:
    overrides = {"safety.max_step_rad": 0.05, "joint_limits.joint6": (-0.6, 0.6)}  # tighter than the range the env clips to
    plan = prepare(fast_request(write_policy(tmp_path / "push.onnx", openarm, 1.0), ticks=40, overrides=overrides))
    _, arrays, _ = sim_run(plan)
    policy = np.flatnonzero(arrays["phase"] == PHASE_POLICY)
    steps = np.abs(np.diff(arrays["command_position"][policy], axis=0))
    assert steps.max() <= 0.05 + 1e-12
    assert (arrays["safety"][policy[:-1]] & SafetyEvent.MAX_STEP).all()  # the policy asks 0.08 rad per tick
    limits = np.array([plan.config.joint_limits[j] for j in plan.config.joint_limits])
    commands = arrays["command_position"][policy]
    assert (commands >= limits[:, 0] - 1e-12).all() and (commands <= limits[:, 1] + 1e-12).all()
    assert (arrays["safety"][policy] & SafetyEvent.JOINT_LIMIT).any() and commands[:, 5].max() == 0.6


class FailingBus:
    """A sim bus whose wire dies at the state read of tick ``fail_at`` (1-based): every later read, exchange and the disable raise ``BusError``."""

    def __init__(self, bus: SimBus, fail_at: int) -> None:
        self._bus, self._fail_at, self._reads = bus, fail_at, 0
        self.motor_names = bus.motor_names
        self.closed = False

    def open(self) -> None:
        self._bus.open()

    def enable(self) -> MotorReadings:
        return self._bus.enable()

    def read(self) -> MotorReadings:
        self._reads += 1
        self._fail_if_dead()
        return self._bus.read()

    def exchange(self, command: MotorCommand) -> MotorReadings:
        self._fail_if_dead()
        return self._bus.exchange(command)

    def _fail_if_dead(self) -> None:
        if self._fail_at and self._reads >= self._fail_at:
            raise BusError("send to CAN id 0x1 on 'can0' failed: Network is down")

    def disable(self) -> MotorReadings:
        raise BusError("Damiao disable failed after 4 tries: motor 'joint1' never answered")

    def close(self) -> None:
        self.closed = True
        self._bus.close()


def test_a_lost_bus_stops_the_run_and_still_tries_to_disable(tmp_path: Path, openarm: Robot) -> None:
    plan = prepare(fast_request(write_policy(tmp_path / "policy.onnx", openarm, 0.1), ticks=20))
    buses: list[FailingBus] = []
    outcome, arrays, log = sim_run(plan, wrap=lambda bus: buses.append(FailingBus(bus, fail_at=12)) or buses[-1])
    assert outcome.stop_reason == "fault" and "Network is down" in outcome.detail
    assert arrays["safety"][11] & SafetyEvent.BUS_ERROR and not arrays["fresh"][11].any()
    assert (arrays["phase"][12:] == PHASE_SHUTDOWN).all()  # the shutdown tried: its first exchange failed too
    assert events(log)[-4:] == ["bus_error", "bus_error", "disable_failed", "stopped"] and buses[0].closed
    assert outcome.final_enabled == [None] * 8 and outcome.final_faults == [""] * 8


@pytest.mark.parametrize("where", ["read", "exchange"])
@pytest.mark.parametrize(
    ("bad", "event", "detail"),
    [
        ("fault", SafetyEvent.MOTOR_FAULT, "motor fault: joint3 (over-current)"),
        ("off", SafetyEvent.MOTOR_FAULT, "motor not enabled: joint3"),  # torque off without a fault: a motor that reset
        ("nan", SafetyEvent.BAD_READING, "a reply decoded to NaN"),
    ],
)
def test_a_fault_or_nan_in_either_exchange_of_a_tick_stops_the_run(tmp_path: Path, openarm: Robot, where: str, bad: str, event: SafetyEvent, detail: str) -> None:
    """Tick 9's read or command reply says joint3 is over-current, off, or decodes to NaN: that tick is the last before the shutdown."""

    class BadReply(FailingBus):
        def _spoil(self, readings: MotorReadings) -> MotorReadings:
            if self._reads != 10:
                return readings
            fault, position, enabled = list(readings.fault), readings.position.copy(), readings.enabled.copy()
            if bad == "fault":
                fault[2], enabled[2] = "over-current", False  # a latched fault also drops torque
            elif bad == "off":
                enabled[2] = False
            else:
                position[2] = np.nan
            return MotorReadings(position, readings.velocity, readings.torque, readings.fresh, enabled, tuple(fault), readings.stamp)

        def read(self) -> MotorReadings:
            readings = super().read()
            return self._spoil(readings) if where == "read" else readings

        def exchange(self, command: MotorCommand) -> MotorReadings:
            readings = super().exchange(command)
            return self._spoil(readings) if where == "exchange" else readings

        def disable(self) -> MotorReadings:
            return self._bus.disable()

    plan = prepare(fast_request(write_policy(tmp_path / "policy.onnx", openarm, 0.1), ticks=20))
    outcome, arrays, log = sim_run(plan, wrap=lambda bus: BadReply(bus, 0))
    assert outcome.stop_reason == "fault" and outcome.detail == detail
    assert arrays["safety"][9] & event and (arrays["phase"][10:] == PHASE_SHUTDOWN).all()
    assert np.isnan(arrays["command_position"][9]).all() == (where == "read")  # a bad read sends nothing; a bad command reply came after sending
    assert "fault" in events(log) and outcome.final_enabled == [False] * 8
    assert arrays["fault"][9].tolist() == ["", "", "over-current" if (bad, where) == ("fault", "read") else ""] + [""] * 5  # the row logs its read


def test_the_safe_stop_holds_then_ramps_the_effort_to_zero_while_the_targets_move_to_the_rest_pose(tmp_path: Path, openarm: Robot) -> None:
    """hold 0.04 s (2 ticks), then 10 ticks of effort 0.9, 0.8, ... 0; joint4 moves to rest at home_speed 0.5 rad/s (0.01 rad a tick)."""
    overrides = {"shutdown.effort_ramp_s": 0.2, "shutdown.rest": {"joint4": 1.35}}
    plan = prepare(fast_request(write_policy(tmp_path / "policy.onnx", openarm, 0.0), ticks=5, overrides=overrides))
    outcome, arrays, log = sim_run(plan)
    assert outcome.stop_reason == "completed" and outcome.final_enabled == [False] * 8
    shutdown = np.flatnonzero(arrays["phase"] == PHASE_SHUTDOWN)
    assert len(shutdown) == 12 and events(log)[-2:] == ["disabled", "stopped"]
    effort = arrays["command_effort"]
    assert (effort[: shutdown[2]] == 1.0).all()  # full effort until the ramp, hold ticks included
    np.testing.assert_allclose(effort[shutdown[2:], 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], atol=1e-12)
    assert (effort[shutdown] == effort[shutdown, :1]).all()  # every motor alike
    assert (arrays["command_kp"][shutdown] == [m.kp for m in plan.config.motors]).all()  # the gains stay; the bus maps the effort
    targets = arrays["command_position"][shutdown[1:]]  # from the last hold tick on
    held = [i for i in range(8) if i != 3]
    assert (targets[:, held] == targets[0, held]).all()  # joints without a rest pose hold their last target
    start = targets[0, 3]
    assert 0.02 < start - 1.35 < 0.1  # joint4's target began near home (1.4), within reach of the ramp
    assert np.abs(np.diff(targets[:, 3])).max() <= 0.01 + 1e-12 and targets[-1, 3] == 1.35


def test_overruns_are_counted_and_the_deadline_grid_kept(tmp_path: Path, openarm: Robot) -> None:
    plan = prepare(fast_request(write_policy(tmp_path / "policy.onnx", openarm, 0.0), ticks=6))
    clock = BusyClock()  # virtual time: only the slow tick is late, whatever else loads the machine

    class SlowOnce(FailingBus):
        def exchange(self, command: MotorCommand) -> MotorReadings:
            if self._reads == 5:
                clock.spend(0.07)  # 3.5 periods: deadlines 5, 6 and 7 pass during this tick
            return self._bus.exchange(command)

        def disable(self) -> MotorReadings:
            return self._bus.disable()

    _, arrays, _ = sim_run(plan, wrap=lambda bus: SlowOnce(bus, 0), clock=clock)
    assert arrays["overrun"].sum() == 3 and arrays["overrun"][5] == 3
    grid = (arrays["t_deadline"] - arrays["t_deadline"][0]) / plan.config.period
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-9)
    assert np.diff(np.round(grid))[4] == 4  # tick 5 came four periods after tick 4


# ---------------------------------------------------------------- tick order: read, compute, send


class BusyClock(LockstepClock):
    """Virtual time in which the bus and the policy take the time they are told to (``spend``)."""

    def spend(self, seconds: float) -> None:
        self._now += seconds


READ_S, INFERENCE_S, EXCHANGE_S = 0.001, 0.003, 0.0015  # virtual: a read, one policy call, a command exchange


class TimedBus(FailingBus):
    """A sim bus that takes READ_S per read and EXCHANGE_S per command exchange on ``clock``, recording every call."""

    def __init__(self, bus: SimBus, clock: BusyClock) -> None:
        super().__init__(bus, fail_at=0)
        self.clock = clock
        self.calls: list[tuple[str, float, np.ndarray | None]] = []

    def read(self) -> MotorReadings:
        self.calls.append(("read", self.clock.now(), None))
        self.clock.spend(READ_S)
        return super().read()

    def exchange(self, command: MotorCommand) -> MotorReadings:
        self.calls.append(("exchange", self.clock.now(), command.position.copy()))
        self.clock.spend(EXCHANGE_S)
        return super().exchange(command)

    def disable(self) -> MotorReadings:
        return self._bus.disable()


class SlowPolicy:
    """``policy`` taking INFERENCE_S of ``clock`` per call."""

    def __init__(self, policy: PolicyRuntime, clock: BusyClock) -> None:
        self.policy, self.clock = policy, clock

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.clock.spend(INFERENCE_S)
        return self.policy.act(obs)


def test_each_tick_reads_then_sends_the_command_computed_from_that_reading_within_the_tick(tmp_path: Path, openarm: Robot) -> None:
    plan = prepare(fast_request(write_policy(tmp_path / "policy.onnx", openarm, 0.3), ticks=12))
    joints = [m.joint for m in plan.config.motors]
    plant = RealityPlant(openarm, load_reality("none", openarm, 0), joints, motor_torque_limits(openarm, joints))
    clock = BusyClock()
    bus = TimedBus(SimBus(plant, tuple(joints), plan.config.period), clock)
    log = plan.new_log()
    bridge = Bridge(bus, Calibration.from_config(plan.config, openarm), LoopSettings.from_config(plan.config, openarm), clock, log, StopRequest())
    outcome = bridge.run(SlowPolicy(plan.policy, clock), plan.task, plan.goals, plan.ticks_per_goal)  # type: ignore[arg-type]
    assert outcome.stop_reason == "completed"
    arrays = log.arrays()
    rows = len(arrays["phase"])

    # One read at the deadline, then one command exchange, every tick of every phase.
    assert [c[0] for c in bus.calls] == ["read", "exchange"] * rows
    reads, sends = bus.calls[0::2], bus.calls[1::2]
    np.testing.assert_array_equal([c[1] for c in reads], arrays["t_read_send"])
    np.testing.assert_array_equal(arrays["t_read_send"], arrays["t_deadline"])  # on time: virtual waits are exact
    np.testing.assert_array_equal([c[1] for c in sends], arrays["t_command"])
    np.testing.assert_array_equal(np.array([c[2] for c in sends]), arrays["command_position"])  # the row's command is what left in it
    assert (arrays["t_done"][:-1] < arrays["t_deadline"][1:]).all()  # tick k's command left before deadline k+1

    # Row k's command came from row k's reading: the policy saw this tick's measured joints ...
    policy = arrays["phase"] == PHASE_POLICY
    acted = policy & np.isfinite(arrays["t_inference"])
    assert acted.sum() == 12
    np.testing.assert_array_equal(arrays["observation"][acted, :7], arrays["position"][acted, :7].astype(np.float32))
    # ... and it left one inference after that reading, not a period later.
    delay = (arrays["t_command"] - arrays["t_read"])[acted]
    np.testing.assert_allclose(delay, INFERENCE_S, rtol=0, atol=1e-12)
    figures = timing(arrays, plan.config.period)
    assert figures["obs_to_command_p50_ms"] == figures["obs_to_command_max_ms"] == pytest.approx(INFERENCE_S * 1000)


def test_a_v4_log_carries_the_read_and_command_times_the_decoded_motor_state_and_says_its_timing(tmp_path: Path, openarm: Robot) -> None:
    plan = prepare(fast_request(write_policy(tmp_path / "policy.onnx", openarm, 0.1), ticks=6))
    _, _, log = sim_run(plan)
    log.write(tmp_path / "log.npz")
    arrays, meta = read_log(tmp_path / "log.npz")
    assert FORMAT_VERSION == 4 and meta["format_version"] == 4 and meta["timing"] == "read-compute-send"
    assert meta["control_law"] == {f"joint{i}": "impedance" for i in range(1, 8)} | {"finger_joint1": "impedance"}  # Damiao: MIT law
    assert meta["phases"] == {"home": 0, "policy": 1, "shutdown": 2, "excite": 3}
    times = ("t_deadline", "t_read_send", "t_read", "t_inference", "t_command", "t_done")
    assert set(times) <= set(arrays) and "t_send" not in arrays
    n = len(arrays["phase"])
    assert arrays["command_fresh"].shape == (n, 8) and arrays["command_fresh"].all()
    assert arrays["enabled"].dtype == bool and arrays["enabled"].all() and "motor_status" not in arrays  # no vendor codes
    assert arrays["fault"].shape == (n, 8) and (arrays["fault"] == "").all()
    ordered = np.stack([arrays[t] for t in ("t_deadline", "t_read_send", "t_read", "t_command", "t_done")])
    assert (np.diff(ordered, axis=0) >= 0).all()  # each tick: due, read out, read in, command out, done


# ---------------------------------------------------------------- faults through the emulator


def test_a_silent_motor_stops_the_loop_within_3_ticks_disables_and_writes_the_log(
    tmp_path: Path, openarm: Robot, monkeypatch: pytest.MonkeyPatch
) -> None:
    arms: list[EmulatedArm] = []
    logs: list[DeployLog] = []
    new_arm, new_log = session.EmulatedArm, session.Plan.new_log
    monkeypatch.setattr(session, "EmulatedArm", lambda *args: arms.append(new_arm(*args)) or arms[-1])
    monkeypatch.setattr(session.Plan, "new_log", lambda plan: logs.append(new_log(plan)) or logs[-1])
    silenced: list[int] = []

    def silence_once_the_policy_runs() -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ticks = logs[0].ticks if logs else []
            if sum(t.phase == PHASE_POLICY for t in ticks) >= 5:
                arms[0].plant.silence(3)  # joint4 stops answering, as with a loose connector
                silenced.append(len(ticks))
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=silence_once_the_policy_runs, daemon=True)
    watcher.start()
    path = tmp_path / "log.npz"
    request = fast_request(write_policy(tmp_path / "policy.onnx", openarm, 0.0), ticks=100, emulate=True, log=path)
    summary = run_deploy(request, prepare(request), StopRequest())
    watcher.join(TIMEOUT)
    assert silenced, "the policy phase never started"

    arrays, meta = read_log(path)
    assert summary.stop_reason == "fault" and summary.detail == "no reply from joint4 for 2 ticks" and summary.exit_code == 1
    first_silent = int(np.flatnonzero(~arrays["fresh"][:, 3])[0])
    policy_after = np.flatnonzero(arrays["phase"][first_silent:] == PHASE_POLICY)
    assert len(policy_after) <= 3 and (arrays["phase"][first_silent + len(policy_after) :] == PHASE_SHUTDOWN).all()
    held = arrays["command_position"][first_silent : first_silent + len(policy_after)]
    assert np.isnan(held[-1]).all()  # the tick whose read found the motor silent too long sends no command: the shutdown takes over
    assert (held[:-1] == arrays["command_position"][first_silent - 1]).all()  # held while the motor was silent
    assert arrays["safety"][first_silent + len(policy_after) - 1] & SafetyEvent.STALE_STOP
    # joint4 never confirms the disable (it is silent), but the others do and every motor has stopped pushing.
    assert "disable_failed" in events(meta) and "joint4" in meta["events"][-2]["detail"]
    time.sleep(0.05)  # a physics substep after the disable frames
    assert all(arms[0].plant.sample(i).torque == 0.0 for i in range(8))
    assert meta["summary"]["stop_reason"] == "fault" and meta["reality"]["reality"] == "openarm-test"


def read_line(stream: Any, timeout: float) -> str:
    """One line from a subprocess pipe, or fail after ``timeout`` s (the loop under test must never hang)."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return stream.readline()


@pytest.mark.parametrize(("sig", "code", "reason"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_stops_deploy_safely_disables_and_exits_non_zero(tmp_path: Path, openarm: Robot, sig: int, code: int, reason: str) -> None:
    policy = write_policy(tmp_path / "policy.onnx", openarm, 0.05)
    path = tmp_path / "log.npz"
    args = ("deploy", "--robot", "openarm", "--policy", str(policy), "--emulate", "--random-goals", "3", "--duration", "10", "--log", str(path), "--json")
    with subprocess.Popen(simrl_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert read_line(process.stderr, TIMEOUT).startswith("deploying")
        time.sleep(1.5)  # enabled and moving: home ramp or the first goal
        process.send_signal(sig)
        out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == code, err
    arrays, meta = read_log(path)
    summary = json.loads(out)
    assert summary["stop_reason"] == meta["summary"]["stop_reason"] == reason
    assert reason in events(meta) and "disabled" in events(meta)
    assert meta["summary"]["final_enabled"] == [False] * 8  # every motor confirmed torque off
    assert (arrays["phase"][-1] == PHASE_SHUTDOWN) and arrays["command_effort"][-1].max() == 0.0  # effort ramped down first
    assert (arrays["phase"] == PHASE_HOME).any()


def test_an_openarm_deploy_runs_alike_over_can_fd_and_classic_can_and_every_frame_is_of_its_kind(
    tmp_path: Path, openarm: Robot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped file (CAN FD) and --no-fd (classic), the same short run: each frame on the emulated arm's wire is seen."""
    sniffers: list[can.BusABC] = []
    new_arm = session.EmulatedArm

    def arm_with_a_sniffer(*args: Any) -> EmulatedArm:
        arm = new_arm(*args)
        sniffers.append(can.Bus(interface="virtual", channel=arm.wire.channel))  # a third node on the motors' CAN wire
        return arm

    monkeypatch.setattr(session, "EmulatedArm", arm_with_a_sniffer)
    policy = write_policy(tmp_path / "policy.onnx", openarm, 0.05)
    runs = {}
    for fd in (True, False):
        overrides = {} if fd else {"bus.fd": False}  # the flag --no-fd: the emulated motors and the bus alike
        request = fast_request(policy, ticks=10, goals=2, emulate=True, log=tmp_path / f"fd-{fd}.npz", overrides=overrides)
        summary = run_deploy(request, prepare(request), StopRequest())
        frames = []
        while (msg := sniffers[-1].recv(0.0)) is not None:
            frames.append(msg)
        sniffers[-1].shutdown()
        runs[fd] = summary
        assert read_log(tmp_path / f"fd-{fd}.npz")[1]["deploy_config"]["bus"]["fd"] is fd
        assert summary.stop_reason == "completed" and summary.final_enabled == [False] * 8, summary.detail
        assert len(frames) > 2 * 8 * summary.policy_ticks  # every tick: 8 refresh requests, 8 commands, 16 replies
        assert {(m.is_fd, m.bitrate_switch, len(m.data)) for m in frames} == {(fd, fd, 8)}
        assert {m.arbitration_id for m in frames} == {*range(1, 9), 0x7FF, *range(0x11, 0x19)}
    assert runs[True].goals_reached == runs[False].goals_reached and runs[True].policy_ticks == runs[False].policy_ticks


def test_emulate_refuses_to_serve_can_fd_motors_through_socketcand() -> None:
    result = run_simrl("emulate", "--robot", "openarm", "--port", "0", timeout=TIMEOUT)
    assert_one_line_error(
        result, "field 'bus.fd' = True: simrl emulate serves a CAN arm through socketcand, which carries classic CAN frames only; allowed: false"
    )


def test_emulate_serves_a_deploy_in_another_process(tmp_path: Path, openarm: Robot) -> None:
    command = simrl_command("emulate", "--robot", "openarm", "--port", "0", "--no-fd", "--json")  # socketcand: classic CAN only
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as server:
        try:
            where = json.loads(read_line(server.stdout, TIMEOUT))
            assert where["host"] == "127.0.0.1" and where["port"] > 0 and where["reality"]["reality"] == "openarm-test"
            assert where["deploy_flags"] == ["--interface", "socketcand", "--host", "127.0.0.1", "--port", str(where["port"]), "--channel", "can0", "--no-fd"]
            overrides = {"bus.interface": "socketcand", "bus.host": where["host"], "bus.port": where["port"], "bus.fd": False}
            request = fast_request(write_policy(tmp_path / "policy.onnx", openarm, 0.0), ticks=5, log=tmp_path / "log.npz", overrides=overrides)
            summary = run_deploy(request, prepare(request), StopRequest())
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=TIMEOUT)
    assert summary.stop_reason == "completed" and summary.final_enabled == [False] * 8 and summary.policy_ticks == 6
    assert server.returncode == 130
