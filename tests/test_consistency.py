"""Consistency regularizers (CR, bCR, zCR) and top-k training against numpy formulas written
from the papers' definitions, the augmentation they apply, their one-line refusals, and a
short training run with all of them on."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from conftest import tiny_gaussian_config
from jaxgan import config as config_lib
from jaxgan.core import losses, penalties, streams
from jaxgan.core.gan import build_gan, init_state
from jaxgan.core.objectives import TermContext
from jaxgan.core.train_step import make_train_step
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.experiment import build_experiment

# Small programs, compiled once each without LLVM's expensive passes (compiling dominates).
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def fast_jit(fn):
  return jax.jit(fn, compiler_options=FAST)


SHAPE = (8, 16, 16, 2)  # translation_reflect shifts by up to int(16 / 8) = 2 pixels
W_IMG = np.random.default_rng(0).normal(size=SHAPE[1:]) * 0.3


def d_img_numpy(x):
  return np.sum(np.tanh(x * W_IMG), axis=(1, 2, 3)) + 0.05 * np.sum(x, axis=(1, 2, 3))


def d_img(x, y, key, theta=1.0):
  del y, key
  w = jnp.asarray(W_IMG, jnp.float32)
  return theta * (jnp.sum(jnp.tanh(x * w), axis=(1, 2, 3)) + 0.05 * jnp.sum(x, axis=(1, 2, 3)))


def image_context(d=d_img, **kw):
  rng = np.random.default_rng(1)
  real = jnp.asarray(rng.normal(size=SHAPE), jnp.float32)
  fake = jnp.asarray(rng.normal(0.5, 0.7, size=SHAPE), jnp.float32)
  base = dict(
    d=d, real_x=real, real_y=None, fake_x=fake, fake_y=None, real_out=d(real, None, None),
    fake_out=d(fake, None, None), key=jax.random.PRNGKey(7), step=jnp.int32(0),
    update=jnp.int32(0),
  )  # fmt: skip
  base.update(kw)
  return TermContext(**base)


def studiogan_cr_aug_numpy(x, key, n):
  """flip with probability 1/2, then a reflect-padded shift by t ~ U{-2..2} per axis, each
  example's draws from the term's named streams (``penalties.cr_transform``)."""
  x = np.asarray(x, np.float64)
  k = streams.sub(key, "transform")
  flip = np.asarray(jax.random.uniform(streams.sub(k, "flip"), (n, 1, 1, 1)))[:, 0, 0, 0] < 0.5
  kt = streams.sub(k, "translation_reflect")
  th = np.asarray(jax.random.randint(streams.sub(kt, "rows"), (n,), -2, 3))
  tw = np.asarray(jax.random.randint(streams.sub(kt, "cols"), (n,), -2, 3))
  out = np.empty_like(x)
  for i in range(n):
    img = x[i, :, ::-1] if flip[i] else x[i]
    padded = np.pad(img, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    out[i] = padded[2 + th[i] : 2 + th[i] + 16, 2 + tw[i] : 2 + tw[i] + 16]
  return out, flip, th, tw


@pytest.mark.parametrize("name,side", [("cr", "real"), ("bcr_real", "real"), ("bcr_fake", "fake")])
def test_cr_is_the_squared_difference_under_studiogans_augmentation(name, side):
  ctx = image_context()
  x = np.asarray(getattr(ctx, f"{side}_x"), np.float64)
  t, flip, th, tw = studiogan_cr_aug_numpy(x, ctx.key, SHAPE[0])
  assert flip.any() and not flip.all() and (th != 0).any() and (tw != 0).any()
  expected = np.mean((d_img_numpy(x) - d_img_numpy(t)) ** 2)
  value, _ = fast_jit(lambda: penalties.D_PENALTIES.get(name).fn(ctx))()
  np.testing.assert_allclose(float(value), expected, rtol=1e-5)
  assert expected > 1e-3


def test_cr_is_zero_for_the_identity_and_reads_its_options():
  ctx = image_context()
  fn = penalties.D_PENALTIES.get("cr").fn
  assert float(fn(ctx, cr_augment="")[0]) == 0.0
  # DiffAugment's ops serve too, drawn from the same named streams.
  value = float(fn(ctx, cr_augment="cutout")[0])
  assert value > 0 and value != float(fn(ctx)[0])


def test_cr_gradient_reaches_both_sides():
  # D_theta = theta f: the penalty is theta^2 E (f(x) - f(Tx))^2, so d/dtheta = 2 value/theta;
  # with either side held fixed it would be half that.
  def value(theta):
    d = lambda x, y, key: d_img(x, y, key, theta)
    return penalties.D_PENALTIES.get("cr").fn(image_context(d=d))[0]

  v, g = fast_jit(jax.value_and_grad(value))(1.3)
  np.testing.assert_allclose(float(g), 2 * float(v) / 1.3, rtol=1e-5)


A = np.random.default_rng(2).normal(size=(4, 3))
W_VEC = np.random.default_rng(3).normal(size=(3,))
RADIUS = 0.3


def vector_context(a=1.0, theta=1.0, **kw):
  """G(z) = a tanh(z A) on z in R^4, D(x) = theta sum(sin(x w)); 5 examples."""
  g = lambda z, y=None, key=None: a * jnp.tanh(z @ jnp.asarray(A, jnp.float32))
  d = lambda x, y, key: theta * jnp.sum(jnp.sin(x * jnp.asarray(W_VEC, jnp.float32)), axis=1)
  z = jnp.asarray(np.random.default_rng(4).normal(size=(5, 4)), jnp.float32)
  fake = g(z)
  base = dict(
    d=d, g=g, z=z, real_x=fake, real_y=None, fake_x=fake, fake_y=None, real_out=None,
    fake_out=d(fake, None, None), key=jax.random.PRNGKey(5), step=jnp.int32(0),
    update=jnp.int32(0),
  )  # fmt: skip
  base.update(kw)
  return TermContext(**base)


def zcr_numpy(key):
  z = np.random.default_rng(4).normal(size=(5, 4))
  n = np.asarray(jax.random.normal(streams.sub(key, "z"), (5, 4)), np.float64)
  g = lambda z: np.tanh(z @ A)
  d = lambda x: np.sum(np.sin(x * W_VEC), axis=1)
  return g(z), g(z + RADIUS * n), d


def test_zcr_discriminator_term_is_the_squared_output_difference():
  ctx = vector_context()
  gz, gz2, d = zcr_numpy(ctx.key)
  value, _ = fast_jit(lambda: penalties.D_PENALTIES.get("zcr").fn(ctx, zcr_radius=RADIUS))()
  np.testing.assert_allclose(float(value), np.mean((d(gz) - d(gz2)) ** 2), rtol=1e-5)

  # Neither D(G(z)) nor D(G(z')) is detached (StudioGAN's MSE of both dicts' outputs).
  def of_theta(theta):
    ctx = vector_context(theta=theta)
    return penalties.D_PENALTIES.get("zcr").fn(ctx, zcr_radius=RADIUS)[0]

  v, g = fast_jit(jax.value_and_grad(of_theta))(0.8)
  np.testing.assert_allclose(float(g), 2 * float(v) / 0.8, rtol=1e-5)


def test_zcr_generator_term_repels_with_gradient_through_both_images():
  ctx = vector_context()
  gz, gz2, _ = zcr_numpy(ctx.key)
  value, metrics = fast_jit(lambda: penalties.G_PENALTIES.get("zcr").fn(ctx, zcr_radius=RADIUS))()
  distance = np.mean((gz - gz2) ** 2)  # over every value, as torch's MSELoss
  np.testing.assert_allclose(float(value), -distance, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["distance"]), distance, rtol=1e-5)

  # G_a = a G: the term is -a^2 distance; both G(z) and G(z') carry a's gradient.
  def of_a(a):
    return penalties.G_PENALTIES.get("zcr").fn(vector_context(a=a), zcr_radius=RADIUS)[0]

  v, g = fast_jit(jax.value_and_grad(of_a))(1.5)
  np.testing.assert_allclose(float(g), 2 * float(v) / 1.5, rtol=1e-5)
  assert float(g) < 0


def studiogan_k_schedule(batch, gamma, nu, steps_per_epoch, steps):
  """StudioGAN's loop: k starts at the batch size; after each step whose D update opened a
  new epoch (drop_last loader of whole baskets), k = max(k gamma, int(batch nu))."""
  k, ks = float(batch), []
  for step in range(steps):
    ks.append(int(k))  # torch.topk(..., int(self.topk)) in this step's G update
    if step >= steps_per_epoch and step % steps_per_epoch == 0:
      k = max(k * gamma, int(batch * nu))
  return ks


@pytest.mark.parametrize("gamma,nu", [(0.5, 0.25), (0.9, 0.3)])
def test_topk_k_follows_studiogans_epoch_schedule(gamma, nu):
  topk = losses.TopK(gamma, nu, steps_per_epoch=3)
  got = np.asarray(fast_jit(jax.vmap(lambda s: topk.k(16, s)))(jnp.arange(40))).tolist()
  assert got == studiogan_k_schedule(16, gamma, nu, 3, 40)
  assert got[:4] == [16] * 4 and got[4] == int(16 * gamma) and got[-1] == int(16 * nu)


def test_topk_schedule_counts_epochs_in_real_images():
  loss = config_lib.base_config(model="mlp", data="gaussian_1d").loss
  assert losses.topk_schedule(loss, 64, 1) is None  # topk_gamma = 1: off
  loss.update(topk_gamma=0.99, topk_kimg=50.0)
  # CIFAR-10: 50,000 images in whole baskets of 64 x 2 (k_D = 2) = 390 steps per epoch.
  assert losses.topk_schedule(loss, 64, 2) == losses.TopK(0.99, 0.5, 390)


def test_only_the_top_k_fakes_get_gradient():
  out = jnp.asarray([0.3, -1.2, 2.0, 0.9, -0.1, 1.5, 0.0, -2.2])
  term = losses.generator_term(losses.G_LOSSES.get("non_saturating"), losses.TopK(0.5, 0.25, 2))
  ctx = lambda o, step: TermContext(
    d=None, real_x=o, real_y=None, fake_x=o, fake_y=None, real_out=None, fake_out=o,
    step=jnp.int32(step), update=jnp.int32(0),
  )  # fmt: skip
  for step, k in ((0, 8), (3, 4), (9, 2)):
    run = fast_jit(jax.value_and_grad(lambda o: term(ctx(o, step)), has_aux=True))
    (value, metrics), grad = run(out)
    o = np.asarray(out, np.float64)
    top = np.argsort(-o)[:k]
    softplus = lambda v: np.log1p(np.exp(v))
    np.testing.assert_allclose(float(value), np.sum(softplus(-o[top])) / k, rtol=1e-5)
    expected = np.zeros(8)
    expected[top] = -1.0 / (1.0 + np.exp(o[top])) / k
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-5, atol=1e-9)
    assert float(metrics["k"]) == k


def every_new_term(axis_name, real, fake, z, out):
  """Each consistency term and the top-k loss (with its gradient in D's fake outputs) on this
  device's share of the batch; values averaged over devices, as training averages them."""
  images = dataclasses.replace(
    image_context(), real_x=real, fake_x=fake, real_out=d_img(real, None, None),
    fake_out=d_img(fake, None, None), axis_name=axis_name,
  )  # fmt: skip
  values = {n: penalties.D_PENALTIES.get(n).fn(images)[0] for n in penalties.NEEDS_IMAGES["d"]}
  vec = vector_context(axis_name=axis_name)
  g_z = vec.g(z)
  vec = dataclasses.replace(vec, z=z, real_x=g_z, fake_x=g_z, fake_out=vec.d(g_z, None, None))
  values["d/zcr"] = penalties.D_PENALTIES.get("zcr").fn(vec)[0]
  values["g/zcr"] = penalties.G_PENALTIES.get("zcr").fn(vec)[0]
  values["maxgp"] = penalties.D_PENALTIES.get("maxgp").fn(images)[0]
  term = losses.generator_term(losses.G_LOSSES.get("hinge"), losses.TopK(0.5, 0.25, 2))
  topk = lambda o: term(dataclasses.replace(vec, fake_out=o, step=jnp.int32(3)))[0]
  values["topk"], grad = jax.value_and_grad(topk)(out)
  return (values if axis_name is None else lax.pmean(values, axis_name)), grad


def test_terms_on_four_devices_are_the_one_device_terms():
  ctx = image_context()
  z = jnp.asarray(np.random.default_rng(6).normal(size=(8, 4)), jnp.float32)
  out = jnp.asarray(np.random.default_rng(7).permutation(8), jnp.float32)  # no ties
  args = (ctx.real_x, ctx.fake_x, z, out)
  single, g_single = fast_jit(lambda *a: every_new_term(None, *a))(*args)
  mesh = Mesh(np.asarray(jax.devices()[:4]), ("batch",))
  sharded = jax.shard_map(
    lambda *a: every_new_term("batch", *a),
    mesh=mesh,
    in_specs=(P("batch"),) * 4,
    out_specs=(P(), P("batch")),
    check_vma=False,
  )
  multi, g_multi = fast_jit(sharded)(*args)
  for name in single:
    np.testing.assert_allclose(float(multi[name]), float(single[name]), rtol=1e-5, err_msg=name)
  # Each device's gradient is 4 x its share (training averages gradients over devices).
  np.testing.assert_allclose(np.asarray(g_multi) / 4, np.asarray(g_single), rtol=1e-6)
  assert (np.asarray(g_single) != 0).sum() == 4  # k = 4 of 8 at step 3


@pytest.mark.parametrize(
  "loss,data,message",
  [
    (
      dict(topk_gamma=0.99, topk_kimg=1.0, d="rpgan", g="auto"),
      "gaussian_1d",
      "config.loss.topk_gamma=0.99: top-k training drops fakes from G's loss, and 'rpgan' "
      "pairs each fake with a real; use another loss or topk_gamma=1.",
    ),
    (
      dict(topk_gamma=0.99),
      "gaussian_1d",
      "config.loss.topk_gamma=0.99 decays k once per epoch: set config.loss.topk_kimg to the "
      "training set's size in thousands (e.g. 50 for CIFAR-10).",
    ),
    (
      dict(topk_gamma=0.99, topk_kimg=1.0, topk_nu=0.01),
      "gaussian_1d",
      "config.loss.topk_nu=0.01 keeps int(64 x 0.01) = 0 of the batch's 64 D outputs at the "
      "end; raise topk_nu or the batch size.",
    ),
    (
      dict(topk_gamma=1.5),
      "gaussian_1d",
      "config.loss.topk_gamma and topk_nu must be in (0, 1] (topk_gamma=1: top-k off), "
      "got 1.5 and 0.5.",
    ),
    (dict(zcr_radius=0.0), "gaussian_1d", "config.loss.zcr_radius must be > 0, got 0."),
    (
      dict(cr_augment=""),
      "gaussian_1d",
      "config.loss.cr_augment is empty, and consistency regularization compares D on x and on "
      "an augmented x; name ops, e.g. 'flip,translation_reflect' (StudioGAN's).",
    ),
    (
      dict(cr_augment="flip,shift"),
      "gaussian_1d",
      "config.loss.cr_augment: unknown consistency augmentation 'shift'; valid choices: flip, "
      "translation_reflect, color, cutout, translation.",
    ),
  ],
)
def test_bad_options_fail_in_one_line(loss, data, message):
  config = config_lib.base_config(model="mlp", data=data)
  config.train.batch_size = 64
  config.loss.update(loss)
  with pytest.raises(ConfigError) as e:
    config_lib.validate(config)
  assert str(e.value) == message


def test_cr_on_data_that_is_not_images_fails_in_one_line():
  config = tiny_gaussian_config()
  config.loss.d_penalties = "zcr:1,bcr_real:1,bcr_fake:2"
  with pytest.raises(ConfigError) as e:
    build_experiment(config)
  assert str(e.value) == (
    "config.loss.d_penalties: bcr_real, bcr_fake augment images (loss.cr_augment), and "
    "'gaussian_1d' has examples of shape (1,); drop them or train on image data."
  )


def test_smoke_config_trains_on_images_with_every_term_on():
  # gaussian_1d's smoke nets on 8x8 images: a step compiled once, three steps run.
  config = tiny_gaussian_config()
  config.loss.update(
    d_penalties="cr:10,bcr_fake:10,zcr:20",  # bcr_real is cr's code; maxgp trains in the
    # data-parallel zoo run (test_parallel.py)
    g_penalties="zcr:0.5",
    topk_gamma=0.5,
    topk_kimg=0.008,  # an epoch of 8 images, one batch: k = 8, 8, 4 (floor int(8 x 0.5))
  )
  config_lib.validate(config)
  gan = build_gan(config, DataSpec(shape=(8, 8, 1), is_image=True, name="mnist"))
  state = init_state(gan, jax.random.PRNGKey(0))
  step = fast_jit(make_train_step(gan))
  x = jax.random.uniform(jax.random.PRNGKey(1), (1, 8, 8, 8, 1)) * 2 - 1
  ks = []
  for _ in range(3):
    state, metrics = step(state, {"x": x})
    metrics = jax.device_get(metrics)
    ks.append(float(metrics["g/adv/k"]))
    assert all(np.isfinite(v) for v in metrics.values())
    for term in ("cr", "bcr_fake", "zcr"):
      assert metrics[f"d_loss/{term}"] > 0, term
    assert metrics["g_loss/zcr"] < 0
  assert ks == [8, 8, 4]
  assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(state))
