"""Semantics of the compiled step: Algorithm 1's k D updates, g_steps G updates, fusion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_gaussian_config
from jaxgan.training import build_experiment
from jaxgan.train_step import NEVER, make_fused_step, make_train_step


def setup(**train):
  exp = build_experiment(tiny_gaussian_config(**train))
  return exp, exp.init_state()


def batch(k, n=8, seed=0):
  return {"x": 4.0 + jax.random.normal(jax.random.PRNGKey(seed), (k, n, 1))}


def test_one_step_changes_params_and_stays_finite():
  exp, state = setup()
  step = jax.jit(make_train_step(exp.gan))
  new, metrics = step(state, batch(1))
  for old_p, new_p in ((state.g_params, new.g_params), (state.d_params, new.d_params)):
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), old_p, new_p)
    assert all(jax.tree.leaves(changed)), changed
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(new))
  assert set(metrics) >= {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"}
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert int(new.step) == 1
  np.testing.assert_array_equal(new.rng, state.rng)  # the base key; steps fold in their number


def test_k_discriminator_and_g_generator_updates_per_step():
  exp, state = setup(d_steps=3, g_steps=5)
  step = jax.jit(make_train_step(exp.gan, g_steps=5))
  new, _ = step(state, batch(3))
  # optax counts updates: k = 3 for D, g_steps = 5 for G, in one training step.
  assert int(new.d_opt_state.count) == 3
  assert int(new.g_opt_state.count) == 5
  assert int(new.step) == 1


def test_each_discriminator_update_uses_its_own_minibatch():
  exp, state = setup(d_steps=2)
  step = jax.jit(make_train_step(exp.gan))
  a, b = batch(1, seed=1)["x"][0], batch(1, seed=2)["x"][0]
  out_ab, _ = step(state, {"x": jnp.stack([a, b])})
  out_aa, _ = step(state, {"x": jnp.stack([a, a])})
  out_ba, _ = step(state, {"x": jnp.stack([b, a])})
  leaves = lambda s: np.concatenate([np.ravel(x) for x in jax.tree.leaves(s.d_params)])
  assert not np.allclose(leaves(out_ab), leaves(out_aa))  # the second minibatch is used
  assert not np.allclose(leaves(out_ab), leaves(out_ba))  # ...in order, update by update


def test_fused_steps_equal_sequential_steps():
  exp, state = setup(d_steps=2, g_steps=2)
  step = make_train_step(exp.gan, g_steps=2)
  fused = jax.jit(make_fused_step(step, exp.pipeline.materialize))
  inputs = exp.pipeline.host_inputs(0, 4)
  four, m4 = fused(state, inputs, None)
  seq = state
  losses = []
  for i in range(4):
    seq, m = fused(seq, jax.tree.map(lambda x: x[i:i + 1], inputs), None)
    losses.append(float(m["d_loss"]))
  for a, b in zip(jax.tree.leaves(four), jax.tree.leaves(seq)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
  assert int(four.step) == 4
  np.testing.assert_allclose(float(m4["d_loss"]), np.mean(losses), rtol=1e-5)
  assert int(m4["first_bad_step"]) == int(NEVER)


def test_fused_step_reports_first_nonfinite_step():
  exp, state = setup()
  step = make_train_step(exp.gan)

  def poisoned(state, batch):  # data turns to NaN from the third step on
    x = jnp.where(state.step >= 2, jnp.nan, batch["x"])
    return step(state, {"x": x})

  fused = jax.jit(make_fused_step(poisoned, exp.pipeline.materialize))
  _, metrics = fused(state, exp.pipeline.host_inputs(0, 4), None)
  assert int(metrics["first_bad_step"]) == 3  # the step that *completed* as step 3
  assert np.isnan(float(metrics["bad_values"]["d_loss"]))


def test_fused_step_reports_values_beyond_the_divergence_bound():
  """Adam at lr 1e8 once ran to the end with loss ~1e29: finite values can diverge too."""
  exp, state = setup()
  step = make_train_step(exp.gan)

  def exploding(state, batch):  # G's gradient norm is finite but huge from the third step on
    state, metrics = step(state, batch)
    return state, {**metrics, "g_grad_norm": jnp.where(state.step >= 3, 1e20, metrics["g_grad_norm"])}

  bounded = jax.jit(make_fused_step(exploding, exp.pipeline.materialize, divergence_bound=1e8))
  _, metrics = bounded(state, exp.pipeline.host_inputs(0, 4), None)
  values = np.array([float(v) for v in metrics["bad_values"].values()])
  assert int(metrics["first_bad_step"]) == 3
  assert np.all(np.isfinite(values)) and np.max(np.abs(values)) > 1e8
  unbounded = jax.jit(make_fused_step(exploding, exp.pipeline.materialize))
  assert int(unbounded(state, exp.pipeline.host_inputs(0, 4), None)[1]["first_bad_step"]) == int(NEVER)


def test_ema_tracks_generator():
  exp, state = setup(ema_decay=0.5)
  assert state.g_ema_params is not None
  new, _ = jax.jit(make_train_step(exp.gan))(state, batch(1))
  expected = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, state.g_ema_params, new.g_params)
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(new.g_ema_params)):
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_ema_by_half_life_follows_stylegan2():
  from jaxgan.ema import EMA
  ema = EMA(half_life_kimg=1.0, batch_size=100)
  np.testing.assert_allclose(float(ema.beta(jnp.int32(0))), 0.5 ** (100 / 1000), rtol=1e-6)
  ramp = EMA(half_life_kimg=1.0, rampup=0.05, batch_size=100)
  # After 10 steps (1,000 images) the ramped half-life is 50 images: beta = 0.5 ** 2.
  np.testing.assert_allclose(float(ramp.beta(jnp.int32(10))), 0.25, rtol=1e-6)
  assert float(ramp.beta(jnp.int32(0))) == 0.0  # the first step copies the weights
  np.testing.assert_allclose(float(ramp.beta(jnp.int32(10_000))), 0.5 ** (100 / 1000), rtol=1e-6)
  # Half-life: after H images at constant beta the old weights weigh one half.
  np.testing.assert_allclose(float(ema.beta(jnp.int32(5))) ** (1000 / 100), 0.5, rtol=1e-5)


@pytest.mark.parametrize("loss,read", [("bce", jax.nn.sigmoid), ("wasserstein", lambda x: x),
                                       ("least_squares", lambda x: x)])
def test_d_outputs_are_reported_as_the_loss_reads_them(loss, read):
  from jaxgan.gan import d_forward, discriminate
  c = tiny_gaussian_config()
  c.loss.d = loss  # loss.g = auto
  exp = build_experiment(c)
  state = exp.init_state()
  x = batch(1)["x"]
  raw, _ = d_forward(exp.gan, state.d_params, state.d_collections, x[0], None, train=False)
  np.testing.assert_allclose(discriminate(exp.gan, state, x[0]), read(raw), rtol=1e-6)
  _, metrics = jax.jit(make_train_step(exp.gan))(state, {"x": x})
  # d_real is D's mean output on the real batch before the update, as the loss reads it.
  np.testing.assert_allclose(float(metrics["d_real"]), float(jnp.mean(read(raw))), rtol=1e-5)
  assert "d_loss/adv" in metrics and "lr/d" in metrics and "lr/g" in metrics
