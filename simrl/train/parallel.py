"""Data parallelism over devices: the env batch split along one mesh axis, everything else replicated.

One training iteration stays one jitted function written for the whole batch
(the global view); this module only says where its arrays live, and XLA's
SPMD partitioner splits the work to match:

- the env state is split along the env axis, so each device steps
  ``num_envs / devices`` worlds (``mjx`` partitions like any JAX code);
- the learner state (parameters, optimizer, normalizer, replay buffer) is
  replicated, so every device holds identical parameters;
- the algorithms split each minibatch along its sample axis (``split``), so
  each device computes the gradient of its share, and the mean over the
  minibatch becomes a cross-device all-reduce (Brax's ``pmean``, inserted by
  XLA); statistics such as the normalizer's mean and advantage normalization
  are reduced over the whole batch the same way.

Because the program is the single-device one with placement added, the
numbers are the single-device numbers up to float summation order: random
draws use JAX's partitionable threefry (a draw does not depend on how its
array is split), and PPO's minibatches come from the same global permutation.
On one device nothing is placed and the code path is exactly the plain
``jax.jit`` one.

The ``cpu`` backend's host callback sees the global batch: XLA gathers the
worlds to the first device, MuJoCo's thread pool steps them all, and the
results are split again. On one host that is what its thread pool wants
anyway; across hosts it steps every world on the first host, so use ``mjx``
there (docs/multi_device.md: launching on several hosts).
"""

from __future__ import annotations

import math
from typing import Any, Callable, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from simrl.errors import SimrlError

ENV_AXIS = "envs"
Tree = TypeVar("Tree")
IterationFn = Callable[..., tuple[Any, ...]]


class DataParallel:
    """A 1-D mesh over ``devices``; with one device every method is the identity (or plain ``jax.jit``)."""

    def __init__(self, devices: list[jax.Device] | None = None):
        self.devices = devices or jax.devices()[:1]
        self._mesh = Mesh(np.asarray(self.devices), (ENV_AXIS,))
        self._replicated = NamedSharding(self._mesh, PartitionSpec())

    @classmethod
    def for_envs(cls, num_envs: int, devices: int | None = None) -> "DataParallel":
        """The first ``devices`` of ``jax.devices()`` (None: all of them), refusing a batch they cannot split evenly."""
        available = jax.devices()
        count = len(available) if devices is None else devices
        if not 1 <= count <= len(available):
            raise SimrlError(f"--devices {count}: JAX sees {len(available)} device(s) ({available[0].platform}); allowed 1 to {len(available)}")
        parallel = cls(available[:count])
        parallel.check_divides(num_envs, "num_envs")
        return parallel

    @property
    def count(self) -> int:
        return len(self.devices)

    def check_divides(self, size: int, what: str) -> None:
        """Each device must get an equal share: SPMD programs have one shape per device."""
        if size % self.count:
            raise SimrlError(f"{what} = {size} is not divisible by the {self.count} devices; use a multiple of {self.count} or fewer devices (--devices)")

    def split(self, tree: Tree, axis: int = 0) -> Tree:
        """Inside jit: every leaf of ``tree`` split over the devices along ``axis`` (the per-device share of a batch)."""
        if self.count == 1:
            return tree
        spec = PartitionSpec(*(None,) * axis, ENV_AXIS)
        return jax.lax.with_sharding_constraint(tree, NamedSharding(self._mesh, spec))

    def env_shardings(self, env_state: Any, num_envs: int) -> Any:
        """Per leaf of an env state (arrays or shape structs): split when its leading axis is the env axis, else replicated.

        Decided by shape because the env state mixes per-world arrays with
        shared ones (the PRNG key); a leaf of another kind whose leading size
        happens to equal ``num_envs`` would only be split needlessly, not wrongly.
        Empty leaves (a command history of length 0) stay replicated: XLA
        does not keep a split placement on an array with no elements.
        """
        split = NamedSharding(self._mesh, PartitionSpec(ENV_AXIS))

        def placement(x: Any) -> NamedSharding:
            return split if x.ndim and x.shape[0] == num_envs and math.prod(x.shape) else self._replicated

        return jax.tree_util.tree_map(placement, env_state)

    def replicate(self, tree: Tree) -> Tree:
        """Outside jit: a copy of ``tree`` on every device (agents and keys before the first iteration).

        The values go through host memory because JAX only places host data
        on devices of other processes (each process puts its own copies).
        """
        if self.count == 1:
            return tree

        def put(x: Any) -> Any:
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
            return jax.device_put(np.asarray(x), self._replicated)

        return jax.tree_util.tree_map(put, tree)

    def to_host(self, tree: Tree) -> Tree:
        """Outside jit: numpy copies of ``tree``, split leaves gathered from every process (all must call it)."""
        if self.count == 1:
            return tree
        return multihost_utils.process_allgather(tree, tiled=True)

    def reset(self, reset: Callable[[jax.Array], Any], key: jax.Array, num_envs: int) -> Any:
        """``reset(key)`` jitted so that the env state is created already split over the devices."""
        if self.count == 1:
            return jax.jit(reset)(key)
        shardings = self.env_shardings(jax.eval_shape(reset, key), num_envs)
        return jax.jit(reset, out_shardings=shardings)(self.replicate(key))

    def jit_iteration(self, iteration: IterationFn, env_state: Any, num_envs: int, donate_agent: bool = False) -> IterationFn:
        """``iteration(agent, env_state, key) -> (agent, env_state, *rest)`` jitted with the env state split and the rest replicated.

        The outputs are pinned to the same placement as the inputs, so each
        call's results feed the next without a copy (and the donated agent's
        buffers are reused).
        """
        donate = (0,) if donate_agent else ()
        if self.count == 1:
            return jax.jit(iteration, donate_argnums=donate)
        envs = self.env_shardings(env_state, num_envs)

        def placed(agent: Any, env_state: Any, key: jax.Array) -> tuple[Any, ...]:
            agent, env_state, *rest = iteration(agent, env_state, key)
            return (jax.lax.with_sharding_constraint(agent, self._replicated), jax.lax.with_sharding_constraint(env_state, envs), *rest)

        return jax.jit(placed, in_shardings=(self._replicated, envs, self._replicated), donate_argnums=donate)
