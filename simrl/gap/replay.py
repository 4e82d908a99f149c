"""Replay a recording's commands open-loop in simulation and read the simulated arm where the real one was read.

The log is cut into chunks of a few seconds (multiple shooting): each chunk
starts from the arm's measured state at its first reading and is driven by the
logged commands, each acting from the moment it left plus a latency. Short
chunks keep a wrong parameter from compounding over a whole run and give the
fit many independent starts. Every chunk of every candidate model is stepped in
one threaded ``mujoco.rollout`` call.

Latency: a motor applies a command at the first physics step after it is due.
That makes the replay, and any error measure, a staircase in the latency, on
which no gradient method can move. Here a command that falls due inside a
physics step is blended into that step by the fraction of the step it covers,
so the replay moves continuously with the latency (a continuous-time delay seen
through a zero-order hold). The emulated and real arms add their own rounding
to the physics step on top: a fitted latency reads up to one step above the
arm's nominal one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np
from mujoco import rollout

from simrl.gap.recording import Recording
from simrl.gap.replay_model import ReplayModel

# Default chunk length (s): long enough for a servo's transient to die out many times over.
CHUNK_S = 3.0
# Largest command latency a replay considers (s). Readings this soon after the first logged command
# may still show the arm under a command the log does not hold, so no chunk starts before then.
MAX_LATENCY_S = 0.1


@dataclass(frozen=True)
class Chunk:
    """A run of usable rows replayed from the state measured at the first of them."""

    rows: np.ndarray  # recording rows whose readings the replay predicts (the first one is the start state)
    start_time: float
    steps: int  # physics steps to cover the last reading


@dataclass(frozen=True)
class Prediction:
    """Simulated joint positions and velocities at the recording's reading times (rows of ``Replayer.rows``)."""

    position: np.ndarray  # (n_models, n_rows, n_motors)
    velocity: np.ndarray


class Replayer:
    """Replays one recording on candidate models; owns the rollout thread pool."""

    def __init__(
        self, replay: ReplayModel, recording: Recording, rows: np.ndarray | None = None, chunk_s: float = CHUNK_S, nthread: int = 2
    ) -> None:
        """``rows``: a mask of the recording's rows to replay (default: every usable one); commands come from all rows."""
        if tuple(recording.joints) != tuple(replay.joints):
            raise ValueError(f"replay model motors {replay.joints} differ from the log's {recording.joints}")
        self.replay, self.recording = replay, recording
        self.dt = float(replay.model.opt.timestep)
        self.chunks = _chunks(recording, recording.usable if rows is None else recording.usable & rows, chunk_s, self.dt)
        self.rows = np.concatenate([chunk.rows[1:] for chunk in self.chunks])
        self._steps = max(chunk.steps for chunk in self.chunks)
        self._initial = np.stack(
            [replay.initial_state(recording.position[c.rows[0]], recording.velocity[c.rows[0]]) for c in self.chunks]
        )
        has_command = np.isfinite(recording.command_time) & np.isfinite(recording.command_position).all(axis=1)
        self._command_time = recording.command_time[has_command]
        self._command_ctrl = replay.controls(
            recording.command_position[has_command], recording.command_kp[has_command], recording.command_kd[has_command]
        )
        self._rollout = rollout.Rollout(nthread=nthread)
        self._datas = [mujoco.MjData(replay.model) for _ in range(max(nthread, 1))]

    def close(self) -> None:
        self._rollout.close()

    def __enter__(self) -> "Replayer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def controls(self, latency: float) -> np.ndarray:
        """(n_chunks, steps, nu): the command in force during each physics step, with ``latency`` seconds of delay."""
        out = np.empty((len(self.chunks), self._steps, self.replay.model.nu))
        for i, chunk in enumerate(self.chunks):
            starts = chunk.start_time + self.dt * np.arange(self._steps) - latency
            out[i] = self._blended(starts)
        return out

    def _blended(self, starts: np.ndarray) -> np.ndarray:
        """Commands in force over steps beginning at ``starts`` (on the command clock), a switch blended by time share."""
        times, ctrl = self._command_time, self._command_ctrl
        now = np.maximum(np.searchsorted(times, starts, side="right") - 1, 0)
        after = np.maximum(np.searchsorted(times, starts + self.dt, side="right") - 1, 0)
        share = np.where(after != now, (starts + self.dt - times[after]) / self.dt, 0.0)
        return ctrl[now] + share[:, None] * (ctrl[after] - ctrl[now])

    def predict(self, models: Sequence[mujoco.MjModel], latencies: Sequence[float]) -> Prediction:
        """Every chunk on every model (each with its own latency, s), sampled at the reading times."""
        n_models, n_chunks = len(models), len(self.chunks)
        controls = {lat: self.controls(lat) for lat in set(float(v) for v in latencies)}
        control = np.concatenate([controls[float(lat)] for lat in latencies])
        state, _ = self._rollout.rollout(
            [m for m in models for _ in range(n_chunks)],
            self._datas,
            np.tile(self._initial, (n_models, 1)),
            control,
        )
        state = state.reshape(n_models, n_chunks, self._steps, -1)
        model = self.replay.model
        qpos = state[..., 1 : 1 + model.nq][..., self.replay.qpos_adr]
        qvel = state[..., 1 + model.nq : 1 + model.nq + model.nv][..., self.replay.dof_adr]
        positions, velocities = [], []
        for c, chunk in enumerate(self.chunks):
            where = (self.recording.read_time[chunk.rows[1:]] - chunk.start_time) / self.dt
            start_q = self.recording.position[chunk.rows[0]]
            start_dq = self.recording.velocity[chunk.rows[0]]
            positions.append(_sample(qpos[:, c], start_q, where))
            velocities.append(_sample(qvel[:, c], start_dq, where))
        return Prediction(np.concatenate(positions, axis=1), np.concatenate(velocities, axis=1))

    def measured(self) -> tuple[np.ndarray, np.ndarray]:
        """The readings the predictions stand beside: (n_rows, n_motors) positions and velocities."""
        return self.recording.position[self.rows], self.recording.velocity[self.rows]


def _sample(trajectory: np.ndarray, start: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Linear interpolation of (n_models, steps, n) states (after each step) at fractional step counts ``where``.

    ``where`` = 0 is the start state itself; step ``i`` ends at ``where = i + 1``.
    """
    full = np.concatenate([np.broadcast_to(start, (trajectory.shape[0], 1, len(start))), trajectory], axis=1)
    low = np.clip(np.floor(where).astype(int), 0, full.shape[1] - 2)
    frac = (where - low)[None, :, None]
    return full[:, low] + frac * (full[:, low + 1] - full[:, low])


def _chunks(recording: Recording, rows: np.ndarray, chunk_s: float, dt: float) -> list[Chunk]:
    """Consecutive ``rows`` from ``MAX_LATENCY_S`` after the first command on, cut at a gap and into equal chunks of at most ``chunk_s``."""
    first_command = np.nanmin(recording.command_time)
    usable = np.flatnonzero(rows & (recording.read_time >= first_command + MAX_LATENCY_S))
    breaks = np.flatnonzero(np.diff(usable) > 1) + 1
    chunks: list[Chunk] = []
    for run in np.split(usable, breaks):
        times = recording.read_time[run]
        pieces = max(1, int(np.ceil((times[-1] - times[0]) / chunk_s)))  # equal lengths: every chunk is padded to the longest
        piece = np.minimum(np.floor((times - times[0]) / (times[-1] - times[0] + 1e-9) * pieces).astype(int), pieces - 1)
        for label in np.unique(piece):
            rows = run[piece == label]
            if len(rows) < 2:
                continue
            start = float(recording.read_time[rows[0]])
            steps = int(np.ceil((recording.read_time[rows[-1]] - start) / dt)) + 1
            chunks.append(Chunk(rows=rows, start_time=start, steps=steps))
    if not chunks:
        raise ValueError(f"{recording.path}: no two consecutive usable rows to replay")
    return chunks
