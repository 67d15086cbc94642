import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses

LOGITS = jnp.array([-100.0, -20.0, -3.0, -0.5, 0.0, 0.7, 4.0, 20.0, 100.0])


def sigmoid64(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_discriminator_bce_is_the_textbook_formula():
  real = jnp.array([-3.0, -0.5, 0.0, 0.7, 4.0])
  fake = jnp.array([2.0, -1.0, 0.3, -4.0, 0.0])
  d_real, d_fake = sigmoid64(real), sigmoid64(fake)
  textbook = -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))
  np.testing.assert_allclose(losses.discriminator_bce(real, fake), textbook, rtol=1e-6)


def test_generator_losses_are_the_textbook_formulas():
  fake = jnp.array([-3.0, -0.5, 0.0, 0.7, 4.0])
  d = sigmoid64(fake)
  np.testing.assert_allclose(losses.generator_minimax(fake), np.mean(np.log(1 - d)), rtol=1e-6)
  np.testing.assert_allclose(losses.generator_non_saturating(fake), -np.mean(np.log(d)), rtol=1e-6)


def test_bce_matches_labels():
  l = jnp.array([-2.0, 0.5, 3.0])
  np.testing.assert_allclose(losses.bce_with_logits(l, 1.0), -np.log(sigmoid64(l)), rtol=1e-6)
  np.testing.assert_allclose(losses.bce_with_logits(l, 0.0), -np.log(1 - sigmoid64(l)), rtol=1e-6)


@pytest.mark.parametrize("name", ["minimax", "non_saturating", "hinge"])
def test_generator_losses_finite_with_finite_grads_at_extreme_logits(name):
  fn = losses.G_LOSSES.get(name)
  value, grad = jax.value_and_grad(fn)(LOGITS)
  assert np.isfinite(value) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", ["bce", "hinge"])
def test_discriminator_losses_finite_at_extreme_logits(name):
  fn = losses.D_LOSSES.get(name)
  value, grads = jax.value_and_grad(fn, argnums=(0, 1))(LOGITS, -LOGITS)
  assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)
  # The extreme value itself is exact: a D that is confidently wrong pays ~100 nats.
  np.testing.assert_allclose(losses.discriminator_bce(jnp.array([-100.0]), jnp.array([100.0])), 200.0,
                             rtol=1e-6)


def test_non_saturating_loss_keeps_gradient_where_minimax_saturates():
  # When D confidently rejects fakes (logit -10), log(1 - D) is flat but -log D is not:
  # the reason the paper recommends the non-saturating loss early in training.
  l = jnp.array([-10.0])
  g_minimax = jax.grad(losses.generator_minimax)(l)[0]
  g_ns = jax.grad(losses.generator_non_saturating)(l)[0]
  assert abs(g_minimax) < 1e-4
  assert abs(g_ns) > 0.99
  # Both push the fake logit up (descent direction is -grad > 0).
  assert g_minimax < 0 and g_ns < 0
