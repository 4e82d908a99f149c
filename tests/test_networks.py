"""mlp_init: orthogonal weights drawn from the key, reproducibly."""

from __future__ import annotations

import jax
import numpy as np

from simrl.train.networks import mlp_init


def test_weights_are_orthogonal_with_the_asked_gains():
    layers = mlp_init(jax.random.key(3), [20, 64, 64, 6], last_scale=0.01)
    assert [layer["w"].shape for layer in layers] == [(20, 64), (64, 64), (64, 6)]
    for layer, gain in zip(layers, [np.sqrt(2.0), np.sqrt(2.0), 0.01]):
        w = np.asarray(layer["w"], np.float64) / gain
        narrow = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T  # orthonormal columns when tall, rows when wide
        np.testing.assert_allclose(narrow, np.eye(min(w.shape)), atol=1e-5)
        assert layer["w"].dtype == np.float32
        np.testing.assert_array_equal(layer["b"], 0.0)


def test_same_key_same_weights_other_key_other_weights():
    first, again, other = (mlp_init(jax.random.key(k), [8, 16, 2]) for k in (1, 1, 2))
    np.testing.assert_array_equal(first[0]["w"], again[0]["w"])
    assert not np.allclose(first[0]["w"], other[0]["w"])
