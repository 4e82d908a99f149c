"""TensorBoard event files for a run: namespaced scalars, the hyperparameters, the resolved config.

tensorboardX writes the standard event format, so ``tensorboard --logdir runs``
shows every run side by side, and the HParams tab compares runs by their
flattened config against their evaluation success.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import numpy as np
import yaml


def _tensorboardx_without_torch() -> ModuleType:
    """tensorboardX, imported without letting it import torch.

    tensorboardX imports torch whenever it is installed (the sb3 extra puts it
    there), only to name torch tensors in type hints; that took 1.1 s of every
    ``simrl train`` start on this machine, for a library simrl's own algorithms
    never touch. A ``None`` in ``sys.modules`` makes that one ``import torch``
    fail as if torch were absent; the entry is removed again, so a later real
    import (Stable-Baselines3) works as usual.
    """
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        return importlib.import_module("tensorboardX")
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module("tensorboardX")
    finally:
        del sys.modules["torch"]


SummaryWriter = _tensorboardx_without_torch().SummaryWriter
from tensorboardX.summary import hparams  # noqa: E402  (after the import above)

HPARAM_METRICS = ("eval/success_rate", "eval/final_distance_mean", "episode/return")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, bool | str | float | int]:
    """``{"ppo": {"epochs": 8}}`` → ``{"ppo.epochs": 8}``; lists and None become strings."""
    flat: dict[str, bool | str | float | int] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, str, int, float)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


class RunWriter:
    """One run's TensorBoard writer; ``step`` is always the env-step count, so resumed runs line up."""

    def __init__(self, logdir: Path):
        self._writer = SummaryWriter(logdir=str(logdir), flush_secs=10)

    def config(self, config: Mapping[str, Any], step: int) -> None:
        """The resolved config as text and as HParams (metrics: ``HPARAM_METRICS``)."""
        self._writer.add_text("config", f"```\n{yaml.safe_dump(dict(config), sort_keys=False)}\n```", step)
        for summary in hparams(flatten(config), {name: 0.0 for name in HPARAM_METRICS}):
            self._writer.file_writer.add_summary(summary)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Finite values only: an average over no finished episode is NaN and means "nothing to report"."""
        for tag, value in values.items():
            if math.isfinite(value):
                self._writer.add_scalar(tag, value, step)

    def histograms(self, samples: Mapping[str, np.ndarray], step: int) -> None:
        """One histogram per randomized column (N worlds each); columns every world shares are skipped."""
        for name, values in samples.items():
            for column in range(values.shape[1]):
                if np.ptp(values[:, column]) > 0:
                    self._writer.add_histogram(f"randomization/{name}/{column}", values[:, column], step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
