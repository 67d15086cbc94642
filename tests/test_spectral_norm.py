"""Spectral normalisation: sigma against the SVD, the normalised net, and its state in training."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_gaussian_config
from jaxgan.config import validate
from jaxgan.core.gan import apply_net, generate, player_weights
from jaxgan.core.train_step import make_train_step
from jaxgan.errors import ConfigError
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


ORDERS_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "spectral_norm_orders.npz")


def _jax_layout(a):
  """A torch weight ([out, in] or [out, in, kh, kw]) in flax's layout."""
  return a.T if a.ndim == 2 else a.transpose(2, 3, 1, 0)


def _jax_v(v, w):
  """torch's v (over in, kh, kw) over jaxgan's matrix rows (kh, kw, in)."""
  return v if w.ndim == 2 else v.reshape(w.shape[1:]).transpose(1, 2, 0).reshape(-1)


@pytest.mark.parametrize("layer", ["linear", "conv"])
@pytest.mark.parametrize("order", spectral_norm.ORDERS)
def test_each_order_equals_its_reference_in_training_and_evaluation(order, layer):
  """torch's parametrization and legacy spectral norms and BigGAN-PyTorch's SN (float64
  records by tools/spectral_norm_fixtures.py): three training forwards with the weight
  moving between them (held for the parametrization, which keeps v), then evaluation."""
  f = {
    k.split("/")[-1]: v
    for k, v in np.load(ORDERS_FIXTURE).items()
    if k.startswith(f"{order}/{layer}/")
  }
  w0 = f["w0"]

  def state_of(t):
    u = jnp.asarray(f[f"u{t}"], jnp.float32)
    if order != spectral_norm.LEGACY:
      return u
    return {"u": u, "v": jnp.asarray(_jax_v(f[f"v{t}"], w0), jnp.float32)}

  def normalized(w, state, update):
    sn, new = spectral_norm.normalize({"k": w}, {"k": state}, update=update, order=order)
    return sn["k"], new["k"]

  state = state_of(0)
  r = jnp.asarray(_jax_layout(f["r"]), jnp.float32)
  for t in range(3):
    w = jnp.asarray(_jax_layout(f[f"w{t}"]), jnp.float32)
    grad = jax.grad(lambda w, state=state: jnp.sum(normalized(w, state, True)[0] * r))(w)
    sn, state = normalized(w, state, True)
    np.testing.assert_allclose(sn, _jax_layout(f[f"sn{t}"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, _jax_layout(f[f"grad{t}"]), rtol=1e-4, atol=1e-5)
  for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(state_of(3)), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  moved = f["w2"] - (0.5 * f["grad2"] if order != spectral_norm.PARAMETRIZATION else 0)
  sn, kept = normalized(jnp.asarray(_jax_layout(moved), jnp.float32), state, False)
  np.testing.assert_allclose(sn, _jax_layout(f["eval"]), rtol=1e-5, atol=1e-6)
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), kept, state))


def test_the_orders_differ_by_half_an_iteration():
  """From the same u the legacy sigma lags: ||M^T n(M u)|| against ||M n(M^T n(M u))||."""
  w = params()["Dense_0"]["kernel"]
  u = spectral_norm.init({"k": w}, jax.random.PRNGKey(1))["k"]
  now, _ = spectral_norm.sigma(w, u, update=True)
  behind, _ = spectral_norm.sigma(w, u, update=True, order=spectral_norm.BIGGAN)
  m = np.asarray(w, np.float64)
  v = m @ u / np.linalg.norm(m @ u)
  np.testing.assert_allclose(float(behind), np.linalg.norm(m.T @ v), rtol=1e-5)
  u1 = m.T @ v / np.linalg.norm(m.T @ v)
  np.testing.assert_allclose(float(now), np.linalg.norm(m @ u1), rtol=1e-5)
  assert float(behind) < float(now) <= top_singular_value(w) * (1 + 1e-6)


def test_the_legacy_state_holds_v_and_torch_s_warmup_converges():
  p = params()
  legacy = spectral_norm.init(p, jax.random.PRNGKey(0), spectral_norm.LEGACY)
  assert jax.tree.map(jnp.shape, legacy["Conv_0"]["kernel"]) == {"u": (5,), "v": (18,)}
  w, s = p["Conv_0"]["kernel"], top_singular_value(p["Conv_0"]["kernel"])
  error = {}
  for warmup in (0, 15):
    u = spectral_norm.init(p, jax.random.PRNGKey(0), warmup=warmup)["Conv_0"]["kernel"]
    error[warmup] = abs(float(spectral_norm.sigma(w, u, update=False)[0]) - s) / s
  assert error[15] < 0.01 and error[15] < error[0] / 10, error


@pytest.mark.parametrize("order", spectral_norm.ORDERS)
def test_g_spectral_norm_iterates_in_g_updates_and_samples_in_evaluation(order):
  c = tiny_gaussian_config(d_steps=1)
  c.model.g_spectral_norm = True
  c.model.spectral_norm_order = order
  exp = build_experiment(c)
  state = exp.init_state()
  u0 = state.g.collections[spectral_norm.COLLECTION]
  assert set(u0) == {"Dense_0", "Dense_1"} and spectral_norm.COLLECTION not in state.d.collections
  new, _ = jax.jit(make_train_step(exp.gan))(state, {"x": jnp.ones((1, 8, 1)) * 4.0})
  moved = jax.tree.map(
    lambda a, b: not np.allclose(a, b), u0, new.g.collections[spectral_norm.COLLECTION]
  )
  assert any(jax.tree.leaves(moved["Dense_0"]))
  # sampling normalises G's weights with the kept state, without iterating
  x = generate(exp.gan, new, jax.random.PRNGKey(3), 4, use_ema=False)
  weights, kept = player_weights(exp.gan, "g", new.g.params, new.g.collections, update=False)
  want, _ = apply_net(
    exp.gan.nets.generator,
    weights,
    {},
    exp.gan.noise.sample(jax.random.split(jax.random.PRNGKey(3))[0], 4),
    None,
    train=False,
  )
  np.testing.assert_allclose(x, want, rtol=1e-6)
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), kept, new.g.collections))


def test_an_unknown_order_is_refused_in_one_line():
  c = tiny_gaussian_config()
  c.model.spectral_norm_order = "torch"
  with pytest.raises(ConfigError, match=r"^config.model.spectral_norm_order"):
    validate(c)
