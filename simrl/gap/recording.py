"""A deploy log read as what the gap checker needs: timed commands in, timed readings out.

``simrl deploy`` writes every tick of a run into an ``.npz`` (``simrl.deploy.log``).
The gap checker does not care why a command was sent (home ramp, policy,
excitation, shutdown); it needs, per tick, *when* the command left and what it
was (joint target, kp, kd), and *when* the arm was read and what it said. The
two log versions differ exactly there:

- version 1 (one exchange per tick): the command in row k left at ``t_send[k]``
  and the replies to it are row k's reading, taken between ``t_send[k]`` and
  ``t_read[k]``;
- version 2 (a state read at the deadline, the new command right after
  inference): row k's reading was taken between ``t_read_send[k]`` and
  ``t_read[k]``, and row k's command, computed from it, left at ``t_command[k]``;
- version 3 (timed as version 2) logs each command's ``effort`` beside its
  gains. An impedance motor runs ``kp * effort`` (the Damiao bus's mapping:
  the safe stop ramps the effort, not kp), so that is the kp a row's command
  acted with; earlier logs ramped kp itself;
- version 4 says which control law moved each motor (``meta.control_law``):
  ``impedance`` (the commanded kp and kd, as above) or ``servo`` (a position
  servo's own loop; the log's kp = kd = 0 say only that no gains were sent).
  On a servo the effort scales the torque cap, which the replay model holds
  fixed (a joint's force range is a model constant, not a control
  ``mujoco.rollout`` can vary per tick), so rows where a servo ran under a
  reduced cap (the safe stop's ramp, ending at the rest pose on the stops)
  enter no fit and no replay. Logs without the key are all impedance: every
  arm logged before it was an MIT arm's. One that moved a joint with kp = kd
  = 0 throughout was a servo arm's, and is refused rather than replayed limp.

A reading is stamped at the middle of its exchange: the motor sampled its
encoder somewhere inside it, and whatever constant offset remains is absorbed
by the fitted latency.

Every way a log can be unusable (not a log, truncated, another robot, no
motion, a policy from another arm) is a one-line ``SimrlError`` naming the file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from simrl.deploy.buses.settings import IMPEDANCE, SERVO
from simrl.deploy.log import PHASE_EXCITE, PHASE_POLICY
from simrl.errors import SimrlError
from simrl.robots import Robot

# Least commanded motion (rad, peak to peak on some joint) for a log to say anything about dynamics.
MIN_MOTION_RAD = 0.01
# Least number of usable ticks (one second at 50 Hz).
MIN_TICKS = 50

_REQUIRED = ("command_position", "command_kp", "command_kd", "position", "velocity", "torque", "fresh", "phase", "joint_names")


@dataclass(frozen=True)
class Recording:
    """One deploy run as timed commands and timed readings, in the log's motor order.

    Times are seconds on the loop's clock. ``command_time[k]`` is when row k's
    command left (NaN: no command that row); ``read_time[k]`` is when row k's
    reading was taken. ``usable[k]``: every motor answered, the command is
    known and no servo ran under a reduced torque cap (``capped[k]``), so the
    row can enter a fit. ``laws``: each motor's control law.
    """

    path: Path
    robot: str
    version: int
    period: float
    joints: tuple[str, ...]
    command_time: np.ndarray  # (T,)
    command_position: np.ndarray  # (T, n) rad
    command_kp: np.ndarray  # (T, n)
    command_kd: np.ndarray  # (T, n)
    read_time: np.ndarray  # (T,)
    position: np.ndarray  # (T, n) rad
    velocity: np.ndarray  # (T, n) rad/s
    torque: np.ndarray  # (T, n) N·m, the motor's own estimate
    usable: np.ndarray  # (T,) bool
    phase: np.ndarray  # (T,)
    meta: dict[str, Any]
    laws: tuple[str, ...]  # IMPEDANCE or SERVO per motor
    capped: np.ndarray  # (T,) bool: a servo's torque cap was below its full value (effort < 1)

    @property
    def duration(self) -> float:
        return float(self.read_time[-1] - self.read_time[0])

    @property
    def moving_joints(self) -> tuple[str, ...]:
        """Joints whose commanded target moved more than ``MIN_MOTION_RAD`` while the policy or the excitation ran.

        The ramp to home moves every joint a little (from wherever the arm sagged
        to before the motors were enabled); that says nothing about a joint.
        """
        main = self.usable & np.isin(self.phase, (PHASE_POLICY, PHASE_EXCITE))
        if not main.any():
            return ()
        span = np.ptp(self.command_position[main], axis=0)
        return tuple(j for j, s in zip(self.joints, span) if s > MIN_MOTION_RAD)

    @property
    def command_to_read_delay(self) -> np.ndarray:
        """Per row, from the reading a command was computed from to the command leaving (s).

        Version 2 computes row k's command from row k's reading; version 1 sent
        it at the next deadline, one exchange later.
        """
        if self.version >= 2:
            return self.command_time - self.read_time
        return self.command_time[1:] - self.read_time[:-1]

    def shifted_readings(self, seconds: float) -> "Recording":
        """The same run with every reading stamped ``seconds`` later, as a clock offset between them would do."""
        return replace(self, read_time=self.read_time + seconds)

    def describe(self) -> dict[str, Any]:
        return {
            "log": str(self.path),
            "robot": self.robot,
            "format_version": self.version,
            "ticks": int(len(self.read_time)),
            "usable_ticks": int(self.usable.sum()),
            "duration_s": round(self.duration, 3),
            "moving_joints": list(self.moving_joints),
            "kind": "excitation" if self.meta.get("excitation") else "policy",
            "control_law": dict(zip(self.joints, self.laws)),
            "rows_under_reduced_torque_cap": int(self.capped.sum()),
        }


def _fail(path: Path, what: str) -> SimrlError:
    return SimrlError(f"{path}: {what}")


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The log's arrays and meta; anything that is not a whole deploy log is one line."""
    if not path.is_file():
        raise _fail(path, "no such deploy log (simrl deploy writes one per run, see --log)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _fail(path, f"not a readable deploy log (.npz): {exc}; is it truncated or corrupt?") from None
    if "meta" not in arrays:
        raise _fail(path, "not a deploy log: it has no 'meta' entry")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as exc:
        raise _fail(path, f"corrupt deploy log: its 'meta' is not JSON ({exc})") from None
    missing = [key for key in _REQUIRED if key not in arrays]
    if missing:
        raise _fail(path, f"not a complete deploy log: missing {', '.join(missing)}")
    return arrays, meta


def read_meta(path: Path) -> dict[str, Any]:
    """A deploy log's ``meta`` (checked like ``read_recording`` checks the whole log)."""
    return _read_npz(Path(path))[1]


def _times(path: Path, arrays: dict[str, np.ndarray], version: int) -> tuple[np.ndarray, np.ndarray]:
    """(command_time, read_time) per row, by log version (see the module docstring)."""
    if version >= 2:
        needed = ("t_read_send", "t_read", "t_command")
        keys = [key for key in needed if key not in arrays]
        if keys:
            raise _fail(path, f"a version {version} deploy log needs {', '.join(keys)}")
        return arrays["t_command"].astype(float), 0.5 * (arrays["t_read_send"] + arrays["t_read"]).astype(float)
    keys = [key for key in ("t_send", "t_read") if key not in arrays]
    if keys:
        raise _fail(path, f"a version 1 deploy log needs {', '.join(keys)}")
    return arrays["t_send"].astype(float), 0.5 * (arrays["t_send"] + arrays["t_read"]).astype(float)


def read_recording(path: Path, robot: Robot) -> Recording:
    """Read and check a deploy log of ``robot``: the right arm, whole, long enough, and moving."""
    path = Path(path)
    arrays, meta = _read_npz(path)
    version = int(meta.get("format_version", 1))
    logged_robot = meta.get("robot")
    if logged_robot != robot.name:
        raise _fail(path, f"this log is from robot '{logged_robot}', not '{robot.name}'; allowed: a log of {robot.name}")
    policy_robot = (meta.get("policy_metadata") or {}).get("robot")
    if policy_robot not in (None, robot.name):
        raise _fail(path, f"the policy in this log was trained for '{policy_robot}', but the log is from '{robot.name}'")
    joints = tuple(str(j) for j in arrays["joint_names"])
    unknown = [j for j in joints if j not in _model_joints(robot)]
    if unknown:
        raise _fail(path, f"motor joints {', '.join(unknown)} are not joints of {robot.name}")
    command_time, read_time = _times(path, arrays, version)
    n_rows = len(read_time)
    lengths = {key: len(arrays[key]) for key in _REQUIRED if key != "joint_names"}
    if any(length != n_rows for length in lengths.values()):
        raise _fail(path, f"corrupt deploy log: columns of different lengths {sorted(set(lengths.values()) | {n_rows})}")
    rate = meta.get("rate_hz")
    if not rate or rate <= 0:
        raise _fail(path, f"corrupt deploy log: meta rate_hz = {rate!r}")
    laws = _control_laws(path, meta, joints)
    servo = np.array([law == SERVO for law in laws])
    effort = arrays["command_effort"].astype(float) if "command_effort" in arrays else np.ones(arrays["command_kp"].shape)
    capped = (servo & (effort < 1.0)).any(axis=1)
    fresh = arrays["fresh"].astype(bool)
    usable = fresh.all(axis=1) & np.isfinite(command_time) & np.isfinite(read_time) & ~capped
    usable &= np.isfinite(arrays["command_position"]).all(axis=1) & np.isfinite(arrays["position"]).all(axis=1)
    if usable.sum() < MIN_TICKS:
        raise _fail(path, f"only {int(usable.sum())} usable ticks (every motor answered, command known); at least {MIN_TICKS} needed")
    if np.any(np.diff(read_time[usable]) <= 0):
        raise _fail(path, "corrupt deploy log: reading times do not increase")
    recording = Recording(
        path=path,
        robot=robot.name,
        version=version,
        period=1.0 / float(rate),
        joints=joints,
        command_time=command_time,
        command_position=arrays["command_position"].astype(float),
        command_kp=_acting_kp(arrays, servo),
        command_kd=arrays["command_kd"].astype(float),
        read_time=read_time,
        position=arrays["position"].astype(float),
        velocity=arrays["velocity"].astype(float),
        torque=arrays["torque"].astype(float),
        usable=usable,
        phase=arrays["phase"].astype(int),
        meta=meta,
        laws=laws,
        capped=capped,
    )
    if not recording.moving_joints:
        raise _fail(path, f"no motion: no joint target moved more than {MIN_MOTION_RAD} rad, so the log says nothing about the dynamics")
    if "control_law" not in meta:
        _refuse_gainless(recording)
    return recording


def _control_laws(path: Path, meta: dict[str, Any], joints: tuple[str, ...]) -> tuple[str, ...]:
    """Each motor's control law from ``meta.control_law`` (format 4); a log without it is all impedance (see the module docstring)."""
    declared = meta.get("control_law")
    if declared is None:
        return (IMPEDANCE,) * len(joints)
    if not isinstance(declared, dict) or set(declared) != set(joints) or any(law not in (IMPEDANCE, SERVO) for law in declared.values()):
        raise _fail(path, f"corrupt deploy log: meta control_law = {declared!r}; allowed: {IMPEDANCE} or {SERVO} for each of {', '.join(joints)}")
    return tuple(declared[j] for j in joints)


def _refuse_gainless(recording: Recording) -> None:
    """A log that does not say its control laws, in which a moving joint was commanded kp = kd = 0 throughout: a
    servo arm's log from before format 4. Replayed as impedance, that joint would hang limp; say so instead."""
    rows = recording.usable
    gainless = [
        joint for i, joint in enumerate(recording.joints)
        if joint in recording.moving_joints and not np.any(recording.command_kp[rows, i]) and not np.any(recording.command_kd[rows, i])
    ]  # fmt: skip
    if gainless:
        raise _fail(
            recording.path,
            f"format v{recording.version} log moves {', '.join(gainless)} with commanded kp = kd = 0 and does not say which control law "
            "moved them (a position-servo arm's log from before format 4?); allowed: a log written by this simrl deploy, which records meta.control_law",
        )


def _acting_kp(arrays: dict[str, np.ndarray], servo: np.ndarray) -> np.ndarray:
    """The kp each row's command acted with: on an impedance motor ``kp * effort`` where the log has the effort
    (version 3 on), else the kp logged; a servo's as logged (its effort scales its torque cap, not a gain)."""
    kp = arrays["command_kp"].astype(float)
    if "command_effort" not in arrays:
        return kp
    return np.where(servo, kp, kp * arrays["command_effort"].astype(float))


def _model_joints(robot: Robot) -> list[str]:
    import mujoco

    return [mujoco.mj_id2name(robot.model, mujoco.mjtObj.mjOBJ_JOINT, i) for i in range(robot.model.njnt)]
