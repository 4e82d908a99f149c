"""Randomization profiles: sampled values follow their distributions, mistakes get one-line errors, show/validate/list work."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from simrl.errors import SimrlError
from simrl.paths import data_dir
from simrl.randomization.profile import ParameterSpec, available_profiles, load_profile, resolve_profile
from simrl.randomization.sampler import DomainSampler, draw, draw_latency_steps, max_latency_steps
from simrl.randomization.table import effective_ranges
from simrl.robots import Robot, available_robots, load_robot
from tests.cli import run_simrl

N = 10_000
SO101_JOINTS = "shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll"
SO101_BODIES = "base, shoulder, upper_arm, lower_arm, wrist, gripper, moving_jaw"


@pytest.fixture(scope="module")
def so101() -> Robot:
    return load_robot("so101")


def _samples(key: int = 0, **spec: float | str) -> np.ndarray:
    return np.asarray(draw(ParameterSpec(**spec), jax.random.key(key), (N,)))


def _write(tmp_path: Path, text: str, name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- sampled values follow their distributions --------------------------------------------------------------


def test_uniform_mean_and_bounds() -> None:
    v = _samples(distribution="uniform", low=-1.0, high=3.0)
    assert v.min() >= -1.0 and v.max() <= 3.0
    assert v.mean() == pytest.approx(1.0, abs=0.05)  # standard error 0.012


def test_loguniform_log_mean_and_bounds() -> None:
    v = _samples(distribution="loguniform", low=0.5, high=2.0)
    assert v.min() >= 0.5 * (1 - 1e-6) and v.max() <= 2.0 * (1 + 1e-6)
    assert np.log(v).mean() == pytest.approx((np.log(0.5) + np.log(2.0)) / 2, abs=0.02)  # standard error 0.004


def test_normal_mean_std_within_wide_clip() -> None:
    v = _samples(distribution="normal", mean=1.0, std=0.5, low=-1.0, high=3.0)
    assert v.min() >= -1.0 and v.max() <= 3.0
    assert v.mean() == pytest.approx(1.0, abs=0.02) and v.std() == pytest.approx(0.5, abs=0.02)


def test_normal_clipping_is_respected() -> None:
    v = _samples(distribution="normal", mean=0.0, std=1.0, low=-0.5, high=0.5)
    assert v.min() == -0.5 and v.max() == 0.5
    # P(Z < -0.5) = 0.3085 of the samples sit on each bound
    assert np.mean(v == -0.5) == pytest.approx(0.3085, abs=0.02) and np.mean(v == 0.5) == pytest.approx(0.3085, abs=0.02)


def test_fixed_is_exact() -> None:
    assert np.all(_samples(distribution="fixed", value=0.0015339808) == np.float32(0.0015339808))


def test_latency_steps_uniform_gives_each_whole_period_alike() -> None:
    spec = ParameterSpec(distribution="uniform", low=0, high=2)
    v = np.asarray(draw_latency_steps(spec, jax.random.key(0), (N,)))
    assert set(np.unique(v)) == {0, 1, 2}
    np.testing.assert_allclose(np.bincount(v, minlength=3) / N, [1 / 3] * 3, atol=0.02)


def test_latency_steps_never_exceed_what_the_history_holds(tmp_path: Path, so101: Robot) -> None:
    profile = resolve_profile(_write(tmp_path, "latency_steps: {distribution: uniform, low: 0, high: 1.5}\n"), so101)
    drawn = np.asarray(DomainSampler(so101, profile).sample(jax.random.key(0), N).values["latency_steps"])
    assert drawn.max() <= max_latency_steps(profile)


def test_joint_damping_on_one_joint_only_for_so101(tmp_path: Path, so101: Robot) -> None:
    path = _write(tmp_path, "robots:\n  so101:\n    joint_damping: {distribution: loguniform, low: 0.5, high: 2, joints: [elbow_flex]}\n")
    domain = DomainSampler(so101, resolve_profile(path, so101)).sample(jax.random.key(0), N)
    damping = np.asarray(domain.model["dof_damping"])
    nominal = so101.model.dof_damping
    elbow = so101.model.joint("elbow_flex").dofadr[0]
    ratio = damping[:, elbow] / nominal[elbow]
    assert ratio.min() >= 0.5 * (1 - 1e-5) and ratio.max() <= 2.0 * (1 + 1e-5)
    assert np.log(ratio).mean() == pytest.approx(0.0, abs=0.02)
    others = np.delete(damping, elbow, axis=1)
    np.testing.assert_allclose(others, np.broadcast_to(np.delete(nominal, elbow), others.shape), rtol=1e-6)
    assert resolve_profile(path, load_robot("openarm")).parameters == ()  # the section is so101's alone


def test_actuator_kp_and_link_mass_stay_consistent(so101: Robot) -> None:
    domain = DomainSampler(so101, resolve_profile("default", so101)).sample(jax.random.key(1), 1000)
    act = so101.arm_actuators
    kp = np.asarray(domain.model["actuator_gainprm"])[:, act, 0]
    np.testing.assert_array_equal(np.asarray(domain.model["actuator_biasprm"])[:, act, 1], -kp)
    ratio = kp / so101.model.actuator_gainprm[act, 0]
    assert ratio.min() >= 0.8 - 1e-5 and ratio.max() <= 1.2 + 1e-5 and ratio.std() > 0.05
    bodies = np.arange(1, so101.model.nbody)
    mass_ratio = np.asarray(domain.model["body_mass"])[:, bodies] / so101.model.body_mass[bodies]
    inertia_ratio = np.asarray(domain.model["body_inertia"])[:, bodies] / so101.model.body_inertia[bodies]
    np.testing.assert_allclose(inertia_ratio, np.broadcast_to(mass_ratio[..., None], inertia_ratio.shape), rtol=1e-5)
    assert mass_ratio.min() >= 0.85 - 1e-5 and mass_ratio.max() <= 1.15 + 1e-5


def test_same_key_same_samples_other_key_others(so101: Robot) -> None:
    sampler = DomainSampler(so101, resolve_profile("strong", so101))
    a, b, c = (sampler.sample(jax.random.key(k), 64) for k in (7, 7, 8))
    leaves = jax.tree_util.tree_leaves
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
    assert np.array_equal(*(sampler.step_noise(jax.random.key(3), 64)["action_noise"] for _ in range(2)))
    assert not np.array_equal(a.model["dof_damping"], c.model["dof_damping"])
    assert not np.array_equal(a.values["latency_substeps"], c.values["latency_substeps"])


# --- validation errors: one line naming the file, the field and the values ----------------------------------

ERRORS = [
    pytest.param("joint_dampin: {distribution: uniform, low: 0.5, high: 2}\n", ["'joint_dampin'", "did you mean 'joint_damping'?"], id="unknown-kind"),
    pytest.param(
        "joint_damping: {distributon: uniform, low: 0.5, high: 2}\n", ["joint_damping.distributon", "did you mean 'distribution'?"],
        id="typo-in-entry",
    ),
    pytest.param("joint_damping: {distribution: uniform, low: 3, high: 2}\n", ["'joint_damping'", "low = 3.0", "high = 2.0"], id="min-above-max"),
    pytest.param("link_mass: {distribution: uniform, low: -0.5, high: 1.5}\n", ["'link_mass'", "scale must not be negative", "-0.5"], id="negative-scale"),
    pytest.param(
        "joint_damping: {distribution: uniform, low: 0.5, high: 2, joints: [elbow_flx]}\n",
        ["joint_damping.joints", "'elbow_flx'", "did you mean 'elbow_flex'?", SO101_JOINTS], id="unknown-joint",
    ),
    pytest.param(
        "link_mass: {distribution: uniform, low: 0.8, high: 1.2, bodies: [lower_am]}\n",
        ["link_mass.bodies", "'lower_am'", "did you mean 'lower_arm'?", SO101_BODIES], id="unknown-body",
    ),
    pytest.param(
        "joint_damping: {distribution: uniform, low: 0.5, high: 2, joints: 're:finger.*'}\n", ["joint_damping.joints", "re:finger.*", "matches none of"],
        id="regex-matches-nothing",
    ),
    pytest.param(
        "joint_damping: {distribution: uniform, low: 0.5, high: 2, resample: step}\n", ["'joint_damping'", "resample 'step' is only for noise"],
        id="step-on-non-noise",
    ),
    pytest.param(
        "joint_damping: {distribution: uniform, low: 0.5, high: 2, std: 0.1}\n", ["'joint_damping'", "'std' does not belong to a uniform distribution"],
        id="std-on-uniform",
    ),
    pytest.param(
        "joint_damping: {distribution: uniform, low: 0.5, high: 2}\nrobots:\n  so101:\n    joint_damping: {low: 3}\n",
        ["'robots.so101.joint_damping'", "low = 3.0 is above high = 2.0"], id="error-in-robot-override",
    ),
    pytest.param("robots:\n  so101:\n    joint_dampin: {distribution: fixed, value: 1}\n", ["'robots.so101.joint_dampin'"], id="unknown-kind-in-robot-override"),
    pytest.param(
        "robots:\n  so101:\n    joint_dampin: {distribution: fixed, value: 1}\n", ["did you mean 'joint_damping'?"],
        id="suggestion-in-robot-override",
    ),
    pytest.param(
        "robots:\n  so101:\n    joint_damping: {distribution: fixed, value: 1, joints: [elbow_flx]}\n",
        ["'robots.so101.joint_damping.joints'", "did you mean 'elbow_flex'?"], id="unknown-joint-in-robot-override",
    ),
    pytest.param("joint_damping: {distribution: fixed, value: 1, joints: []}\n", ["'joint_damping"], id="empty-joint-list"),
    pytest.param("physics_variants: 256\n", ["'physics_variants' = 256 is gone", "every world draws its own", "delete the line"], id="variants-removed"),
]


@pytest.mark.parametrize("text, fragments", ERRORS)
def test_profile_mistake_is_one_line_naming_the_file(tmp_path: Path, so101: Robot, text: str, fragments: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SimrlError) as caught:
        resolve_profile(path, so101)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("text, fragments", ERRORS)
def test_validate_reports_the_mistake_in_one_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = _write(tmp_path, text)
    result = run_simrl("randomization", "validate", str(path), "--robot", "so101")
    assert result.returncode == 2, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path}: ")
    for fragment in fragments:
        assert fragment in result.stderr


def test_unknown_profile_name_suggests_the_nearest() -> None:
    with pytest.raises(SimrlError, match=r"unknown randomization profile 'defualt' \(did you mean 'default'\?\)"):
        load_profile("defualt")
    result = run_simrl("randomization", "show", "--profile", "defualt")
    assert result.returncode == 2 and "did you mean 'default'?" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_validate_names_the_robot_a_file_does_not_fit(tmp_path: Path) -> None:
    path = _write(tmp_path, "joint_damping: {distribution: loguniform, low: 0.5, high: 2, joints: [elbow_flex]}\n")
    assert run_simrl("randomization", "validate", str(path), "--robot", "so101").returncode == 0
    result = run_simrl("randomization", "validate", str(path))
    assert result.returncode == 2 and f"error: {path}: field 'joint_damping.joints' = 'elbow_flex'" in result.stderr
    assert "(resolving for robot 'fr3')" in result.stderr


def test_validate_refuses_a_section_for_an_unknown_robot(tmp_path: Path) -> None:
    path = _write(tmp_path, "robots:\n  so10:\n    joint_damping: {distribution: fixed, value: 1}\n")
    result = run_simrl("randomization", "validate", str(path))
    assert result.returncode == 2 and f"error: {path}: field 'robots.so10': unknown robot (did you mean 'so101'?)" in result.stderr


# --- effective ranges ---------------------------------------------------------------------------------------


def test_effective_ranges_follow_the_sampler(tmp_path: Path, so101: Robot) -> None:
    path = _write(
        tmp_path,
        "joint_damping: {distribution: uniform, low: -1.0, high: 0.1, apply: add, joints: [elbow_flex]}\n"
        "latency_steps: {distribution: uniform, low: 0, high: 2}\n"
        "action_noise: {distribution: normal, mean: 0.0, std: 0.02, joints: [wrist_roll]}\n"
        "actuator_kv: {distribution: normal, mean: 1.0, std: 0.1, low: 0.9, joints: [elbow_flex]}\n",
    )
    rows = {row.kind: row for row in effective_ranges(so101, resolve_profile(path, so101))}
    damping = rows["joint_damping"]
    assert (damping.target, damping.nominal, damping.min, damping.max) == ("elbow_flex", 0.6, 0.0, pytest.approx(0.7))  # clamped at 0
    assert damping.distribution == "uniform +[-1, 0.1]" and damping.unit == "N·m·s/rad"
    latency = rows["latency_steps"]
    assert (latency.target, latency.min, latency.max) == ("robot", 0, 2) and "0–40 ms" in latency.note
    noise = rows["action_noise"]
    assert (noise.distribution, noise.min, noise.max, noise.resample) == ("normal 0 ± 0.02, per step", pytest.approx(-0.06), pytest.approx(0.06), "step")
    assert "mean ± 3 std" in noise.note
    kv = rows["actuator_kv"]
    assert (kv.min, kv.max) == (pytest.approx(2.73 * 0.9), pytest.approx(2.73 * 1.3)) and kv.distribution.startswith("normal x(1 ± 0.1) clipped to [0.9, inf]")


@functools.cache
def _show_json(robot: str, profile: str) -> list[dict]:
    result = run_simrl("randomization", "show", "--robot", robot, "--profile", profile, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("profile", available_profiles())
@pytest.mark.parametrize("robot", available_robots())
def test_show_runs_for_every_robot_and_profile(robot: str, profile: str) -> None:
    rows = _show_json(robot, profile)
    assert all(row["min"] is None or row["min"] <= row["max"] for row in rows)
    assert (rows == []) == (profile == "none")
    table = run_simrl("randomization", "show", "--robot", robot, "--profile", profile)
    assert table.returncode == 0, table.stderr
    assert f"randomization '{profile}' for {robot}" in table.stdout and "…" not in table.stdout


def test_show_elbow_damping_range_under_default() -> None:
    (row,) = [r for r in _show_json("so101", "default") if (r["kind"], r["target"]) == ("joint_damping", "elbow_flex")]
    assert row["distribution"] == "loguniform x[0.5, 2]"
    assert (row["min"], row["max"]) == (pytest.approx(row["nominal"] * 0.5), pytest.approx(row["nominal"] * 2))


@pytest.mark.parametrize("profile", available_profiles())
def test_validate_accepts_every_shipped_profile(profile: str) -> None:
    path = data_dir("randomization") / f"{profile}.yaml"
    result = run_simrl("randomization", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {path} (") and "robots: fr3, omx, openarm, so101)" in result.stdout


def test_list_shows_the_shipped_profiles() -> None:
    result = run_simrl("randomization", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = {row["name"]: row["description"] for row in json.loads(result.stdout)}
    assert set(listed) == {"none", "default", "strong"} and all(listed.values())


def test_a_robot_override_with_a_distribution_replaces_the_entry(tmp_path: Path, so101: Robot) -> None:
    text = "joint_damping: {distribution: uniform, low: 0.5, high: 2}\nrobots:\n  so101:\n    joint_damping: {distribution: fixed, value: 3}\n"
    domain = DomainSampler(so101, resolve_profile(_write(tmp_path, text), so101)).sample(jax.random.key(0), 4)
    arm_dofs = so101.model.jnt_dofadr[so101.arm_joint_ids]
    np.testing.assert_allclose(domain.model["dof_damping"][:, arm_dofs], np.tile(3 * so101.model.dof_damping[arm_dofs], (4, 1)), rtol=1e-6)


def test_additive_friction_and_force_limits_stay_physical(tmp_path: Path, so101: Robot) -> None:
    text = (
        "geom_friction: {distribution: uniform, low: -2, high: 0, apply: add}\n"
        "actuator_force_limit: {distribution: uniform, low: -5, high: 0, apply: add}\n"
    )
    domain = DomainSampler(so101, resolve_profile(_write(tmp_path, text), so101)).sample(jax.random.key(0), 100)
    assert float(domain.model["geom_friction"][..., 0].min()) >= 0.0
    limits = np.asarray(domain.model["actuator_forcerange"])
    assert np.all(limits[..., 0] <= 0.0) and np.all(limits[..., 1] >= 0.0)
