"""config.model.g_output_bias='marginals': pylearn2's init_sigmoid_bias_from_marginals."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment, needs_mnist
from jaxgan.core import output_bias
from jaxgan.core.state import EMAState, GANState, PlayerState
from jaxgan.data import build_dataset
from jaxgan.data.image_pipeline import ImagePipeline
from jaxgan.data.images import ImageDataset
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.models import MODELS

LOGIT_EPS = np.log(1e-7 / (1 - 1e-7))  # -16.118


class ArraySource:
  """In-memory records in a shuffled order, each carrying its original index."""

  def __init__(self, images, original):
    self.images, self.original = images, original

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": 0, "index": int(self.original[i])}


def toy(shape=(4, 4, 1), n=30, seed=0):
  """Random uint8 images; pixel 0 always 0, pixel 1 always 255; images stored shuffled."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
  images.reshape(n, -1)[:, 0] = 0
  images.reshape(n, -1)[:, 1] = 255
  original = rng.permutation(n)
  ds = ImageDataset(
    "toy", "train", ArraySource(images, original), shape=shape, num_classes=0, num_workers=1
  )
  return ds, images, original


def pipeline(ds, train_range=()):
  return ImagePipeline(
    ds, global_batch=4, minibatches=1, seed=0, value_range=(0.0, 1.0), train_range=train_range
  )


def g_state(nets, *, ema=True, members=0):
  """A GANState with G's real parameter tree (random values; D's parts are not needed
  here); with ``members``, a population's: every leaf has a leading member axis."""
  shapes = jax.eval_shape(
    lambda: nets.generator.init(jax.random.PRNGKey(0), jnp.zeros((2, 5)), train=False)
  )
  rng = np.random.default_rng(0)
  lead = (members,) if members else ()
  params = dict(
    jax.tree.map(lambda s: jnp.asarray(rng.normal(size=lead + s.shape), s.dtype), shapes)
  )
  g = params.pop("params")
  return GANState(
    step=jnp.zeros((), jnp.int32),
    g=PlayerState(params=g, collections=params, opt_state=(), term_state={}),
    d=PlayerState(params={}, collections={}, opt_state=(), term_state={}),
    rng=jax.random.PRNGKey(0),
    g_ema=EMAState(dict(g)) if ema else None,
  )


def node(tree, path):
  for k in path:
    tree = tree[k]
  return tree


def leaf(tree, path):
  return np.asarray(node(tree, path))


def test_sigmoid_of_the_bias_is_the_clipped_pixel_means():
  ds, images, _ = toy()
  means = output_bias.pixel_means(ds)
  np.testing.assert_allclose(means, images.astype(np.float64).mean(0) / 255, rtol=1e-12)
  bias = output_bias.marginal_bias(means, (0.0, 1.0))
  np.testing.assert_allclose(1 / (1 + np.exp(-bias)), np.clip(means, 1e-7, 1 - 1e-7), rtol=1e-9)
  flat = bias.reshape(-1)
  assert flat[0] == pytest.approx(-16.118, abs=1e-3) and flat[0] == pytest.approx(LOGIT_EPS)
  assert flat[1] == pytest.approx(-LOGIT_EPS)
  tanh_bias = output_bias.marginal_bias(means, (-1.0, 1.0))
  np.testing.assert_allclose(np.tanh(tanh_bias), 2 * np.clip(means, 1e-7, 1 - 1e-7) - 1, atol=1e-12)


def test_means_are_over_the_train_range_only():
  ds, images, original = toy(n=40)
  means = output_bias.pixel_means(pipeline(ds, (5, 17)))
  keep = (original >= 5) & (original < 17)
  np.testing.assert_allclose(means, images[keep].astype(np.float64).mean(0) / 255, rtol=1e-12)
  assert not np.allclose(means, output_bias.pixel_means(pipeline(ds)))
  np.testing.assert_allclose(output_bias.pixel_means(pipeline(ds)), output_bias.pixel_means(ds))


@pytest.mark.parametrize("on_device", [False, True])
def test_marginal_bias_sets_mnist_mlps_output_bias_and_g_outputs_the_means(on_device):
  ds, images, original = toy()
  ds.on_device = on_device  # in-memory and streamed reads agree
  spec = ds.spec
  nets = MODELS.get("mnist_mlp")(spec, 0, None, g_hidden=(8, 8))
  assert nets.g_output_bias == ("Dense_2", "bias") and not nets.g_output_bias_per_channel
  state = g_state(nets)
  bias = output_bias.training_bias(nets, pipeline(ds, (0, 20)), model_name="mnist_mlp")
  out = output_bias.with_marginal_bias(state, nets, bias)
  keep = original < 20
  means = images[keep].astype(np.float64).mean(0) / 255
  expected = np.log(np.clip(means, 1e-7, 1 - 1e-7) / (1 - np.clip(means, 1e-7, 1 - 1e-7)))
  for params in (out.g.params, out.g_ema.params):
    np.testing.assert_allclose(
      leaf(params, ("Dense_2", "bias")), expected.reshape(-1).astype(np.float32)
    )
    assert leaf(params, ("Dense_2", "bias")).dtype == np.float32
    np.testing.assert_array_equal(
      leaf(params, ("Dense_1", "kernel")), leaf(state.g.params, ("Dense_1", "kernel"))
    )
  # With the output layer's weights at zero, G outputs the clipped mean image.
  g = jax.tree.map(lambda a: a, out.g.params)
  g["Dense_2"]["kernel"] = jnp.zeros_like(g["Dense_2"]["kernel"])
  x = nets.generator.apply({"params": g}, jnp.ones((2, 5)), train=False)
  np.testing.assert_allclose(np.asarray(x[0]), np.clip(means, 1e-7, 1 - 1e-7), atol=1e-6)


def test_dcgan_gets_a_per_channel_tanh_bias():
  ds, images, _ = toy(shape=(8, 8, 3))
  nets = MODELS.get("dcgan")(
    ds.spec, 0, None, base=2, g_channels=(8, 4), g_strides=(2, 2), d_channels=(4,), kernel=3
  )
  assert nets.g_output_bias == ("ConvTranspose_1", "bias") and nets.g_output_bias_per_channel
  state = g_state(nets, ema=False)
  bias = output_bias.training_bias(nets, pipeline(ds), model_name="dcgan")
  out = output_bias.with_marginal_bias(state, nets, bias)
  assert out.g_ema is None
  channel_means = images.astype(np.float64).mean((0, 1, 2)) / 255
  np.testing.assert_allclose(
    np.tanh(leaf(out.g.params, ("ConvTranspose_1", "bias"))), 2 * channel_means - 1, atol=1e-6
  )


def test_population_members_all_get_the_bias():
  ds, _, _ = toy()
  nets = MODELS.get("mnist_mlp")(ds.spec, 0, None, g_hidden=(8,))
  stacked = g_state(nets, members=3)
  assert not np.allclose(*leaf(stacked.g.params, ("Dense_0", "kernel"))[:2])  # members differ
  bias = output_bias.marginal_bias(output_bias.pixel_means(ds), (0.0, 1.0))
  out = output_bias.with_marginal_bias(stacked, nets, bias)
  for params in (out.g.params, out.g_ema.params):
    got = leaf(params, ("Dense_1", "bias"))
    assert got.shape == (3, 16)
    for m in range(3):
      np.testing.assert_allclose(got[m], bias.reshape(-1).astype(np.float32))
  np.testing.assert_array_equal(
    leaf(out.g.params, ("Dense_0", "kernel")), leaf(stacked.g.params, ("Dense_0", "kernel"))
  )


@pytest.mark.parametrize(
  "name,kwargs,per_channel",
  [
    ("mnist_mlp", {}, False),
    ("mnist_mlp", {"g_hidden": (16,)}, False),
    ("mlp", {"g_output": "sigmoid"}, False),
    ("mlp", {"g_output": "tanh", "g_hidden": (8, 8, 8), "g_activations": ("relu",) * 3}, False),
    ("dcgan", {}, True),
    ("dcgan", {"g_batch_norm": False}, True),
  ],
)
def test_nets_name_the_real_output_bias(name, kwargs, per_channel):
  spec = DataSpec(shape=(28, 28, 1), num_classes=10, is_image=True, name="mnist")
  for conditional in (0, 10):
    nets = MODELS.get(name)(spec, conditional, None, **kwargs)
    y = jnp.zeros((2,), jnp.int32) if conditional else None
    init = functools.partial(nets.generator.init, z=jnp.zeros((2, 7)), y=y, train=False)
    shapes = jax.eval_shape(init, jax.random.PRNGKey(0))["params"]
    assert node(shapes, nets.g_output_bias).shape == ((1,) if per_channel else (784,))
    assert nets.g_output_bias_per_channel == per_channel


def test_models_without_an_output_bias_and_non_image_data_are_refused():
  ds, _, _ = toy()
  spec = ds.spec
  for kwargs in ({"g_output": "linear"}, {"g_output": "sigmoid", "pointwise_g": True}):
    nets = MODELS.get("mlp")(spec, 0, None, **kwargs)
    assert nets.g_output_bias is None
    with pytest.raises(
      ConfigError,
      match=r"^config.model.g_output_bias='marginals' needs a generator "
      r"with an output bias; model 'mlp' has none; use 'zeros'.$",
    ):
      output_bias.training_bias(nets, pipeline(ds), model_name="mlp")
  c = experiment("mixtures_2d.py")
  ring = build_dataset(c.data)
  from jaxgan.data import build_pipeline

  nets = MODELS.get("mlp")(ring.spec, 0, None, g_output="tanh")
  with pytest.raises(ConfigError, match="needs an image dataset; .* is not one; use 'zeros'"):
    output_bias.training_bias(nets, build_pipeline(c, ring))


@needs_mnist
def test_real_mnist_marginals_over_the_first_1000_images(mnist_tfds_dir):
  c = experiment("mnist_gan.py")
  c.data.data_dir = mnist_tfds_dir
  ds = build_dataset(c.data)
  data = ds.load_all()
  direct = data["x"][data["index"] < 1000].astype(np.float64).mean(0) / 255
  bias = output_bias.marginal_bias(output_bias.pixel_means(pipeline(ds, (0, 1000))), (0.0, 1.0))
  np.testing.assert_allclose(1 / (1 + np.exp(-bias)), np.clip(direct, 1e-7, 1 - 1e-7), rtol=1e-9)
  assert bias[0, 0, 0] == pytest.approx(-16.118, abs=1e-3)  # the corner is always black
  full = output_bias.pixel_means(ds)
  assert not np.allclose(full, direct)
