"""A per-joint or per-body model kind given as a list of entries: each entry's draws land on its own joints, in JAX and numpy alike."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from simrl.deploy.emulation.reality import load_reality
from simrl.envs import ReachEnv
from simrl.errors import SimrlError
from simrl.randomization.profile import InlineProfile, LIST_KINDS, resolve_profile
from simrl.randomization.sampler import DomainSampler
from simrl.robots import Robot, load_robot
from simrl.train.config import TrainConfig
from simrl.train.run_dir import RunDir
from tests.cli import run_simrl

# What a system identification would emit: each joint's range centred on its own fitted value.
LISTS = """\
joint_damping:
  - {distribution: uniform, low: 1.62, high: 1.98, joints: [joint1, joint2]}
  - {distribution: uniform, low: 0.7, high: 1.3, joints: 're:joint[5-7]'}
actuator_kp:
  - {distribution: fixed, value: 0.5, joints: [joint3]}
  - {distribution: fixed, value: 2.0, joints: [joint4]}
link_mass:
  - {distribution: fixed, value: 2.0, bodies: [link1]}
  - {distribution: uniform, low: 0.9, high: 1.1, bodies: 're:link[23]'}
latency_steps: {distribution: uniform, low: 0, high: 1}
"""
FIRST, SECOND = (1.62, 1.98), (0.7, 1.3)  # joint_damping's entries: joint1-2, joint5-7; joint3-4 stay nominal


@pytest.fixture(scope="module")
def openarm() -> Robot:
    return load_robot("openarm")


@pytest.fixture()
def lists(tmp_path: Path) -> Path:
    path = tmp_path / "sysid.yaml"
    path.write_text(LISTS)
    return path


def _dofs(robot: Robot, *joints: str) -> list[int]:
    return [int(robot.model.joint(j).dofadr[0]) for j in joints]


def assert_damping_per_entry(robot: Robot, damping: np.ndarray) -> None:
    """``damping`` (N, nv) as drawn: joint1-2 within the first entry, joint5-7 within the second, joint3-4 nominal."""
    ratio = damping / robot.model.dof_damping
    for joints, (low, high) in ((("joint1", "joint2"), FIRST), (("joint5", "joint6", "joint7"), SECOND)):
        r = ratio[:, _dofs(robot, *joints)]
        assert r.min() >= low * (1 - 1e-6) and r.max() <= high * (1 + 1e-6), joints
    np.testing.assert_allclose(ratio[:, _dofs(robot, "joint3", "joint4")], 1.0, rtol=1e-6)


def test_resolved_entries_cover_their_own_joints(lists: Path, openarm: Robot) -> None:
    profile = resolve_profile(lists, openarm)
    first, second = profile.entries("joint_damping")
    assert (first.names, first.label) == (("joint1", "joint2"), "joint_damping.0")
    assert (second.names, second.label) == (("joint5", "joint6", "joint7"), "joint_damping.1")
    assert profile.kinds == ("link_mass", "joint_damping", "actuator_kp", "latency_steps")
    with pytest.raises(ValueError, match="joint_damping has 2 entries"):
        profile.get("joint_damping")  # a list has no single parameter: a caller must not silently take the first
    assert profile.get("latency_steps") is not None


def test_jax_draws_land_on_each_entrys_joints(lists: Path, openarm: Robot) -> None:
    domain = DomainSampler(openarm, resolve_profile(lists, openarm)).sample(jax.random.key(0), 2000)
    damping = np.asarray(domain.model["dof_damping"])
    assert_damping_per_entry(openarm, damping)
    # both entries really spread over their ranges, independently of each other
    for joint, (low, high) in (("joint1", FIRST), ("joint6", SECOND)):
        r = damping[:, _dofs(openarm, joint)[0]] / openarm.model.dof_damping[_dofs(openarm, joint)[0]]
        assert r.mean() == pytest.approx((low + high) / 2, abs=0.02) and np.ptp(r) > 0.9 * (high - low)
    act = openarm.arm_actuators
    kp = np.asarray(domain.model["actuator_gainprm"])[:, act, 0] / openarm.model.actuator_gainprm[act, 0]
    np.testing.assert_allclose(kp[:, 2:4], np.tile([0.5, 2.0], (2000, 1)), rtol=1e-6)
    np.testing.assert_allclose(np.delete(kp, [2, 3], axis=1), 1.0, rtol=1e-6)
    links = [openarm.model.body(name).id for name in ("link1", "link2", "link3", "link4")]
    mass = np.asarray(domain.model["body_mass"])[:, links] / openarm.model.body_mass[links]
    np.testing.assert_allclose(mass[:, 0], 2.0, rtol=1e-6)
    assert mass[:, 1:3].min() >= 0.9 - 1e-6 and mass[:, 1:3].max() <= 1.1 + 1e-6 and np.ptp(mass[:, 1]) > 0.15
    np.testing.assert_allclose(mass[:, 3], 1.0, rtol=1e-6)


def test_numpy_reality_draws_each_entry_on_its_own_joints(lists: Path, openarm: Robot) -> None:
    for seed in range(20):
        reality = load_reality(lists, openarm, seed)
        assert_damping_per_entry(openarm, reality.model["dof_damping"][None])
        np.testing.assert_allclose(reality.kp_scale, [1, 1, 0.5, 2.0, 1, 1, 1], rtol=1e-6)
    described = load_reality(lists, openarm, 0).describe()
    assert set(described["joint_damping"]) == {"joint1", "joint2", "joint5", "joint6", "joint7"}


def test_a_tiny_env_steps_with_a_list_profile_and_keeps_each_worlds_draw(lists: Path, openarm: Robot) -> None:
    env = ReachEnv(openarm, 4, backend="cpu", randomization=resolve_profile(lists, openarm))
    state = jax.jit(env.reset)(jax.random.key(0))
    step = jax.jit(env.step)
    moved = step(step(state, jnp.ones((4, env.action_size))), jnp.ones((4, env.action_size)))
    assert_damping_per_entry(openarm, np.asarray(moved.domain.model["dof_damping"]))
    np.testing.assert_array_equal(moved.domain.model["dof_damping"], state.domain.model["dof_damping"])  # drawn per episode
    assert not np.allclose(moved.physics.qpos, state.physics.qpos)


def test_the_run_dir_copy_keeps_the_lists(lists: Path, openarm: Robot, tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", TrainConfig(robot="openarm", randomization=str(lists)))
    copy = yaml.safe_load(run.randomization_file.read_text())
    assert [entry["joints"] for entry in copy["joint_damping"]] == [["joint1", "joint2"], "re:joint[5-7]"]
    original, again = resolve_profile(lists, openarm), resolve_profile(run.randomization_file, openarm)
    assert [(p.label, p.names, p.spec) for p in again.parameters] == [(p.label, p.names, p.spec) for p in original.parameters]


def test_an_inline_profile_resolves_like_its_file(lists: Path, openarm: Robot) -> None:
    inline = InlineProfile("sysid", Path("policy.onnx:randomization_profile"), yaml.safe_load(LISTS))
    resolved = resolve_profile(inline, openarm)
    assert (resolved.name, resolved.path) == ("sysid", Path("policy.onnx:randomization_profile"))
    assert [(p.label, p.names) for p in resolved.parameters] == [(p.label, p.names) for p in resolve_profile(lists, openarm).parameters]
    broken = InlineProfile("sysid", Path("policy.onnx:randomization_profile"), {"joint_damping": [{"distribution": "fixed", "value": -1, "joints": "all"}]})
    with pytest.raises(SimrlError, match=r"^policy.onnx:randomization_profile: field 'joint_damping' .*joint_damping.0: a scale must not be negative"):
        resolve_profile(broken, openarm)


def test_a_robot_override_with_a_list_replaces_the_base_whole(tmp_path: Path, openarm: Robot) -> None:
    path = tmp_path / "override.yaml"
    path.write_text(
        "joint_damping: {distribution: fixed, value: 3}\n"
        "robots:\n  openarm:\n    joint_damping:\n"
        "      - {distribution: fixed, value: 2, joints: [joint1]}\n"
        "      - {distribution: fixed, value: 0.5, joints: [joint7]}\n"
    )
    damping = np.asarray(DomainSampler(openarm, resolve_profile(path, openarm)).sample(jax.random.key(0), 2).model["dof_damping"])
    ratio = damping / openarm.model.dof_damping
    np.testing.assert_allclose(ratio[:, _dofs(openarm, "joint1", "joint7")], [[2.0, 0.5]] * 2, rtol=1e-6)
    np.testing.assert_allclose(ratio[:, _dofs(openarm, "joint2", "joint3", "joint4", "joint5", "joint6")], 1.0, rtol=1e-6)  # not 3: the base is gone
    so101 = load_robot("so101")
    np.testing.assert_allclose(
        DomainSampler(so101, resolve_profile(path, so101)).sample(jax.random.key(0), 1).model["dof_damping"][0, so101.model.jnt_dofadr[so101.arm_joint_ids]],
        3 * so101.model.dof_damping[so101.model.jnt_dofadr[so101.arm_joint_ids]], rtol=1e-6,
    )  # other arms keep the base entry


ERRORS = [
    pytest.param(
        "joint_damping:\n  - {distribution: fixed, value: 1, joints: [joint1, joint2]}\n  - {distribution: fixed, value: 2, joints: 're:joint[2-3]'}\n",
        ["field 'joint_damping.1.joints' = 're:joint[2-3]'", "joint2 is already covered by joint_damping.0"], id="overlap",
    ),
    pytest.param(
        "link_mass:\n  - {distribution: fixed, value: 1, bodies: all}\n  - {distribution: fixed, value: 2, bodies: [link3]}\n",
        ["field 'link_mass.1.bodies'", "link3 is already covered by link_mass.0", "each body takes at most one entry"], id="overlap-bodies",
    ),
    pytest.param(
        "joint_damping:\n  - {distribution: fixed, value: 1, joints: [joint1]}\n  - {distribution: fixed, value: 2}\n",
        ["field 'joint_damping'", "joint_damping.1: every entry of a list names its joints"], id="entry-without-joints",
    ),
    pytest.param(
        "latency_steps:\n  - {distribution: fixed, value: 1}\n",
        ["field 'latency_steps'", "a list of entries is allowed only for " + ", ".join(LIST_KINDS)], id="list-of-a-whole-robot-kind",
    ),
    pytest.param("action_noise: []\n", ["field 'action_noise'", "a list of entries is allowed only for link_mass"], id="list-of-a-noise-kind"),
    pytest.param("joint_damping: []\n", ["field 'joint_damping' = []", "at least 1 item"], id="empty-list"),
    pytest.param(
        "joint_damping:\n  - {distribution: fixed, value: 1, joints: [joint1]}\n  - {distribution: uniform, low: 3, high: 2, joints: [joint2]}\n",
        ["field 'joint_damping.1'", "low = 3.0 is above high = 2.0"], id="bad-entry-named-by-position",
    ),
    pytest.param(
        "joint_damping:\n  - {distributon: fixed, value: 1, joints: [joint1]}\n",
        ["unknown field 'joint_damping.0.distributon'", "did you mean 'distribution'?"], id="typo-in-entry",
    ),
    pytest.param(
        "joint_damping:\n  - {distribution: fixed, value: 1, joints: [joint9]}\n",
        ["field 'joint_damping.0.joints' = 'joint9'", "joint1, joint2"], id="unknown-joint-in-entry",
    ),
    pytest.param(
        "joint_damping:\n  - {distribution: fixed, value: 1, joints: [joint1]}\nrobots:\n  openarm:\n    joint_damping: {joints: [joint2]}\n",
        ["field 'robots.openarm.joint_damping'", "the base joint_damping is a list, which an override replaces whole"], id="partial-override-of-a-list",
    ),
    pytest.param(
        "robots:\n  openarm:\n    joint_damping:\n      - {distribution: fixed, value: 1, joints: all}\n      - {distribution: fixed, value: 1, joints: [joint7]}\n",
        ["field 'robots.openarm.joint_damping.1.joints'", "joint7 is already covered by robots.openarm.joint_damping.0"], id="overlap-in-override",
    ),
]


@pytest.mark.parametrize("text, fragments", ERRORS)
def test_list_mistakes_are_one_line_naming_file_field_and_value(tmp_path: Path, openarm: Robot, text: str, fragments: list[str]) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    with pytest.raises(SimrlError) as caught:
        resolve_profile(path, openarm)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_show_and_validate_take_a_list_profile(lists: Path) -> None:
    shown = run_simrl("randomization", "show", "--robot", "openarm", "--profile", str(lists), "--json")
    assert shown.returncode == 0, shown.stderr
    damping = {row["target"]: row for row in json.loads(shown.stdout) if row["kind"] == "joint_damping"}
    assert set(damping) == {"joint1", "joint2", "joint5", "joint6", "joint7"}
    for joint, entry, (low, high) in (("joint1", 0, FIRST), ("joint6", 1, SECOND)):
        row = damping[joint]
        assert row["entry"] == entry and (row["min"], row["max"]) == (pytest.approx(row["nominal"] * low), pytest.approx(row["nominal"] * high))
    table = run_simrl("randomization", "show", "--robot", "openarm", "--profile", str(lists))
    assert table.returncode == 0 and "joint_damping.0" in table.stdout and "joint_damping.1" in table.stdout
    validated = run_simrl("randomization", "validate", str(lists), "--robot", "openarm")
    assert validated.returncode == 0 and validated.stdout.startswith(f"ok: {lists} (4 parameters")
