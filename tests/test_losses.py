"""Each adversarial loss against its paper's formula, and how each reads D's output."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.core import losses

LOGITS = jnp.array([-100.0, -20.0, -3.0, -0.5, 0.0, 0.7, 4.0, 20.0, 100.0])
REAL = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
FAKE = np.array([2.0, -1.0, 0.3, -4.0, 0.0])


def sigmoid64(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


# Each paper's formula in float64 numpy, on D's raw outputs.
D_FORMULAS = {
  "bce": lambda r, f: -np.mean(np.log(sigmoid64(r))) - np.mean(np.log(1 - sigmoid64(f))),
  "least_squares": lambda r, f: 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f**2),
  "wasserstein": lambda r, f: np.mean(f) - np.mean(r),
  "hinge": lambda r, f: np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)),
  "rpgan": lambda r, f: np.mean(np.log1p(np.exp(f - r))),
}
G_FORMULAS = {
  "minimax": lambda f, r: np.mean(np.log(1 - sigmoid64(f))),
  "non_saturating": lambda f, r: -np.mean(np.log(sigmoid64(f))),
  "least_squares": lambda f, r: 0.5 * np.mean((f - 1) ** 2),
  "wasserstein": lambda f, r: -np.mean(f),
  "hinge": lambda f, r: -np.mean(f),
  "rpgan": lambda f, r: np.mean(np.log1p(np.exp(r - f))),
}


# How each D loss reads D's raw output.
D_OUTPUTS = {
  "bce": "probability",
  "least_squares": "critic",
  "wasserstein": "critic",
  "hinge": "critic",
  "rpgan": "critic",
}


def test_every_registered_loss_has_a_formula_test():
  assert set(losses.D_LOSSES) == set(D_FORMULAS) == set(D_OUTPUTS)
  assert set(losses.G_LOSSES) == set(G_FORMULAS)


def test_every_d_loss_has_a_registered_g_partner_for_auto():
  assert set(losses.AUTO_G) == set(losses.D_LOSSES)
  for d in losses.D_LOSSES:
    losses.G_LOSSES.get(losses.auto_partner(d))


@pytest.mark.parametrize("name", sorted(D_FORMULAS))
def test_discriminator_loss_is_its_papers_formula(name):
  value = losses.D_LOSSES.get(name)(jnp.asarray(REAL), jnp.asarray(FAKE))
  np.testing.assert_allclose(value, D_FORMULAS[name](REAL, FAKE), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(G_FORMULAS))
def test_generator_loss_is_its_papers_formula(name):
  value = losses.G_LOSSES.get(name)(jnp.asarray(FAKE), jnp.asarray(REAL))
  np.testing.assert_allclose(value, G_FORMULAS[name](FAKE, REAL), rtol=1e-6)


def test_rpgan_pairs_each_real_with_its_fake():
  # Relativistic pairing: permuting the fakes against the reals changes the loss.
  r, f = jnp.asarray(REAL), jnp.asarray(FAKE)
  d = losses.D_LOSSES.get("rpgan")
  assert float(d(r, f)) != pytest.approx(float(d(r, f[::-1])))
  assert losses.G_LOSSES.get("rpgan").needs_real
  assert not losses.G_LOSSES.get("non_saturating").needs_real


@pytest.mark.parametrize("name", sorted(D_FORMULAS))
def test_equilibrium_is_the_loss_when_d_cannot_tell(name):
  loss = losses.D_LOSSES.get(name)
  out = 0.0 if loss.output == "probability" else (loss.indifferent or 0.3)  # raw output
  same = jnp.full((4,), out)
  if loss.equilibrium is not None:
    np.testing.assert_allclose(loss(same, same), loss.equilibrium, rtol=1e-6)
  if loss.indifferent is not None:
    np.testing.assert_allclose(loss.read(jnp.asarray(out)), loss.indifferent, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(D_OUTPUTS))
def test_only_sigmoid_losses_read_d_as_a_probability(name):
  raw = jnp.array([-2.0, 0.0, 3.0])
  loss = losses.D_LOSSES.get(name)
  assert loss.output == D_OUTPUTS[name]
  if loss.output == "probability":
    np.testing.assert_allclose(loss.read(raw), sigmoid64(raw), rtol=1e-6)
  else:
    np.testing.assert_array_equal(loss.read(raw), raw)


@pytest.mark.parametrize("name", sorted(G_FORMULAS))
def test_generator_losses_finite_with_finite_grads_at_extreme_logits(name):
  fn = losses.G_LOSSES.get(name)
  value, grad = jax.value_and_grad(lambda f: fn(f, -LOGITS))(LOGITS)
  assert np.isfinite(value) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", sorted(D_FORMULAS))
def test_discriminator_losses_finite_at_extreme_logits(name):
  fn = losses.D_LOSSES.get(name)
  value, grads = jax.value_and_grad(fn, argnums=(0, 1))(LOGITS, -LOGITS)
  assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)


def test_bce_is_exact_where_the_sigmoid_saturates():
  # A D that is confidently wrong pays ~100 nats per term, not inf.
  np.testing.assert_allclose(
    losses.discriminator_bce(jnp.array([-100.0]), jnp.array([100.0])), 200.0, rtol=1e-6
  )


def test_bce_matches_labels():
  logits = jnp.array([-2.0, 0.5, 3.0])
  np.testing.assert_allclose(
    losses.bce_with_logits(logits, 1.0), -np.log(sigmoid64(logits)), rtol=1e-6
  )
  np.testing.assert_allclose(
    losses.bce_with_logits(logits, 0.0), -np.log(1 - sigmoid64(logits)), rtol=1e-6
  )


def test_non_saturating_loss_keeps_gradient_where_minimax_saturates():
  # When D confidently rejects fakes (logit -10), log(1 - D) is flat but -log D is not:
  # the reason the paper recommends the non-saturating loss early in training.
  logit = jnp.array([-10.0])
  g_minimax = jax.grad(losses.generator_minimax)(logit)[0]
  g_ns = jax.grad(losses.generator_non_saturating)(logit)[0]
  assert abs(g_minimax) < 1e-4
  assert abs(g_ns) > 0.99
  assert g_minimax < 0 and g_ns < 0  # both push the fake logit up
