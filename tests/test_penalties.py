"""Penalties against finite differences, lazy regularization, LeCam's state, and the spec parser."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.core import objectives, penalties
from jaxgan.errors import ConfigError

W = np.random.default_rng(0).normal(size=(3, 5)) * 0.7


def d_numpy(x):
  """A smooth nonlinear 'discriminator' on R^3, in float64."""
  return np.sum(np.tanh(x @ W), axis=-1) + 0.1 * np.sum(x**2, axis=-1)


def d_jax(x, y, key):
  del y, key
  return jnp.sum(jnp.tanh(x @ jnp.asarray(W, jnp.float32)), axis=-1) + 0.1 * jnp.sum(x**2, axis=-1)


def fd_grad_norms(points, h=1e-5):
  points = np.asarray(points, np.float64)
  grads = np.zeros_like(points)
  for j in range(points.shape[1]):
    e = np.zeros(points.shape[1])
    e[j] = h
    grads[:, j] = (d_numpy(points + e) - d_numpy(points - e)) / (2 * h)
  return np.linalg.norm(grads, axis=1)


def context(**kw):
  rng = np.random.default_rng(1)
  real = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
  fake = jnp.asarray(rng.normal(2.0, 0.5, size=(8, 3)), jnp.float32)
  base = dict(
    d=d_jax,
    real_x=real,
    real_y=None,
    fake_x=fake,
    fake_y=None,
    real_out=d_jax(real, None, None),
    fake_out=d_jax(fake, None, None),
    key=jax.random.PRNGKey(3),
    step=jnp.int32(0),
    update=jnp.int32(0),
  )
  base.update(kw)
  return objectives.TermContext(**base)


def penalty(name, ctx):
  loss, metrics = penalties.D_PENALTIES.get(name).fn(ctx)
  return float(loss), {k: float(v) for k, v in metrics.items()}


@pytest.mark.parametrize(
  "name,points,centred",
  [
    ("gp", penalties.gp_points, "two"),
    ("gp_one_sided", penalties.gp_points, "one"),
    ("dragan", penalties.dragan_points, "two"),
  ],
)
def test_centred_gradient_penalties_match_finite_differences(name, points, centred):
  ctx = context()
  x = np.asarray(points(ctx))
  norms = fd_grad_norms(x)
  gap = norms - 1 if centred == "two" else np.maximum(norms - 1, 0)
  value, metrics = penalty(name, ctx)
  np.testing.assert_allclose(value, np.mean(gap**2), rtol=1e-4)
  np.testing.assert_allclose(metrics["grad_norm"], norms.mean(), rtol=1e-4)
  assert np.mean(gap**2) > 0.01  # the test points are not trivially on the target


def test_zero_centred_gp_is_the_squared_norm_on_interpolates():
  ctx = context()
  norms = fd_grad_norms(penalties.gp_points(ctx))
  value, metrics = penalty("gp0", ctx)
  np.testing.assert_allclose(value, np.mean(norms**2), rtol=1e-4)
  np.testing.assert_allclose(metrics["grad_norm"], norms.mean(), rtol=1e-4)


def test_maxgp_is_the_largest_squared_norm_on_interpolates():
  ctx = context()
  norms = fd_grad_norms(penalties.gp_points(ctx))
  value, metrics = penalty("maxgp", ctx)
  np.testing.assert_allclose(value, np.max(norms**2), rtol=1e-4)
  np.testing.assert_allclose(metrics["grad_norm"], norms.mean(), rtol=1e-4)
  assert np.max(norms**2) > 1.2 * np.mean(norms**2)  # not the mean


def test_gp_points_lie_between_real_and_fake():
  ctx = context()
  x = np.asarray(penalties.gp_points(ctx))
  real, fake = np.asarray(ctx.real_x), np.asarray(ctx.fake_x)
  t = (x - fake) / (real - fake)  # the same weight for every coordinate of an example
  np.testing.assert_allclose(t, np.repeat(t[:, :1], 3, axis=1), rtol=1e-4, atol=1e-5)
  assert (t >= 0).all() and (t <= 1).all() and t.std() > 0.1


def test_dragan_perturbs_real_data_by_at_most_half_its_std():
  ctx = context()
  x, real = np.asarray(penalties.dragan_points(ctx)), np.asarray(ctx.real_x)
  delta = x - real
  assert (delta >= 0).all() and delta.max() <= 0.5 * real.std() + 1e-6 and delta.max() > 0


@pytest.mark.parametrize("name,where", [("r1", "real_x"), ("r2", "fake_x")])
def test_r1_r2_are_half_the_squared_gradient_norm(name, where):
  ctx = context()
  norms = fd_grad_norms(getattr(ctx, where))
  value, metrics = penalty(name, ctx)
  np.testing.assert_allclose(value, 0.5 * np.mean(norms**2), rtol=1e-4)
  np.testing.assert_allclose(metrics["grad_norm"], norms.mean(), rtol=1e-4)


def test_packed_gradient_norms_are_per_d_output():
  # PacGAN with m = 2: D scores pairs; a penalty's norm covers both examples of a pair.
  pair_d = lambda x, y, key: d_jax(x.reshape(-1, 2, 3), y, key).sum(-1)
  ctx = context(d=pair_d, group=2)
  g = penalties.input_gradients(ctx, ctx.real_x, None)
  assert g.shape == (4, 6)
  per_example = fd_grad_norms(ctx.real_x)
  np.testing.assert_allclose(
    np.linalg.norm(np.asarray(g), axis=1),
    np.sqrt(per_example[0::2] ** 2 + per_example[1::2] ** 2),
    rtol=1e-4,
  )


def test_lazy_term_runs_on_multiples_of_its_interval_scaled_by_it():
  term = objectives.Term(
    "r1", lambda ctx: (jnp.float32(3.0), {"seen": jnp.float32(1.0)}), weight=2.0, every=4
  )
  adv = objectives.Term("adv", lambda ctx: (jnp.float32(0.5), {}))

  @jax.jit
  def run(update):
    ctx = context(update=update)
    keys = {"adv": ctx.key, "r1": ctx.key}
    return objectives.evaluate((adv, term), ctx, keys, {}, "d")[:2]

  for u in range(9):
    total, metrics = run(jnp.int32(u))
    expected = 2.0 * 4 * 3.0 if u % 4 == 0 else 0.0
    assert float(metrics["d_loss/r1"]) == expected, u
    assert float(metrics["d/r1/seen"]) == (4.0 if u % 4 == 0 else 0.0)  # x N: the mean over N is 1
    assert float(total) == 0.5 + expected
    assert float(metrics["d_loss"]) == float(total)


@pytest.mark.parametrize("preset, decay", [("biggan", 0.9), ("studiogan", 0.99)])
def test_lecam_updates_its_anchors_first_and_starts_after_1000_steps(preset, decay):
  # The BigGAN-CIFAR release's schedule (studiogan: decay 0.99, jaxgan's before 2026-12-07): the
  # moving averages take this batch first (decay 0 before step 1,000, then `decay`), and
  # the regularizer is added after step 1,000. test_lecam.py: against the releases.
  real_out, fake_out = jnp.array([1.0, 2.0, -1.0]), jnp.array([-2.0, 0.5, 0.0])
  state = {"real": jnp.float32(0.8), "fake": jnp.float32(-0.2)}
  lecam = penalties.D_PENALTIES.get("lecam")
  p = dataclasses.replace(
    lecam,
    fn=functools.partial(lecam.fn, lecam_preset=preset),
    next_state=functools.partial(lecam.next_state, lecam_preset=preset),
  )
  early = context(real_out=real_out, fake_out=fake_out, state=state, step=jnp.int32(10))
  value, metrics = p.fn(early)
  assert float(value) == 0.0
  anchors = p.next_state(early)
  np.testing.assert_allclose([anchors["real"], anchors["fake"]], [2 / 3, -0.5], rtol=1e-6)
  np.testing.assert_allclose(
    [metrics["anchor_real"], metrics["anchor_fake"]], [2 / 3, -0.5], rtol=1e-6
  )
  late = context(real_out=real_out, fake_out=fake_out, state=state, step=jnp.int32(1001))
  a_real, a_fake = decay * 0.8 + (1 - decay) * 2 / 3, decay * -0.2 + (1 - decay) * -0.5
  anchors = p.next_state(late)
  np.testing.assert_allclose([anchors["real"], anchors["fake"]], [a_real, a_fake], rtol=1e-6)
  value, _ = p.fn(late)
  expected = np.mean(np.maximum(np.array([1.0, 2.0, -1.0]) - a_fake, 0) ** 2) + np.mean(
    np.maximum(a_real - np.array([-2.0, 0.5, 0.0]), 0) ** 2
  )
  np.testing.assert_allclose(float(value), expected, rtol=1e-6)
  # Its gradient reaches D's outputs, not the anchors.
  g_real = jax.grad(lambda r: p.fn(dataclasses.replace(late, real_out=r))[0])(real_out)
  np.testing.assert_allclose(
    g_real, 2 * np.maximum(np.array([1.0, 2.0, -1.0]) - a_fake, 0) / 3, rtol=1e-5
  )


# Every registered penalty: its gradient in D's parameters against finite differences
# below, or the reason it is tested elsewhere. A new penalty must join one of the two.
FD_GRADIENT = ("gp", "gp_one_sided", "gp0", "dragan", "r1", "r2", "maxgp")
OTHER_GRADIENT = {
  "lecam": "its anchors are stop-gradient averages of D's outputs (test_lecam_... above)",
  "cr": "augments images: test_consistency.py checks its gradient reaches both sides",
  "bcr_real": "the same term as cr (test_consistency.py)",
  "bcr_fake": "the same term on fakes (test_consistency.py)",
  "zcr": "calls G: test_consistency.py checks its gradient reaches both sides",
}


def own_terms(registry):
  """The terms registered in jaxgan.core.penalties (other modules' are tested with them)."""
  return {n for n in registry if registry.get(n).fn.__module__ == penalties.__name__}


def test_every_penalty_is_in_a_gradient_table():
  assert not set(FD_GRADIENT) & set(OTHER_GRADIENT)
  assert set(FD_GRADIENT) | set(OTHER_GRADIENT) == own_terms(penalties.D_PENALTIES)


@pytest.mark.parametrize("name", FD_GRADIENT)
def test_penalty_gradients_reach_d_parameters(name):
  # D_theta(x) = theta * f(x): the penalty's derivative in theta against finite differences.
  def value(theta):
    d = lambda x, y, key: theta * d_jax(x, y, key)
    return penalties.D_PENALTIES.get(name).fn(context(d=d))[0]

  theta, h = 1.3, 1e-3
  fd = (float(value(theta + h)) - float(value(theta - h))) / (2 * h)
  np.testing.assert_allclose(float(jax.grad(value)(theta)), fd, rtol=2e-3)
  assert abs(fd) > 1e-3


def test_spec_parses_weights_and_intervals():
  parsed = objectives.parse_spec(" r1:10@16 , gp:0.5,lecam:0", penalties.D_PENALTIES, "x")
  assert parsed == [("r1", 10.0, 16), ("gp", 0.5, 1), ("lecam", 0.0, 1)]
  assert objectives.parse_spec("", penalties.D_PENALTIES, "x") == []


@pytest.mark.parametrize(
  "spec,message",
  [
    (
      "gp_onesided:1",
      "config.loss.d_penalties: unknown discriminator penalty 'gp_onesided'. "
      f"Did you mean 'gp_one_sided'? Valid choices: {', '.join(penalties.D_PENALTIES.names())}.",
    ),
    (
      "r1",
      "config.loss.d_penalties: 'r1' has no weight; write name:weight[@every], "
      "e.g. r1:10 or r1:10@16.",
    ),
    (
      "gp:big",
      "config.loss.d_penalties: weight 'big' of 'gp' is not a number; write "
      "name:weight[@every], e.g. gp:10@16.",
    ),
    ("gp:-1", "config.loss.d_penalties: weight of 'gp' must be a finite number >= 0, got -1."),
    ("r1:10@0", "config.loss.d_penalties: interval of 'r1' must be >= 1, got 0."),
    (
      "r1:10@x",
      "config.loss.d_penalties: interval 'x' of 'r1' is not an integer; write "
      "name:weight@every, e.g. r1:10@16.",
    ),
    ("r1:1,r1:2", "config.loss.d_penalties: 'r1' appears twice."),
  ],
)
def test_bad_specs_say_what_to_write(spec, message):
  with pytest.raises(ConfigError) as e:
    objectives.parse_spec(spec, penalties.D_PENALTIES, "config.loss.d_penalties")
  assert str(e.value) == message
