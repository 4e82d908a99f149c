"""BackgroundCompile: the compilation a training start overlaps with its other work is the one its calls reuse."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simrl.train.background_compile import BackgroundCompile

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def backend_compiles():
    """How many XLA compilations happen while the test runs (a list that grows)."""
    seen: list[float] = []

    def listener(event: str, duration: float, **_: object) -> None:
        if event == BACKEND_COMPILE:
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listener)


def test_a_jitted_call_after_wait_compiles_nothing_again(backend_compiles):
    step = jax.jit(lambda params, x: {"y": jnp.tanh(x @ params["w"]).sum(axis=1) + params["b"]})
    params = {"w": jnp.ones((5, 7)), "b": jnp.zeros(())}
    x = np.arange(15.0, dtype=np.float32).reshape(3, 5)
    compiling = BackgroundCompile(step, params, x)
    assert compiling.wait() is not None
    compiled_before_call = len(backend_compiles)
    assert compiled_before_call >= 1
    result = step(params, x)
    assert len(backend_compiles) == compiled_before_call  # the call reused the background compilation
    np.testing.assert_allclose(result["y"], np.tanh(x @ np.ones((5, 7))).sum(axis=1), rtol=1e-6)


def test_arrays_may_be_deleted_while_it_compiles():
    params = jnp.ones((4, 4))
    compiling = BackgroundCompile(jax.jit(lambda p: p * 2), params)
    params.delete()  # only shapes were kept
    assert compiling.wait() is not None


def test_a_failing_compilation_leaves_the_error_to_the_callers_own_call():
    def wrong_shapes(a, b):
        return a @ b

    step = jax.jit(wrong_shapes)
    a, b = jnp.ones((2, 3)), jnp.ones((2, 3))
    compiling = BackgroundCompile(step, a, b)
    assert compiling.wait() is None
    with pytest.raises(TypeError, match="dot_general"):
        step(a, b)
