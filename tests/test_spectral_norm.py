"""Spectral normalisation: sigma against the SVD, the normalised net, and its state in training."""

import jax
import jax.numpy as jnp
import numpy as np

from conftest import tiny_gaussian_config
from jaxgan.core.train_step import make_train_step
from jaxgan.experiment import build_experiment
from jaxgan.models import spectral_norm


def params():
  rng = np.random.default_rng(0)
  return {
    "Dense_0": {
      "kernel": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32),
      "bias": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
    },
    "Conv_0": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 5)), jnp.float32)},
  }


def top_singular_value(w):
  return np.linalg.svd(np.asarray(w, np.float64).reshape(-1, w.shape[-1]), compute_uv=False)[0]


def test_power_iterations_converge_to_the_largest_singular_value():
  p = params()
  us = spectral_norm.init(p, jax.random.PRNGKey(0))
  assert jax.tree.map(jnp.shape, us) == {"Dense_0": {"kernel": (4,)}, "Conv_0": {"kernel": (5,)}}
  step = jax.jit(lambda us: spectral_norm.normalize(p, us, update=True))
  for _ in range(50):  # one power iteration per training step
    normed, us = step(us)
  for layer in ("Dense_0", "Conv_0"):
    w = p[layer]["kernel"]
    sigma, _ = spectral_norm.sigma(w, us[layer]["kernel"], update=False)
    np.testing.assert_allclose(float(sigma), top_singular_value(w), rtol=1e-4)
    np.testing.assert_allclose(top_singular_value(normed[layer]["kernel"]), 1.0, rtol=1e-4)
  np.testing.assert_array_equal(normed["Dense_0"]["bias"], p["Dense_0"]["bias"])  # 1-D: untouched


def test_evaluation_reuses_u_without_iterating():
  p = params()
  us = spectral_norm.init(p, jax.random.PRNGKey(0))
  _, same = spectral_norm.normalize(p, us, update=False)
  _, moved = spectral_norm.normalize(p, us, update=True)
  np.testing.assert_array_equal(same["Conv_0"]["kernel"], us["Conv_0"]["kernel"])
  assert not np.allclose(moved["Conv_0"]["kernel"], us["Conv_0"]["kernel"])


def test_gradient_flows_through_sigma_with_u_held_fixed():
  # d/dW of sum(W / sigma(W)) with u, v fixed: 1/sigma - sum(W) v u^T / sigma^2.
  w = params()["Dense_0"]["kernel"]
  u = spectral_norm.init({"k": w}, jax.random.PRNGKey(1))["k"]
  f = lambda w: jnp.sum(w / spectral_norm.sigma(w, u, update=False)[0])
  g = np.asarray(jax.grad(f)(w), np.float64)
  wn = np.asarray(w, np.float64)
  un = np.asarray(u, np.float64)
  v = wn @ un / np.linalg.norm(wn @ un)
  s = v @ wn @ un
  np.testing.assert_allclose(g, 1 / s - wn.sum() * np.outer(v, un) / s**2, rtol=1e-4, atol=1e-6)


def test_training_keeps_u_in_the_d_collections_and_iterates_it():
  c = tiny_gaussian_config(d_steps=2)
  c.model.d_spectral_norm = True
  exp = build_experiment(c)
  state = exp.init_state()
  u0 = state.d.collections[spectral_norm.COLLECTION]
  assert set(u0) == {"Dense_0", "Dense_1"}  # hidden and output layer
  new, _ = jax.jit(make_train_step(exp.gan))(state, {"x": jnp.ones((2, 8, 1)) * 4.0})
  u1 = new.d.collections[spectral_norm.COLLECTION]
  # The hidden layer's u moved (one power iteration per D update); all stay unit vectors
  # (the output layer's u has one entry: +-1).
  assert not np.allclose(u0["Dense_0"]["kernel"], u1["Dense_0"]["kernel"])
  for b in jax.tree.leaves(u1):
    np.testing.assert_allclose(np.linalg.norm(b), 1.0, rtol=1e-5)
