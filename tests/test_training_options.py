"""G's fake labels and real batch (the last of D's or its own), a late start of G's EMA, ADA's
filter on tiny images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment, tiny_gaussian_config
from jaxgan.config import validate
from jaxgan.core import train_step
from jaxgan.core.ema import EMA
from jaxgan.core.gan import ada_spec, build_gan, init_state
from jaxgan.core.state import EMAState, PlayerState
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError

CLASSES = 3


def conditional_gan(fake_labels="real", **train):
  c = tiny_gaussian_config(fake_labels=fake_labels, **train)
  c.model.conditional = True
  gan = build_gan(c, DataSpec(shape=(1,), num_classes=CLASSES, name="gaussian_1d"))
  return gan, init_state(gan, jax.random.PRNGKey(3))


def labelled(k, n=8):
  x = 4.0 + jax.random.normal(jax.random.PRNGKey(0), (k, n, 1))
  y = jax.random.randint(jax.random.PRNGKey(1), (k, n), 0, CLASSES)
  return {"x": x, "y": y}


def test_fake_labels_real_are_each_updates_real_labels(monkeypatch):
  """D update i makes its fakes with real minibatch i's labels; G's updates, which score the
  last minibatch, with its labels (R3GAN's gen_c = real_c). The updates are stubs that
  record what ``fake_inputs`` gives them, so nothing is trained or compiled."""
  gan, state = conditional_gan(d_steps=2, g_steps=2)
  batch = labelled(2)
  assert not np.array_equal(batch["y"][0], batch["y"][1])
  seen = []

  def update(ctx, me, other, real, prefix, count):
    _, y = ctx.fake_inputs(prefix, real)
    seen.append((prefix, np.asarray(y)))
    return me, {}

  monkeypatch.setattr(train_step, "d_update", update)
  monkeypatch.setattr(train_step, "g_update", update)
  names = train_step.step_stream_names(gan, 2, 2)
  keys = train_step.streams.derive(train_step.streams.step_key(state.rng, state.step), names)
  ctx = train_step.StepContext(gan, keys, state.step)
  train_step.alternating_updates(ctx, state.d, state.g, batch, 2)
  y0, y1 = np.asarray(batch["y"][0]), np.asarray(batch["y"][1])
  assert [p for p, _ in seen] == ["d0", "d1", "g0", "g1"]
  for (_, y), want in zip(seen, (y0, y1, y1, y1)):
    np.testing.assert_array_equal(y, want)
    assert y.dtype == np.int32


def record_updates(monkeypatch, gan, state, batch, d_steps, g_steps, g_real_batch):
  """Runs ``alternating_updates`` with stub updates that record, per update, the real batch
  and the fake labels it gets (nothing is trained or compiled)."""
  seen = {}

  def update(ctx, me, other, real, prefix, count):
    seen[prefix] = (np.asarray(real["x"]), np.asarray(ctx.fake_inputs(prefix, real)[1]))
    return me, {}

  monkeypatch.setattr(train_step, "d_update", update)
  monkeypatch.setattr(train_step, "g_update", update)
  names = train_step.step_stream_names(gan, d_steps, g_steps)
  keys = train_step.streams.derive(train_step.streams.step_key(state.rng, state.step), names)
  ctx = train_step.StepContext(gan, keys, state.step)
  train_step.alternating_updates(ctx, state.d, state.g, batch, g_steps, g_real_batch)
  return seen


def test_g_real_batch_fresh_gives_every_g_update_the_extra_minibatch(monkeypatch):
  """k = 2 D updates read minibatches 0 and 1; with 'fresh' both G updates read minibatch 2
  (its reals and, with fake_labels='real', its labels), with 'last_d' minibatch 1."""
  gan, state = conditional_gan(d_steps=2, g_steps=2)
  batch = labelled(3)
  fresh = record_updates(monkeypatch, gan, state, batch, 2, 2, "fresh")
  assert list(fresh) == ["d0", "d1", "g0", "g1"]
  for prefix, i in (("d0", 0), ("d1", 1), ("g0", 2), ("g1", 2)):
    np.testing.assert_array_equal(fresh[prefix][0], batch["x"][i])
    np.testing.assert_array_equal(fresh[prefix][1], batch["y"][i])
  last = record_updates(monkeypatch, gan, state, jax.tree.map(lambda a: a[:2], batch), 2, 2,
                        "last_d")  # fmt: skip
  for prefix, i in (("d0", 0), ("d1", 1), ("g0", 1), ("g1", 1)):
    np.testing.assert_array_equal(last[prefix][0], batch["x"][i])
    np.testing.assert_array_equal(last[prefix][1], batch["y"][i])


def rpgan_steps(loss="rpgan"):
  """One compiled step of a tiny 1-D GAN for each ``g_real_batch``, with ``loss`` for both
  (SGD: Adam's first step would see only the gradients' signs)."""
  c = tiny_gaussian_config()
  c.loss.update(d=loss, g="auto")
  for opt in (c.optim.g, c.optim.d):
    opt.update(name="sgd", lr=0.1)
  gan = build_gan(c, DataSpec(shape=(1,), name="gaussian_1d"))
  step = lambda g_real_batch: jax.jit(train_step.make_train_step(gan, g_real_batch=g_real_batch))
  return gan, init_state(gan, jax.random.PRNGKey(3)), step("last_d"), step("fresh")


def test_g_real_batch_fresh_scores_gs_own_minibatch_in_rpgan():
  """RpGAN's G loss pairs each fake with a real: with 'fresh' on [a, b], D trains on a exactly
  as 'last_d' on [a], and G's update is ``g_update`` against that D on b, not on a."""
  gan, state, last_d, fresh = rpgan_steps()
  a, b = labelled(2)["x"]
  want_d, m_last = last_d(state, {"x": a[None]})
  got, m_fresh = fresh(state, {"x": jnp.stack([a, b])})
  for x, y in zip(jax.tree.leaves(got.d), jax.tree.leaves(want_d.d)):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_array_equal(m_fresh["d_loss"], m_last["d_loss"])

  @jax.jit
  def g_on(real):  # G's update of the step by hand, against the updated D
    names = train_step.step_stream_names(gan, 1, 1)
    keys = train_step.streams.derive(train_step.streams.step_key(state.rng, state.step), names)
    ctx = train_step.StepContext(gan, keys, state.step)
    return train_step.g_update(ctx, state.g, want_d.d, {"x": real}, "g0", state.step)

  (g_b, m_b), (g_a, m_a) = g_on(b), g_on(a)
  np.testing.assert_allclose(float(m_fresh["g_loss"]), float(m_b["g_loss"]), rtol=1e-6)
  assert abs(float(m_fresh["g_loss"]) - float(m_a["g_loss"])) > 1e-3
  params = lambda s: np.concatenate([np.ravel(x) for x in jax.tree.leaves(s.params)])
  np.testing.assert_allclose(params(got.g), params(g_b), rtol=1e-6, atol=1e-7)
  assert np.abs(params(got.g) - params(g_a)).max() > 1e-5


def test_g_real_batch_fresh_changes_nothing_where_g_sees_no_reals():
  """A G loss that scores only fakes (non-saturating, unconditional): 'fresh' on [a, b] is
  'last_d' on [a], bit for bit, whatever b holds."""
  _, state, last_d, fresh = rpgan_steps("bce")
  a, b = labelled(2)["x"]
  want, _ = last_d(state, {"x": a[None]})
  got, _ = fresh(state, {"x": jnp.stack([a, b])})
  for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(x, y)


def test_g_real_batch_last_d_is_the_default_and_reads_k_minibatches():
  """A config that leaves the key alone and one that sets 'last_d' build the same pipeline
  (k minibatches a step) and train to the same state, bit for bit."""
  from jaxgan.experiment import build_experiment

  states = []
  for train in ({}, {"g_real_batch": "last_d"}):
    c = tiny_gaussian_config(d_steps=2, **train)
    c.loss.update(d="rpgan", g="auto")
    exp = build_experiment(c, preflight=False)
    assert exp.config.train.g_real_batch == "last_d" and exp.pipeline.minibatches == 2
    inputs = exp.runner.place_inputs(exp.pipeline.host_inputs(0, 2))
    states.append(exp.runner(exp.runner.place_state(exp.init_state()), inputs)[0])
  for x, y in zip(*(jax.tree.leaves(s) for s in states)):
    np.testing.assert_array_equal(x, y)


def test_g_real_batch_bad_value_and_simultaneous_are_refused_in_one_line():
  with pytest.raises(ConfigError) as e:
    validate(tiny_gaussian_config(g_real_batch="newest"))
  assert str(e.value) == (
    "config.train.g_real_batch='newest' is not valid. Valid choices: last_d, fresh."
  )
  with pytest.raises(ConfigError) as e:
    validate(tiny_gaussian_config(g_real_batch="fresh", update_order="simultaneous", d_steps=1))
  assert str(e.value) == (
    "config.train.g_real_batch='fresh' gives G's update a real batch of its own, but "
    "update_order='simultaneous' takes both updates from one pass on one batch; use "
    "g_real_batch='last_d' or update_order='alternating'."
  )


def test_fake_labels_uniform_draw_from_their_stream_and_leave_the_noise_alone(monkeypatch):
  uniform, state = conditional_gan("uniform")
  real, _ = conditional_gan("real")
  batch = labelled(1)
  names = train_step.step_stream_names(uniform, 1, 1)
  keys = train_step.streams.derive(train_step.streams.step_key(state.rng, state.step), names)
  one = jax.tree.map(lambda a: a[0], batch)
  z_u, y_u = train_step.StepContext(uniform, keys, state.step).fake_inputs("d0", one)
  z_r, y_r = train_step.StepContext(real, keys, state.step).fake_inputs("d0", one)
  np.testing.assert_array_equal(z_u, z_r)
  np.testing.assert_array_equal(y_r, batch["y"][0])
  np.testing.assert_array_equal(y_u, jax.random.randint(keys["d0/labels"], (8,), 0, CLASSES))


def test_fake_labels_real_is_refused_without_labels():
  c = tiny_gaussian_config(fake_labels="real")
  with pytest.raises(ConfigError) as e:
    build_gan(c, DataSpec(shape=(1,), num_classes=CLASSES, name="gaussian_1d"))
  assert str(e.value) == (
    "config.train.fake_labels='real' gives G the real batch's labels, but the model is "
    "unconditional (config.model.conditional=False); set config.train.fake_labels='uniform'."
  )
  c.model.conditional = True
  with pytest.raises(ConfigError) as e:
    build_gan(c, DataSpec(shape=(1,), num_classes=0, name="gaussian_1d"))
  assert str(e.value) == (
    "config.train.fake_labels='real' gives G the real batch's labels, but dataset "
    "'gaussian_1d' has no labels; set config.train.fake_labels='uniform'."
  )


def test_ema_start_copies_g_before_it_and_averages_from_it():
  decay = EMA(decay=0.9, start=3)
  betas = [float(decay.beta(jnp.int32(s))) for s in range(5)]
  np.testing.assert_allclose(betas, [0, 0, 0, 0.9, 0.9], rtol=1e-7)
  scheduled = EMA(half_life_kimg="cosine(0,1,kimg=1)", batch_size=100, start=2)
  plain = EMA(half_life_kimg="cosine(0,1,kimg=1)", batch_size=100)
  for s in (0, 1, 2, 5, 10):
    want = 0.0 if s < 2 else float(plain.beta(jnp.int32(s)))
    assert float(scheduled.beta(jnp.int32(s))) == want
  assert scheduled.varies and decay.varies and not EMA(decay=0.9).varies
  # buffers averaged: copied before the start too
  ema = EMA(decay=0.5, buffers="average", start=1)
  g = PlayerState(
    params={"w": jnp.array([2.0, 4.0])}, collections={"bn": {"m": jnp.array([8.0])}},
    opt_state=(), term_state={},
  )  # fmt: skip
  e = EMAState({"w": jnp.array([1.0, 1.0])}, {"bn": {"m": jnp.array([0.0])}})
  before = ema.update(e, g, jnp.int32(0))
  np.testing.assert_array_equal(before.params["w"], [2.0, 4.0])
  np.testing.assert_array_equal(before.collections["bn"]["m"], [8.0])
  after = ema.update(e, g, jnp.int32(1))
  np.testing.assert_array_equal(after.params["w"], [1.5, 2.5])
  np.testing.assert_array_equal(after.collections["bn"]["m"], [4.0])


def test_ema_start_without_an_ema_is_refused():
  from jaxgan.config import validate

  with pytest.raises(ConfigError) as e:
    validate(tiny_gaussian_config(ema_start=10))
  assert str(e.value) == (
    "config.train.ema_start=10 starts an EMA of G, but none is kept: set "
    "config.train.ema_decay (e.g. 0.9999) or ema_kimg, or ema_start=0."
  )


def ada_config(ada):
  c = tiny_gaussian_config()
  c.loss.ada = ada
  return c


@pytest.mark.parametrize("ada", ["bgcf", "bgc,imgfilter=0.5"])
def test_ada_imgfilter_on_images_of_21_pixels_is_refused_before_compiling(ada):
  with pytest.raises(ConfigError) as e:
    ada_spec(ada_config(ada), DataSpec(shape=(21, 30, 3), is_image=True, name="tiny"))
  assert str(e.value) == (
    f"config.loss.ada={ada!r} filters images (imgfilter), which needs more than 21 pixels a "
    f"side, not 21x30: pick a preset without 'f' (e.g. 'bgc') or add ',imgfilter=0'."
  )


def test_ada_imgfilter_is_accepted_from_22_pixels_and_off_on_tiny_images():
  assert ada_spec(ada_config("bgcf"), DataSpec(shape=(22, 22, 1), is_image=True)).pipe.imgfilter
  spec = ada_spec(ada_config("bgcf,imgfilter=0"), DataSpec(shape=(16, 16, 3), is_image=True))
  assert spec.pipe.imgfilter == 0
  assert ada_spec(ada_config("bgc"), DataSpec(shape=(8, 8, 3), is_image=True)) is not None


def test_ports_set_the_official_options():
  r3gan = experiment("r3gan.py:cifar")
  assert (r3gan.train.fake_labels, r3gan.data.xflip) == ("real", True)  # gen_c, --mirror=1
  for variant in ("folder32", "folder64", "smoke"):  # unconditional folders; smoke as before
    assert experiment(f"r3gan.py:{variant}").train.fake_labels == "uniform"
  # the official's G phase reads a real batch of its own; the small MNIST comparison does not
  g_real = {v: experiment(f"r3gan.py:{v}").train.g_real_batch for v in ("cifar", "folder32",
            "folder64", "folder256", "smoke", "mnist", "stacked_mnist")}  # fmt: skip
  assert g_real == dict(cifar="fresh", folder32="fresh", folder64="fresh", folder256="fresh",
                        smoke="fresh", mnist="last_d", stacked_mnist="last_d")  # fmt: skip
  # StudioGAN's g_ema_start: 1000 (steps from 0); BigGAN-PyTorch's --ema_start 1000 (itr from 1)
  starts = {v: experiment(f"biggan.py:{v}").train.ema_start for v in ("cifar", "cifar_ortho",
            "folder32", "cifar_biggan_pytorch", "smoke")}  # fmt: skip
  assert starts == dict(cifar=1000, cifar_ortho=1000, folder32=1000, cifar_biggan_pytorch=999,
                        smoke=0)  # fmt: skip
  assert experiment("sngan.py:cifar").train.ema_start == 0  # StudioGAN's SNGAN keeps no EMA


def test_cifar_statistics_keys_are_unchanged_without_xflip():
  """Reference statistics cached before ``data.xflip`` existed are still found."""
  from jaxgan.evaluators import feature_metrics

  c = experiment("cifar10_dcgan.py")
  key = lambda: feature_metrics.stats_key(c, "train", 50_000, "inception", "0123456789ab")
  assert "xflip" not in key()["data"]
  c.data.xflip = True
  assert key()["data"]["xflip"] is True
