"""Image models: shapes, parameter counts, conditioning, and the fast transposed conv."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from jaxgan.data.spec import DataSpec
from jaxgan.errors import ConfigError
from jaxgan.gan import build_gan, init_state
from jaxgan.models import MODELS
from jaxgan.models.fast_conv import CONV_IMPLS, TRANSPOSE_IMPLS, Conv, ConvTranspose

MNIST = DataSpec((28, 28, 1), num_classes=10, is_image=True, name="mnist")


def count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def init(nets, data, num_classes=0):
  z = jnp.zeros((2, 100))
  y = jnp.zeros((2,), jnp.int32) if num_classes else None
  g = nets.generator.init(jax.random.PRNGKey(0), z, y)
  d = nets.discriminator.init(jax.random.PRNGKey(1), jnp.zeros((2, *data.shape)), y)
  return g, d


def test_paper_mnist_nets_shapes_and_parameter_counts():
  nets = MODELS.get("mnist_mlp")(MNIST, 0, None)
  g, d = init(nets, MNIST)
  assert count(g["params"]) == (100 * 1200 + 1200) + (1200 * 1200 + 1200) + (1200 * 784 + 784)
  # maxout: 240 units x 5 pieces = 1200 linear pieces per layer, then 240 -> 1.
  assert count(d["params"]) == (784 * 1200 + 1200) + (240 * 1200 + 1200) + (240 + 1) == 1_231_441
  x = nets.generator.apply(g, jax.random.uniform(jax.random.PRNGKey(2), (3, 100), minval=-1))
  assert x.shape == (3, 28, 28, 1) and float(x.min()) >= 0 and float(x.max()) <= 1
  assert nets.output_range == (0.0, 1.0)
  logits = nets.discriminator.apply(d, x)
  assert logits.shape == (3,)


def test_paper_discriminator_uses_dropout_only_in_training():
  nets = MODELS.get("mnist_mlp")(MNIST, 0, None)
  _, d = init(nets, MNIST)
  x = jax.random.uniform(jax.random.PRNGKey(3), (4, 28, 28, 1))
  D = nets.discriminator
  evals = [D.apply(d, x, train=False) for _ in range(2)]
  np.testing.assert_array_equal(evals[0], evals[1])
  a = D.apply(d, x, train=True, rngs={"dropout": jax.random.PRNGKey(0)})
  b = D.apply(d, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
  assert not np.allclose(a, b)


@pytest.mark.parametrize("shape,base,g_channels,g_strides,kernel,d_channels", [
    ((28, 28, 1), 7, (256, 128, 64), (1, 2, 2), 5, (64, 128)),            # textbook / TF tutorial sizes
    ((32, 32, 3), 4, (512, 256, 128), (2, 2, 2), 4, (64, 128, 256)),     # CIFAR-10
    ((64, 64, 3), 4, (512, 256, 128, 64), (2, 2, 2, 2), 4, (64, 128, 256, 512)),  # pytorch/examples
])
def test_dcgan_shapes_and_parameter_counts(shape, base, g_channels, g_strides, kernel, d_channels):
  data = DataSpec(shape, num_classes=10, is_image=True, name="x")
  nets = MODELS.get("dcgan")(data, 0, None, base=base, g_channels=g_channels,
                             g_strides=g_strides, kernel=kernel, d_channels=d_channels)
  g, d = init(nets, data)
  k2 = kernel * kernel
  outs = list(g_channels[1:]) + [shape[-1]]
  expected_g = 100 * base * base * g_channels[0] + 2 * g_channels[0]  # dense (no bias) + BN
  cin = g_channels[0]
  for i, cout in enumerate(outs):
    last = i == len(outs) - 1
    expected_g += k2 * cin * cout + (cout if last else 2 * cout)  # conv (+bias on the last) + BN
    cin = cout
  assert count(g["params"]) == expected_g
  expected_d, cin, size = 0, shape[-1], shape[0]
  for i, cout in enumerate(d_channels):
    expected_d += k2 * cin * cout + (cout if i == 0 else 2 * cout)  # bias first, BN after
    cin, size = cout, size // 2
  expected_d += size * size * cin + 1
  assert count(d["params"]) == expected_d
  x = nets.generator.apply(g, jax.random.normal(jax.random.PRNGKey(0), (3, 100)))
  assert x.shape == (3, *shape) and float(jnp.abs(x).max()) <= 1.0
  assert nets.discriminator.apply(d, x).shape == (3,)


def test_dcgan_batch_norm_follows_the_paper():
  nets = MODELS.get("dcgan")(MNIST, 0, None)
  g, d = init(nets, MNIST)
  assert "BatchNorm_0" in d["batch_stats"] and len(d["batch_stats"]) == 1  # none on D's input layer
  assert "bias" in g["params"]["ConvTranspose_2"]                          # G's output: bias, no BN
  assert len(g["batch_stats"]) == 3
  std = float(jnp.std(g["params"]["ConvTranspose_0"]["kernel"]))
  assert 0.018 < std < 0.022  # N(0, 0.02)


@pytest.mark.parametrize("model", ["dcgan", "mnist_mlp"])
def test_conditional_models_use_the_label(model):
  nets = MODELS.get(model)(MNIST, 10, None)
  g, d = init(nets, MNIST, num_classes=10)
  z = jnp.tile(jax.random.uniform(jax.random.PRNGKey(0), (1, 100), minval=-1), (10, 1))
  x = nets.generator.apply(g, z, jnp.arange(10))
  assert x.shape == (10, 28, 28, 1)
  assert float(jnp.abs(x[0] - x[1]).max()) > 1e-4  # same z, different class -> different image
  xs = jnp.repeat(x[:1], 10, axis=0)
  logits = nets.discriminator.apply(d, xs, jnp.arange(10))
  assert len(np.unique(np.round(np.asarray(logits), 6))) == 10  # the pair (x, y) is judged
  assert "LabelProjection_0" in d["params"]


def test_conditional_gan_needs_labels():
  c = experiment("gaussian_1d.py")
  c.model.conditional = True
  with pytest.raises(ConfigError, match="has no labels"):
    build_gan(c, DataSpec((1,), name="gaussian_1d"))


def test_dcgan_size_mismatch_is_explained():
  c = experiment("mnist_dcgan.py")
  c.model.base = 4
  with pytest.raises(ConfigError, match=r"makes 16x16 images .* are 28x28"):
    build_gan(c, MNIST)


def _value_and_grads(module, params, x):
  """Output plus gradients wrt input and every parameter, through a nonlinear loss."""
  loss = lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  return module.apply(params, x), jax.grad(loss, argnums=(0, 1))(params, x)


def _assert_trees_close(a, b):
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=2e-4, atol=2e-4), a, b)


@pytest.mark.parametrize("k,s", [(5, 2), (4, 2), (3, 2), (5, 1), (3, 3), (1, 2), (2, 2), (6, 3)])
@pytest.mark.parametrize("hw", [(7, 7), (4, 5)])
def test_fast_conv_transpose_equals_flax(k, s, hw):
  key_x, key_init = jax.random.split(jax.random.PRNGKey(k * 10 + s))
  x = jax.random.normal(key_x, (2, *hw, 3))
  reference = nn.ConvTranspose(5, (k, k), (s, s), padding="SAME")
  params = reference.init(key_init, x)
  params = jax.tree.map(lambda p: p + jax.random.normal(key_init, p.shape), params)  # random bias too
  expected, expected_grads = _value_and_grads(reference, params, x)
  for impl in TRANSPOSE_IMPLS:  # same params tree, same values and gradients
    out, grads = _value_and_grads(ConvTranspose(5, (k, k), (s, s), impl=impl), params, x)
    assert out.shape == expected.shape == (2, hw[0] * s, hw[1] * s, 5), impl
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5, err_msg=impl)
    _assert_trees_close(grads, expected_grads)


@pytest.mark.parametrize("k,s", [(5, 2), (4, 2), (3, 2), (5, 1), (3, 3), (2, 2), (6, 3)])
@pytest.mark.parametrize("hw", [(12, 12), (9, 10)])
def test_fast_conv_equals_flax(k, s, hw):
  key_x, key_init = jax.random.split(jax.random.PRNGKey(k * 10 + s))
  x = jax.random.normal(key_x, (2, *hw, 3))
  reference = nn.Conv(5, (k, k), (s, s), padding="SAME")
  params = reference.init(key_init, x)
  params = jax.tree.map(lambda p: p + jax.random.normal(key_init, p.shape), params)
  expected, expected_grads = _value_and_grads(reference, params, x)
  for impl in CONV_IMPLS:
    out, grads = _value_and_grads(Conv(5, (k, k), (s, s), impl=impl), params, x)
    assert out.shape == expected.shape, impl
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5, err_msg=impl)
    _assert_trees_close(grads, expected_grads)


def test_unknown_conv_impl_is_explained():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match="unknown conv_transpose impl 'fast'; valid: xla"):
    ConvTranspose(3, (3, 3), (2, 2), impl="fast").init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="unknown conv impl 'fast'; valid: xla"):
    Conv(3, (3, 3), (2, 2), impl="fast").init(jax.random.PRNGKey(0), x)
