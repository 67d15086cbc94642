"""Semantics of the compiled step: Algorithm 1's k D updates, g_steps G updates, fusion."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_gaussian_config
from jaxgan.core import streams
from jaxgan.core.train_step import (
  NEVER,
  StepContext,
  apply_gradients,
  d_update,
  g_update,
  make_fused_step,
  make_train_step,
  step_stream_names,
)
from jaxgan.experiment import build_experiment


def setup(**train):
  exp = build_experiment(tiny_gaussian_config(**train))
  return exp, exp.init_state()


def batch(k, n=8, seed=0):
  return {"x": 4.0 + jax.random.normal(jax.random.PRNGKey(seed), (k, n, 1))}


def test_one_step_changes_params_and_stays_finite():
  exp, state = setup()
  step = jax.jit(make_train_step(exp.gan))
  new, metrics = step(state, batch(1))
  for old_p, new_p in ((state.g.params, new.g.params), (state.d.params, new.d.params)):
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
  assert int(new.d.opt_state.count) == 3
  assert int(new.g.opt_state.count) == 5
  assert int(new.step) == 1


def test_each_discriminator_update_uses_its_own_minibatch():
  exp, state = setup(d_steps=2)
  step = jax.jit(make_train_step(exp.gan))
  a, b = batch(1, seed=1)["x"][0], batch(1, seed=2)["x"][0]
  out_ab, _ = step(state, {"x": jnp.stack([a, b])})
  out_aa, _ = step(state, {"x": jnp.stack([a, a])})
  out_ba, _ = step(state, {"x": jnp.stack([b, a])})
  leaves = lambda s: np.concatenate([np.ravel(x) for x in jax.tree.leaves(s.d.params)])
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
    seq, m = fused(seq, jax.tree.map(lambda x: x[i : i + 1], inputs), None)
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
    return state, {
      **metrics,
      "g_grad_norm": jnp.where(state.step >= 3, 1e20, metrics["g_grad_norm"]),
    }

  bounded = jax.jit(make_fused_step(exploding, exp.pipeline.materialize, divergence_bound=1e8))
  _, metrics = bounded(state, exp.pipeline.host_inputs(0, 4), None)
  values = np.array([float(v) for v in metrics["bad_values"].values()])
  assert int(metrics["first_bad_step"]) == 3
  assert np.all(np.isfinite(values)) and np.max(np.abs(values)) > 1e8
  unbounded = jax.jit(make_fused_step(exploding, exp.pipeline.materialize))
  assert int(unbounded(state, exp.pipeline.host_inputs(0, 4), None)[1]["first_bad_step"]) == int(
    NEVER
  )


def test_ema_tracks_generator():
  exp, state = setup(ema_decay=0.5)
  assert state.g_ema.params is not None
  new, _ = jax.jit(make_train_step(exp.gan))(state, batch(1))
  expected = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, state.g_ema.params, new.g.params)
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(new.g_ema.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_ema_leaves_training_unchanged_bit_for_bit():
  """Turning the EMA on only adds the average: G, D and their optimizers train exactly as
  without it (so a paper_code_ema run's raw/ metrics are paper_code's run)."""
  outs = []
  for decay in (0.0, 0.999):
    exp, state = setup(ema_decay=decay, d_steps=2)
    fused = jax.jit(make_fused_step(make_train_step(exp.gan), exp.pipeline.materialize))
    state, _ = fused(state, exp.pipeline.host_inputs(0, 6), None)
    outs.append(state.replace(g_ema=None))
  for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])):
    np.testing.assert_array_equal(a, b)


def test_ema_by_half_life_follows_stylegan2():
  from jaxgan.core.ema import EMA

  ema = EMA(half_life_kimg=1.0, batch_size=100)
  np.testing.assert_allclose(float(ema.beta(jnp.int32(0))), 0.5 ** (100 / 1000), rtol=1e-6)
  ramp = EMA(half_life_kimg=1.0, rampup=0.05, batch_size=100)
  # After 10 steps (1,000 images) the ramped half-life is 50 images: beta = 0.5 ** 2.
  np.testing.assert_allclose(float(ramp.beta(jnp.int32(10))), 0.25, rtol=1e-6)
  assert float(ramp.beta(jnp.int32(0))) == 0.0  # the first step copies the weights
  np.testing.assert_allclose(float(ramp.beta(jnp.int32(10_000))), 0.5 ** (100 / 1000), rtol=1e-6)
  # Half-life: after H images at constant beta the old weights weigh one half.
  np.testing.assert_allclose(float(ema.beta(jnp.int32(5))) ** (1000 / 100), 0.5, rtol=1e-5)


@pytest.mark.parametrize(
  "loss,read",
  [("bce", jax.nn.sigmoid), ("wasserstein", lambda x: x), ("least_squares", lambda x: x)],
)
def test_d_outputs_are_reported_as_the_loss_reads_them(loss, read):
  from jaxgan.core.gan import d_forward, discriminate

  c = tiny_gaussian_config()
  c.loss.d = loss  # loss.g = auto
  exp = build_experiment(c)
  state = exp.init_state()
  x = batch(1)["x"]
  raw, _ = d_forward(exp.gan, state.d.params, state.d.collections, x[0], None, train=False)
  np.testing.assert_allclose(discriminate(exp.gan, state, x[0]), read(raw), rtol=1e-6)
  _, metrics = jax.jit(make_train_step(exp.gan))(state, {"x": x})
  # d_real is D's mean output on the real batch before the update, as the loss reads it.
  np.testing.assert_allclose(float(metrics["d_real"]), float(jnp.mean(read(raw))), rtol=1e-5)
  assert "d_loss/adv" in metrics and "lr/d" in metrics and "lr/g" in metrics


# --- update_order = "simultaneous" (the 2014 paper's released code) -------------------------


def simultaneous_setup(d_pass="auto", num_classes=0, d_dropout=0.5, lr=0.1, **loss):
  """A tiny GAN built straight from the config (a labelled 1-D spec for conditional runs),
  plain SGD at a constant lr for both players."""
  from jaxgan.core.gan import build_gan, init_state
  from jaxgan.data.spec import DataSpec

  c = tiny_gaussian_config(d_pass=d_pass, update_order="simultaneous")
  c.model.update(conditional=num_classes > 0, d_dropout=d_dropout)
  c.loss.update(**loss)
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="sgd", lr=lr, momentum=0.0, schedule="constant")
  gan = build_gan(c, DataSpec(shape=(1,), num_classes=num_classes, name="gaussian_1d"))
  return gan, init_state(gan, jax.random.PRNGKey(3))


def labelled_batch(num_classes, n=8):
  b = batch(1, n)
  if num_classes:
    b["y"] = jax.random.randint(jax.random.PRNGKey(7), (1, n), 0, num_classes)
  return b


@pytest.mark.parametrize("d_pass,num_classes", [("joint", 0), ("separate", 3)])
def test_simultaneous_step_matches_a_hand_written_reference(d_pass, num_classes):
  from jaxgan.core.train_step import step_stream_names

  gan, state = simultaneous_setup(d_pass, num_classes)
  assert gan.joint_d_pass == (d_pass == "joint") and gan.conditional == bool(num_classes)
  assert (gan.noise.distribution, gan.noise.low, gan.noise.high) == ("uniform", 0.0, 1.0)
  b = labelled_batch(num_classes)
  new, metrics = jax.jit(make_train_step(gan, update_order="simultaneous"))(state, b)

  # The reference: one noise draw, one G(z), one D pass whose dropout masks both players see.
  keys = streams.derive(streams.step_key(state.rng, state.step), step_stream_names(gan, 1, 1))
  x, n = b["x"][0], b["x"].shape[1]
  y_real = b.get("y", [None])[0]
  z = jax.random.uniform(keys["d0/noise"], (n, 1))
  y_fake = jax.random.randint(keys["d0/labels"], (n,), 0, num_classes) if num_classes else None
  mask_real = streams.sub(keys["d0/real"], "dropout")
  mask_fake = streams.sub(keys["d0/fake"], "dropout")

  def D(dp, x, y, key):
    return gan.nets.discriminator.apply({"params": dp}, x, y, train=True, rngs={"dropout": key})

  def G(gp):
    return gan.nets.generator.apply({"params": gp}, z, y_fake, train=True)

  def outputs(dp, fake):
    if d_pass == "joint":
      y = None if y_fake is None else jnp.concatenate([y_real, y_fake])
      out = D(dp, jnp.concatenate([x, fake]), y, mask_real)
      return out[:n], out[n:]
    return D(dp, x, y_real, mask_real), D(dp, fake, y_fake, mask_fake)

  fake = G(state.g.params)  # held fixed in D's objective

  def d_objective(dp):  # -log D(x) - log(1 - D(G(z)))
    r, f = outputs(dp, fake)
    return jnp.mean(jax.nn.softplus(-r)) + jnp.mean(jax.nn.softplus(f))

  def g_objective(gp):  # non-saturating: -log D(G(z)), through the pre-update D
    return jnp.mean(jax.nn.softplus(-outputs(state.d.params, G(gp))[1]))

  sgd = lambda p, g: jax.tree.map(lambda a, b: a - 0.1 * b, p, g)
  d_ref = sgd(state.d.params, jax.grad(d_objective)(state.d.params))
  g_ref = sgd(state.g.params, jax.grad(g_objective)(state.g.params))
  for got, want in ((new.d.params, d_ref), (new.g.params, g_ref)):
    for a, b_ in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b_, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(metrics["d_loss"], d_objective(state.d.params), rtol=1e-6)
  np.testing.assert_allclose(metrics["g_loss"], g_objective(state.g.params), rtol=1e-6)
  assert int(new.d.opt_state.count) == int(new.g.opt_state.count) == 1 and int(new.step) == 1


def test_simultaneous_differs_from_alternating_only_in_the_generator_update():
  # D's update draws the same streams (d0/*) in both orders, so it is the same; G's is not:
  # simultaneous G sees the pre-update D and D's own fake batch and masks.
  gan, state = simultaneous_setup(d_penalties="gp:1")
  sim, m_sim = jax.jit(make_train_step(gan, update_order="simultaneous"))(state, batch(1))
  alt, m_alt = jax.jit(make_train_step(gan))(state, batch(1))
  assert set(m_sim) == set(m_alt)  # same metric keys, penalty terms included
  for a, b in zip(jax.tree.leaves(sim.d.params), jax.tree.leaves(alt.d.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  for k in ("d_loss", "d_loss/gp", "d_real", "d_fake", "d_grad_norm"):
    np.testing.assert_allclose(m_sim[k], m_alt[k], rtol=1e-6, err_msg=k)
  g_diff = max(
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(jax.tree.leaves(sim.g.params), jax.tree.leaves(alt.g.params))
  )
  assert g_diff > 1e-4
  # Simultaneous: G's objective reads the very outputs D's objective read.
  assert float(m_sim["g_d_fake"]) == float(m_sim["d_fake"])
  assert float(m_alt["g_d_fake"]) != float(m_alt["d_fake"])


def test_simultaneous_step_under_shard_map_matches_one_device():
  from jax.sharding import Mesh
  from jax.sharding import PartitionSpec as P

  gan, state = simultaneous_setup(d_dropout=0.0)  # dropout masks are drawn per device
  b = batch(1, n=16)
  single = jax.jit(make_train_step(gan, update_order="simultaneous"))
  sharded = jax.jit(
    jax.shard_map(
      make_train_step(gan, axis_name="batch", update_order="simultaneous"),
      mesh=Mesh(np.asarray(jax.devices()), ("batch",)),
      in_specs=(P(), {"x": P(None, "batch")}),
      out_specs=(P(), P()),
      check_vma=False,
    )
  )
  s1, s4 = state, state
  for _ in range(2):
    s1, m1 = single(s1, b)
    s4, m4 = sharded(s4, b)
  for a, b_ in zip(jax.tree.leaves(s1), jax.tree.leaves(s4)):
    np.testing.assert_allclose(np.asarray(b_), np.asarray(a), rtol=2e-5, atol=2e-6)
  for k in ("d_loss", "g_loss", "d_fake", "g_grad_norm"):
    np.testing.assert_allclose(m4[k], m1[k], rtol=2e-5, err_msg=k)


def test_simultaneous_refuses_more_than_one_update_per_player():
  from jaxgan import config as config_lib
  from jaxgan.errors import ConfigError

  with pytest.raises(ConfigError) as e:
    config_lib.validate(tiny_gaussian_config(update_order="simultaneous", d_steps=2))
  assert str(e.value) == (
    "config.train.update_order='simultaneous' takes one D and one G update from one forward "
    "pass, so it needs d_steps=1 and g_steps=1 (got 2 and 1); use "
    "update_order='alternating' for k > 1."
  )
  gan, state = simultaneous_setup()
  with pytest.raises(ConfigError, match=r"needs d_steps=1 and g_steps=1 \(got 1 and 2\)"):
    make_train_step(gan, g_steps=2, update_order="simultaneous")(state, batch(1))
  with pytest.raises(ConfigError, match="update_order='sequential' is not valid"):
    make_train_step(gan, update_order="sequential")(state, batch(1))
  with pytest.raises(ConfigError, match=r"needs d_steps=1 and g_steps=1 \(got 2 and 1\)"):
    make_train_step(gan, update_order="simultaneous")(state, batch(2))


def _context(exp, state, d_steps=1, g_steps=1):

  names = step_stream_names(exp.gan, d_steps, g_steps)
  keys = streams.derive(streams.step_key(state.rng, state.step), names)
  return StepContext(exp.gan, keys, state.step, None)


def test_each_players_update_moves_only_that_player_and_the_step_is_their_composition():

  exp, state = setup(d_steps=2)
  real = batch(2)

  def by_hand(state, real):
    ctx = _context(exp, state, d_steps=2)
    d, g = state.d, state.g
    for i in range(2):
      d, _ = d_update(ctx, d, g, {"x": real["x"][i]}, f"d{i}", state.step * 2 + i)
    g, _ = g_update(ctx, g, d, {"x": real["x"][1]}, "g0", state.step)
    return state.replace(step=state.step + 1, d=d, g=g)

  composed = jax.jit(by_hand)(state, real)
  stepped, _ = jax.jit(make_train_step(exp.gan))(state, real)
  for a, b in zip(jax.tree.leaves(composed), jax.tree.leaves(stepped), strict=True):
    np.testing.assert_array_equal(a, b)

  ctx = _context(exp, state)
  new_g, g_metrics = jax.jit(lambda s: g_update(ctx, s.g, s.d, {"x": real["x"][0]}, "g0", 0))(state)
  new_d, d_metrics = jax.jit(lambda s: d_update(ctx, s.d, s.g, {"x": real["x"][0]}, "d0", 0))(state)
  moved = lambda a, b: any(
    bool(jnp.any(x != y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
  )
  assert moved(new_g.params, state.g.params) and moved(new_d.params, state.d.params)
  assert int(new_g.opt_state.count) == int(new_d.opt_state.count) == 1
  assert {"g_loss", "g_loss/adv", "g_d_fake", "g_grad_norm", "lr/g"} <= set(g_metrics)
  assert {"d_loss", "d_loss/adv", "d_real", "d_fake", "d_grad_norm", "lr/d"} <= set(d_metrics)
  assert not any(k.startswith("d") for k in g_metrics if k != "g_d_fake")


def test_apply_gradients_is_one_optimizer_step_with_the_players_term_state():
  exp, state = setup()
  gan = dataclasses.replace(exp.gan, d_tx=optax.inject_hyperparams(optax.sgd)(learning_rate=0.1))
  ctx = StepContext(gan, {}, state.step, None)
  d = state.d.replace(opt_state=gan.d_tx.init(state.d.params), term_state={"old": 1.0})
  grads = jax.tree.map(jnp.ones_like, d.params)
  new, metrics = apply_gradients(ctx, "d", d, grads, {"c": 2.0}, {"new": 3.0}, {})
  for p, q in zip(jax.tree.leaves(d.params), jax.tree.leaves(new.params), strict=True):
    np.testing.assert_allclose(q, p - 0.1, rtol=1e-6)
  assert new.collections == {"c": 2.0} and new.term_state == {"old": 1.0, "new": 3.0}
  n = sum(x.size for x in jax.tree.leaves(d.params))
  np.testing.assert_allclose(metrics["d_grad_norm"], np.sqrt(n), rtol=1e-6)
  np.testing.assert_allclose(metrics["d_update_norm"], 0.1 * np.sqrt(n), rtol=1e-6)
  np.testing.assert_allclose(metrics["lr/d"], 0.1, rtol=1e-7)
